import { buildCommandPayload } from "./commands";

describe("buildCommandPayload", () => {
  test("commands without fields have an empty payload", () => {
    expect(buildCommandPayload("reboot", {})).toEqual({ ok: true, payload: {} });
  });

  test("a missing required field is reported on that field", () => {
    expect(buildCommandPayload("launch_app", { packageName: "  " })).toEqual({ ok: false, errors: { packageName: "Required" } });
  });

  test("the contract's own rules apply, e.g. to package names", () => {
    const result = buildCommandPayload("uninstall_app", { packageName: "not a package" });
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.errors.packageName).toMatch(/package name/i);
  });

  test("install_app converts the version code to a number, lowercases the SHA-256 and leaves out empty optional fields", () => {
    expect(buildCommandPayload("install_app", { packageName: "com.example.app", url: "https://example.com/a.apk", versionCode: "", sha256: "AB".repeat(32) })).toEqual({
      ok: true,
      payload: { packageName: "com.example.app", url: "https://example.com/a.apk", sha256: "ab".repeat(32) },
    });
    expect(buildCommandPayload("install_app", { packageName: "com.example.app", url: "https://example.com/a.apk", versionCode: "42", sha256: "ab".repeat(32) })).toMatchObject({
      payload: { versionCode: 42 },
    });
  });

  test("install_app needs an https URL and the APK's SHA-256", () => {
    expect(buildCommandPayload("install_app", { packageName: "com.example.app", url: "https://example.com/a.apk", sha256: "" })).toEqual({ ok: false, errors: { sha256: "Required" } });
    const plain = buildCommandPayload("install_app", { packageName: "com.example.app", url: "http://example.com/a.apk", sha256: "ab".repeat(32) });
    expect(plain).toEqual({ ok: false, errors: { url: "Must be an https:// URL" } });
  });

  test("custom data must be a JSON object", () => {
    expect(buildCommandPayload("custom", { action: "sync", data: "{oops" })).toEqual({ ok: false, errors: { data: "Must be valid JSON" } });
    expect(buildCommandPayload("custom", { action: "sync", data: '{"full":true}' })).toEqual({ ok: true, payload: { action: "sync", data: { full: true } } });
  });
});
