import { USAGE, UsageError, parseArgs, parseDuration, policySettingPaths } from "./args";

describe("parseDuration", () => {
  it.each([
    ["500ms", 500],
    ["5s", 5000],
    ["1.5s", 1500],
    ["2m", 120_000],
    ["1h", 3_600_000],
    ["10", 10_000],
  ])("reads %s as %d ms", (text, ms) => expect(parseDuration(text)).toBe(ms));

  it.each(["", "5x", "-1s", "0s", "s", "1e3"])("refuses %j", (text) => expect(() => parseDuration(text)).toThrow(UsageError));
});

describe("parseArgs", () => {
  it("reads the README's command line", () => {
    const parsed = parseArgs(["--devices", "500", "--interval", "5s", "--duration=60s", "--url", "http://127.0.0.1:8000/"]);
    expect(parsed).toEqual({
      help: false,
      options: expect.objectContaining({ baseUrl: "http://127.0.0.1:8000", devices: 500, intervalMs: 5000, durationMs: 60_000 }),
    });
  });

  it("takes admin credentials from the flags, then the environment, else leaves them to the local API's generated ones", () => {
    const defaults = parseArgs([], {});
    expect(defaults).toMatchObject({ options: { adminKey: undefined, hmacSecret: undefined, devices: 10, intervalMs: 60_000 } });
    expect(defaults.help === false && "durationMs" in defaults.options).toBe(false);
    // An empty variable counts as unset, as for the API.
    expect(parseArgs([], { ADMIN_KEY: "", HMAC_SECRET: "" })).toMatchObject({ options: { adminKey: undefined } });
    expect(parseArgs([], { ADMIN_KEY: "env-key", HMAC_SECRET: "env-secret" })).toMatchObject({ options: { adminKey: "env-key", hmacSecret: "env-secret" } });
    expect(parseArgs(["--admin-key", "flag-key"], { ADMIN_KEY: "env-key" })).toMatchObject({ options: { adminKey: "flag-key" } });
  });

  it("passes an enrollment token through", () => {
    expect(parseArgs(["--enrollment-token", "abc.def"])).toMatchObject({ options: { enrollmentToken: "abc.def" } });
  });

  it("takes the policy settings every device refuses, as a comma-separated list, and documents the flag", () => {
    expect(parseArgs(["--refuse-settings", "restrictions.camera, kiosk.statusBar,systemUpdate,restrictions.camera"])).toMatchObject({
      options: { refuseSettings: ["restrictions.camera", "kiosk.statusBar", "systemUpdate"] },
    });
    expect(parseArgs(["--refuse-settings=screen.brightness"])).toMatchObject({ options: { refuseSettings: ["screen.brightness"] } });
    const none = parseArgs([]);
    expect(none.help === false && "refuseSettings" in none.options).toBe(false);
    expect(USAGE).toContain("--refuse-settings <list>");
  });

  it("knows every setting of the policy schema by the path devices report it with", () => {
    const paths = policySettingPaths();
    expect(paths).toEqual(
      expect.arrayContaining([
        "kiosk.lockTaskPackages",
        "restrictions.camera",
        "screen.keepAwakeWhileCharging",
        "systemUpdate",
        "requiredApps",
        "autoRelaunch",
      ]),
    );
    expect(paths).not.toContain("kiosk");
    expect(paths).toHaveLength(6 + 7 + 4 + 3);
  });

  it("answers help", () => {
    expect(parseArgs(["--devices", "3", "--help"])).toEqual({ help: true });
    expect(parseArgs(["-h"])).toEqual({ help: true });
  });

  it.each([
    [["--devices"], /needs a value/],
    [["--devices", "--interval", "5s"], /needs a value/],
    [["--devices", "0"], /between 1/],
    [["--devices", "ten"], /whole number/],
    [["--interval", "fast"], /Not a duration/],
    [["--url", "ftp://x"], /http or https/],
    [["--url", "not a url"], /not a URL/],
    [["--frobnicate"], /Unknown argument/],
    [["500"], /Unknown argument/],
    [["--refuse-settings", "restrictions.cammera"], /not a policy setting: restrictions.cammera \(one of kiosk.lockTaskPackages, /],
    [["--refuse-settings", "restrictions"], /not a policy setting: restrictions /],
    [["--refuse-settings", " , "], /comma-separated list of policy settings/],
  ])("refuses %j", (argv, message) => expect(() => parseArgs(argv)).toThrow(message));
});
