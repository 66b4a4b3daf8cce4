import { batchAsListed, buildCommandPayload } from "./commands";

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
    expect(
      buildCommandPayload("install_app", { packageName: "com.example.app", url: "https://example.com/a.apk", versionCode: "", sha256: "AB".repeat(32) }),
    ).toEqual({
      ok: true,
      payload: { packageName: "com.example.app", url: "https://example.com/a.apk", sha256: "ab".repeat(32) },
    });
    expect(
      buildCommandPayload("install_app", { packageName: "com.example.app", url: "https://example.com/a.apk", versionCode: "42", sha256: "ab".repeat(32) }),
    ).toMatchObject({
      payload: { versionCode: 42 },
    });
  });

  test("install_app needs an https URL and the APK's SHA-256", () => {
    expect(buildCommandPayload("install_app", { packageName: "com.example.app", url: "https://example.com/a.apk", sha256: "" })).toEqual({
      ok: false,
      errors: { sha256: "Required" },
    });
    const plain = buildCommandPayload("install_app", { packageName: "com.example.app", url: "http://example.com/a.apk", sha256: "ab".repeat(32) });
    expect(plain).toEqual({ ok: false, errors: { url: "Must be an https:// URL" } });
  });

  test("custom data must be a JSON object", () => {
    expect(buildCommandPayload("custom", { action: "sync", data: "{oops" })).toEqual({ ok: false, errors: { data: "Must be valid JSON" } });
    expect(buildCommandPayload("custom", { action: "sync", data: '{"full":true}' })).toEqual({ ok: true, payload: { action: "sync", data: { full: true } } });
  });
});

describe("batchAsListed", () => {
  const BATCH = "5d1c0c1e-8f0a-4a57-9b1e-2b7f3c4d5e6f";
  const batch = {
    batchId: BATCH,
    type: "lock",
    target: { all: true },
    total: 3,
    counts: { queued: 0, sent: 0, acknowledged: 0, succeeded: 3, failed: 0, expired: 0, cancelled: 0 },
    done: true,
    createdAt: "2026-12-01T10:00:00.000Z",
  };
  const row = (status: "sent" | "succeeded") => ({ status, batchId: BATCH });

  test("a list holding the whole batch decides its counts and whether it is done", () => {
    const listed = batchAsListed(batch, { total: 3, commands: [row("succeeded"), row("succeeded"), row("sent")] });
    expect(listed.counts).toMatchObject({ succeeded: 2, sent: 1 });
    expect(listed.done).toBe(false);
  });

  test("a partial list, or one of other commands, leaves the batch as the API answered", () => {
    expect(batchAsListed(batch, { total: 3, commands: [row("sent")] })).toBe(batch);
    expect(batchAsListed(batch, { total: 3, commands: [row("sent"), row("sent"), { status: "sent", batchId: null }] })).toBe(batch);
    expect(batchAsListed(batch, undefined)).toBe(batch);
  });
});
