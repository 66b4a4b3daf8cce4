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

  test("install_app converts the version code to a number and leaves out empty optional fields", () => {
    expect(buildCommandPayload("install_app", { packageName: "com.example.app", url: "https://example.com/a.apk", versionCode: "42", sha256: "" })).toEqual({
      ok: true,
      payload: { packageName: "com.example.app", url: "https://example.com/a.apk", versionCode: 42 },
    });
  });

  test("custom data must be a JSON object", () => {
    expect(buildCommandPayload("custom", { action: "sync", data: "{oops" })).toEqual({ ok: false, errors: { data: "Must be valid JSON" } });
    expect(buildCommandPayload("custom", { action: "sync", data: '{"full":true}' })).toEqual({ ok: true, payload: { action: "sync", data: { full: true } } });
  });
});
