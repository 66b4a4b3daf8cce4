import fc from "fast-check";
import type { z } from "zod";
import { servesAppDownloads } from "./catalogue";
import { ActionResultRequest, CreateCommandRequest } from "./commands";
import { HeartbeatRequest, LegacyHeartbeatRequest, ListDevicesQuery, RegisterRequest } from "./devices";
import { CreateEnrollmentTokenRequest, ProvisioningWifi } from "./enrollment";
import { BulkEditDevicesRequest } from "./lifecycle";
import { CreateDevicePolicyRequest, PolicyDocument, policySettingEntries } from "./policies";
import { jsonObject, text } from "./primitives";

const DEVICE_ID = "3f0e8a3c-1111-4222-8333-444455556666";
const NOW = "2024-05-01T10:00:00.000Z";
const SHA = "0f".repeat(32);

/** The dotted paths of the issues a failed parse reports. */
function failedPaths(schema: z.ZodType, input: unknown): string[] {
  const result = schema.safeParse(input);
  if (result.success) throw new Error(`expected ${JSON.stringify(input)} to be rejected`);
  return result.error.issues.map((issue) => issue.path.join("."));
}

function nested(depth: number, leaf: unknown = 1): Record<string, unknown> {
  let value: unknown = leaf;
  for (let i = 0; i < depth; i++) value = { a: value };
  return value as Record<string, unknown>;
}

const HOSTILE_STRINGS: Array<[string, string]> = [
  ["NUL", "a\u0000b"],
  ["a lone high surrogate", "\ud800"],
  ["a lone low surrogate", "x\udc00"],
  ["surrogates in the wrong order", "\udc00\ud800"],
];

describe("text(): strings PostgreSQL cannot store", () => {
  it.each(HOSTILE_STRINGS)("HeartbeatRequest refuses %s in appVersion, network.ip and an app's packageName", (_name, hostile) => {
    expect(failedPaths(HeartbeatRequest, { deviceTime: NOW, appVersion: hostile })).toEqual(["appVersion"]);
    expect(failedPaths(HeartbeatRequest, { deviceTime: NOW, network: { type: "wifi", ip: hostile } })).toEqual(["network.ip"]);
    expect(failedPaths(HeartbeatRequest, { deviceTime: NOW, apps: [{ packageName: hostile, running: true }] })).toEqual(["apps.0.packageName"]);
  });

  it.each(HOSTILE_STRINGS)("RegisterRequest refuses %s in the token and in device facts", (_name, hostile) => {
    expect(failedPaths(RegisterRequest, { enrollmentToken: hostile })).toEqual(["enrollmentToken"]);
    expect(failedPaths(RegisterRequest, { enrollmentToken: "t", device: { model: hostile, fcmToken: hostile } }).sort()).toEqual([
      "device.fcmToken",
      "device.model",
    ]);
  });

  it.each(HOSTILE_STRINGS)("LegacyHeartbeatRequest, ActionResultRequest and CreateEnrollmentTokenRequest refuse %s", (_name, hostile) => {
    expect(failedPaths(LegacyHeartbeatRequest, { deviceTime: NOW, deviceId: hostile })).toEqual(["deviceId"]);
    expect(failedPaths(ActionResultRequest, { requestId: DEVICE_ID, status: "failed", error: hostile })).toEqual(["error"]);
    expect(failedPaths(CreateEnrollmentTokenRequest, { label: hostile })).toEqual(["label"]);
    expect(failedPaths(CreateCommandRequest, { type: "lock", deviceId: DEVICE_ID, payload: { message: hostile } })).toEqual(["payload.message"]);
  });

  it("accepts well-formed non-ASCII text, surrogate pairs included", () => {
    const parsed = HeartbeatRequest.parse({ deviceTime: NOW, appVersion: "ß-版本-😀" });
    expect(parsed.appVersion).toBe("ß-版本-😀");
  });

  it("accepts exactly the strings without NUL that are well-formed UTF-16", () => {
    const schema = text(64);
    fc.assert(
      fc.property(fc.string({ unit: "binary", maxLength: 64 }), (value) => {
        const storable = !value.includes("\u0000") && value.isWellFormed();
        expect(schema.safeParse(value).success).toBe(storable);
      }),
      { numRuns: 500 },
    );
  });
});

describe("jsonObject", () => {
  const schema = jsonObject(4096);

  it("accepts 16 levels of nesting below the top and refuses 17", () => {
    expect(schema.safeParse(nested(16)).success).toBe(true);
    expect(schema.safeParse(nested(17)).success).toBe(false);
    expect(schema.safeParse({ list: [[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]] }).success).toBe(false);
  });

  it("refuses a value serializing to more than its limit and accepts one at the limit", () => {
    const small = jsonObject(20);
    // {"a":"..."} is 8 characters of framing.
    expect(small.safeParse({ a: "x".repeat(12) }).success).toBe(true);
    expect(small.safeParse({ a: "x".repeat(13) }).success).toBe(false);
  });

  it("refuses NUL and lone surrogates in nested values and in keys", () => {
    expect(schema.safeParse({ a: { b: ["ok", "bad\u0000"] } }).success).toBe(false);
    expect(schema.safeParse({ a: { "\ud800": 1 } }).success).toBe(false);
    expect(schema.safeParse({ "k\u0000": 1 }).success).toBe(false);
  });

  it("refuses arrays and primitives at the top", () => {
    for (const value of [[], [1], "x", 1, null, true]) expect(schema.safeParse(value).success).toBe(false);
  });

  it("fails, without throwing, on 10,000 levels of nesting", () => {
    expect(schema.safeParse(nested(10_000)).success).toBe(false);
  });

  it("measures its limit in UTF-8 bytes", () => {
    // 15 UTF-16 code units, 29 UTF-8 bytes.
    const value = { a: "€€€€€€€" };
    expect(JSON.stringify(value).length).toBe(15);
    expect(jsonObject(15).safeParse(value).success).toBe(false);
  });
});

describe("device bodies are lenient, admin bodies strict", () => {
  it("HeartbeatRequest drops unknown fields, so newer agents keep working", () => {
    const parsed = HeartbeatRequest.parse({ deviceTime: NOW, futureField: { x: 1 } });
    expect(parsed).toMatchObject({ deviceTime: NOW });
    expect(parsed).not.toHaveProperty("futureField");
  });

  it("RegisterRequest defaults device facts to {}", () => {
    expect(RegisterRequest.parse({ enrollmentToken: "t" })).toMatchObject({ enrollmentToken: "t", device: {} });
  });

  it("CreateEnrollmentTokenRequest refuses unknown fields and fills defaults", () => {
    expect(failedPaths(CreateEnrollmentTokenRequest, { maxUses: 2, admin: true })).toEqual([""]);
    expect(CreateEnrollmentTokenRequest.parse({})).toMatchObject({ maxUses: 1, expiresInSeconds: 7 * 24 * 3600 });
  });

  it("ListDevicesQuery coerces limit, refuses non-numbers and out-of-range values and unknown parameters", () => {
    expect(ListDevicesQuery.parse({ limit: "10" })).toMatchObject({ limit: 10 });
    expect(ListDevicesQuery.parse({})).toMatchObject({ limit: 50 });
    for (const limit of ["abc", "0", "501", "1.5", "", "-1", ["1", "2"]]) expect(failedPaths(ListDevicesQuery, { limit })).toEqual(["limit"]);
    expect(failedPaths(ListDevicesQuery, { unknownParameter: "5" })).toEqual([""]);
  });
});

describe("CreateCommandRequest", () => {
  it("accepts ping without a payload and gives it an empty one", () => {
    expect(CreateCommandRequest.parse({ type: "ping", deviceId: DEVICE_ID })).toMatchObject({ type: "ping", deviceId: DEVICE_ID, payload: {} });
    expect(CreateCommandRequest.parse({ type: "lock", deviceId: DEVICE_ID })).toMatchObject({ type: "lock", deviceId: DEVICE_ID, payload: {} });
  });

  it("accepts a well-formed command of each type", () => {
    const commands = [
      { type: "reboot", payload: {} },
      { type: "lock", payload: { message: "Returned to IT" } },
      { type: "launch_app", payload: { packageName: "com.example.kiosk" } },
      { type: "relaunch_app", payload: { packageName: "com.example.kiosk" } },
      { type: "clear_app_data", payload: { packageName: "com.example.kiosk" } },
      { type: "uninstall_app", payload: { packageName: "com.example.kiosk" } },
      { type: "install_app", payload: { packageName: "com.example.kiosk", url: "https://cdn.example.com/k.apk", sha256: "a".repeat(64), versionCode: 3 } },
      { type: "custom", payload: { action: "sync", data: { full: true } } },
    ];
    for (const command of commands) expect(CreateCommandRequest.safeParse({ ...command, deviceId: DEVICE_ID, ttlSeconds: 60 }).success).toBe(true);
  });

  it("refuses unknown fields at the top and in the payload", () => {
    expect(failedPaths(CreateCommandRequest, { type: "ping", deviceId: DEVICE_ID, priority: "high" })).toEqual([""]);
    expect(failedPaths(CreateCommandRequest, { type: "ping", deviceId: DEVICE_ID, payload: { force: true } })).toEqual(["payload"]);
    expect(failedPaths(CreateCommandRequest, { type: "launch_app", deviceId: DEVICE_ID, payload: { packageName: "com.a.b", extra: 1 } })).toEqual(["payload"]);
  });

  it("refuses a payload of the wrong shape for its type", () => {
    expect(failedPaths(CreateCommandRequest, { type: "launch_app", deviceId: DEVICE_ID })).toEqual(["payload"]);
    expect(failedPaths(CreateCommandRequest, { type: "launch_app", deviceId: DEVICE_ID, payload: {} })).toEqual(["payload.packageName"]);
    expect(failedPaths(CreateCommandRequest, { type: "launch_app", deviceId: DEVICE_ID, payload: { message: "hi" } })).toContain("payload.packageName");
    expect(failedPaths(CreateCommandRequest, { type: "install_app", deviceId: DEVICE_ID, payload: { packageName: "com.a.b" } })).toEqual([
      "payload.url",
      "payload.sha256",
    ]);
    expect(failedPaths(CreateCommandRequest, { type: "custom", deviceId: DEVICE_ID, payload: { data: {} } })).toEqual(["payload.action"]);
  });

  it.each([
    ["a package name without a dot", { type: "launch_app", payload: { packageName: "kiosk" } }, "payload.packageName"],
    ["a package name with a path", { type: "launch_app", payload: { packageName: "com.a.b/../c" } }, "payload.packageName"],
    ["a non-http install URL", { type: "install_app", payload: { packageName: "com.a.b", url: "file:///sdcard/x.apk", sha256: SHA } }, "payload.url"],
    ["a javascript: URL", { type: "install_app", payload: { packageName: "com.a.b", url: "javascript:alert(1)", sha256: SHA } }, "payload.url"],
    ["a plain http install URL", { type: "install_app", payload: { packageName: "com.a.b", url: "http://cdn.example.com/a.apk", sha256: SHA } }, "payload.url"],
    [
      "an install without the APK's sha256",
      { type: "install_app", payload: { packageName: "com.a.b", url: "https://cdn.example.com/a.apk" } },
      "payload.sha256",
    ],
    ["an empty URL", { type: "install_app", payload: { packageName: "com.a.b", url: "", sha256: "a".repeat(64) } }, "payload.url"],
    ["a URL that does not parse", { type: "install_app", payload: { packageName: "com.a.b", url: "https://", sha256: "a".repeat(64) } }, "payload.url"],
    [
      "a URL with a backslash",
      { type: "install_app", payload: { packageName: "com.a.b", url: "https:\\\\evil.example/a.apk", sha256: "a".repeat(64) } },
      "payload.url",
    ],
    [
      "a URL without its slashes",
      { type: "install_app", payload: { packageName: "com.a.b", url: "https:evil.example/a.apk", sha256: "a".repeat(64) } },
      "payload.url",
    ],
    [
      "a URL with an upper-case scheme",
      { type: "install_app", payload: { packageName: "com.a.b", url: "HTTPS://cdn.example.com/a.apk", sha256: "a".repeat(64) } },
      "payload.url",
    ],
    [
      "a URL with credentials",
      { type: "install_app", payload: { packageName: "com.a.b", url: "https://user:pass@cdn.example.com/a.apk", sha256: "a".repeat(64) } },
      "payload.url",
    ],
    ["an uppercase sha256", { type: "install_app", payload: { packageName: "com.a.b", url: "https://x.io/a.apk", sha256: "A".repeat(64) } }, "payload.sha256"],
    ["custom data nested too deep", { type: "custom", payload: { action: "x", data: nested(17) } }, "payload.data"],
    ["custom data over 1536 characters", { type: "custom", payload: { action: "x", data: { a: "x".repeat(1600) } } }, "payload.data"],
    ["a ttl under 10 s", { type: "ping", ttlSeconds: 9 }, "ttlSeconds"],
    ["a fractional ttl", { type: "ping", ttlSeconds: 10.5 }, "ttlSeconds"],
  ])("refuses %s", (_name, command, path) => {
    expect(failedPaths(CreateCommandRequest, { deviceId: DEVICE_ID, ...command })).toEqual([path]);
  });

  it("refuses an unknown type, a missing type and a deviceId that is not a UUID", () => {
    expect(CreateCommandRequest.safeParse({ type: "format_disk", deviceId: DEVICE_ID }).success).toBe(false);
    expect(CreateCommandRequest.safeParse({ deviceId: DEVICE_ID }).success).toBe(false);
    expect(failedPaths(CreateCommandRequest, { type: "ping", deviceId: "1; DROP TABLE" })).toEqual(["deviceId"]);
  });

  it("refuses an install URL holding NUL or a lone surrogate", () => {
    for (const url of ["https://example.com/a\u0000.apk", "https://example.com/?q=\u0000", "https://example.com/\ud800.apk"]) {
      expect(failedPaths(CreateCommandRequest, { type: "install_app", deviceId: DEVICE_ID, payload: { packageName: "com.a.b", url, sha256: SHA } })).toEqual([
        "payload.url",
      ]);
    }
  });
});

describe("DateTime", () => {
  it.each(["2024-02-30T00:00:00Z", "2024-01-01T24:00:00Z", "2024-01-01T00:00:60Z", "2024-01-01T00:00:00+99:99", "2024-01-01", "yesterday"])(
    "refuses %j",
    (deviceTime) => {
      expect(failedPaths(HeartbeatRequest, { deviceTime })).toEqual(["deviceTime"]);
    },
  );

  it("refuses a deviceTime PostgreSQL cannot store (year 0000)", () => {
    expect(failedPaths(HeartbeatRequest, { deviceTime: "0000-01-01T00:00:00Z" })).toEqual(["deviceTime"]);
  });
});

describe("ListDevicesQuery paging", () => {
  it("takes a cursor or an offset, not both", () => {
    expect(ListDevicesQuery.safeParse({ cursor: "abc" }).success).toBe(true);
    expect(ListDevicesQuery.safeParse({ offset: "50" }).success).toBe(true);
    const both = ListDevicesQuery.safeParse({ cursor: "abc", offset: "50" });
    expect(both.success).toBe(false);
    expect(both.error?.issues[0]?.path).toEqual(["cursor"]);
  });
});

describe("BulkEditDevicesRequest", () => {
  const target = { group: "store-42" };
  it.each([{ setGroups: ["a"] }, { addGroups: ["a"] }, { removeGroups: ["a"] }, { aliasPrefix: "till-" }, { retire: true }])(
    "accepts one change: %j",
    (change) => {
      expect(BulkEditDevicesRequest.safeParse({ target, ...change }).success).toBe(true);
    },
  );

  it("refuses a selection without any change", () => {
    expect(BulkEditDevicesRequest.safeParse({ target }).error?.issues[0]?.message).toMatch(/at least one of/);
  });

  it("refuses setGroups together with addGroups or removeGroups", () => {
    for (const edit of [{ addGroups: ["b"] }, { removeGroups: ["b"] }]) {
      const parsed = BulkEditDevicesRequest.safeParse({ target, setGroups: ["a"], ...edit });
      expect(parsed.success).toBe(false);
      expect(parsed.error?.issues[0]?.path).toEqual(["setGroups"]);
    }
  });
});

describe("install_app URLs", () => {
  const install = (url: string) =>
    CreateCommandRequest.safeParse({
      deviceId: "3f6c2a1e-8b4d-4c7a-9e21-5d0b7f9a2c44",
      type: "install_app",
      payload: { packageName: "com.example.kiosk", url, sha256: "a".repeat(64) },
    });
  it.each(["https://user:secret@cdn.example.com/app.apk", "https://cdn.example.com/a/../app.apk", "https://CDN.example.com/app.apk"])(
    "refuses %s, which is not in plain form",
    (url) => {
      expect(install(url).success).toBe(false);
    },
  );
  it("accepts a plain https URL", () => {
    expect(install("https://cdn.example.com/app.apk").success).toBe(true);
  });
});

describe("servesAppDownloads: releases need an https PUBLIC_API_URL", () => {
  it.each([
    ["https://mdm.example.com", true],
    ["http://10.0.0.5:8000", false],
    ["HTTP://mdm.example.com", false],
    ["", false],
    [null, false],
    [undefined, false],
  ])("%p → %p", (url, expected) => {
    expect(servesAppDownloads(url)).toBe(expected);
  });
});

describe("policySettingEntries", () => {
  it("lists each setting once, sections by their leaves, skipping what is unset", () => {
    expect(
      policySettingEntries({
        kiosk: { homeApp: "com.example.kiosk", statusBar: undefined },
        screen: { timeoutSeconds: 300 },
        autoRelaunch: ["com.example.kiosk"],
        restrictions: undefined,
      }),
    ).toEqual([
      ["kiosk.homeApp", "com.example.kiosk"],
      ["screen.timeoutSeconds", 300],
      ["autoRelaunch", ["com.example.kiosk"]],
    ]);
  });
});

describe("ProvisioningWifi: what the setup wizard would refuse", () => {
  const wifi = (fields: Record<string, unknown>) => ProvisioningWifi.safeParse({ ssid: "Store-42", ...fields });
  const problem = (fields: Record<string, unknown>) => wifi(fields).error?.issues.map((issue) => [issue.path.join("."), issue.message]);

  it("takes an open network without a password, WPA with 8 to 63 characters, WEP of 5 or 13 characters or 10 or 26 hex digits, EAP as it comes", () => {
    for (const fields of [
      { securityType: "NONE" },
      { securityType: "WPA", password: "12345678" },
      { securityType: "WPA", password: "x".repeat(63) },
      { securityType: "WEP", password: "abcde" },
      { securityType: "WEP", password: "abcdefghijklm" },
      { securityType: "WEP", password: "0123456789" },
      { securityType: "WEP", password: "0123456789abcdef0123456789" },
      { securityType: "EAP" },
    ])
      expect(wifi(fields).success).toBe(true);
  });

  it("refuses each other combination at wifi.password, saying why", () => {
    expect(problem({ securityType: "NONE", password: "secret" })).toEqual([["password", "An open network (securityType NONE) takes no password"]]);
    expect(problem({ password: "1234567" })).toEqual([["password", "A WPA password has 8 to 63 characters"]]);
    expect(problem({ securityType: "WPA" })).toEqual([["password", "A WPA password has 8 to 63 characters"]]);
    expect(problem({ securityType: "WEP", password: "012345678g" })).toEqual([
      ["password", "A WEP key has 5 or 13 characters, or 10 or 26 hexadecimal digits"],
    ]);
    expect(problem({ securityType: "WEP" })).toEqual([["password", "A WEP key has 5 or 13 characters, or 10 or 26 hexadecimal digits"]]);
  });
});

describe("PolicyDocument: the rules between a policy's fields", () => {
  const problems = (settings: unknown) => PolicyDocument.safeParse(settings).error?.issues.map((issue) => issue.path.join(".")) ?? [];

  it("refuses an app listed twice in lockTaskPackages, autoRelaunch or requiredApps, naming the second", () => {
    expect(problems({ kiosk: { lockTaskPackages: ["com.a.till", "com.a.till"] } })).toEqual(["kiosk.lockTaskPackages.1"]);
    expect(problems({ autoRelaunch: ["com.a.till", "com.a.scan", "com.a.till"] })).toEqual(["autoRelaunch.2"]);
    expect(
      problems({
        requiredApps: [
          { packageName: "com.a.till", minVersionCode: 1 },
          { packageName: "com.a.till", minVersionCode: 9 },
        ],
      }),
    ).toEqual(["requiredApps.1.packageName"]);
  });

  it("names the duplicates and the home app rule beside every other error of the document, wrong types included", () => {
    expect(
      problems({
        kiosk: { lockTaskPackages: ["com.a.till", "com.a.till"], homeApp: "com.a.launcher", statusBar: "no" },
        restrictions: { camera: "yes" },
        screen: { brightness: "bright" },
        systemUpdate: { type: "sometimes" },
        requiredApps: [{ packageName: "com.a.till", minVersionCode: 1 }, { packageName: "com.a.till", minVersionCode: "9" }, 5],
        autoRelaunch: ["com.a.scan", "com.a.scan", 7],
      }).sort(),
    ).toEqual([
      "autoRelaunch.1",
      "autoRelaunch.2",
      "kiosk.homeApp",
      "kiosk.lockTaskPackages.1",
      "kiosk.statusBar",
      "requiredApps.1.minVersionCode",
      "requiredApps.1.packageName",
      "requiredApps.2",
      "restrictions.camera",
      "screen.brightness",
      "systemUpdate.type",
    ]);
    // Sections of the wrong type leave the rules nothing to read, and do not trip them.
    expect(problems({ kiosk: 5, requiredApps: "com.a.till", autoRelaunch: {} }).sort()).toEqual(["autoRelaunch", "kiosk", "requiredApps"]);
  });

  it("refuses a home app outside lockTaskPackages, and takes one inside or either alone", () => {
    expect(problems({ kiosk: { lockTaskPackages: ["com.a.till"], homeApp: "com.a.launcher" } })).toEqual(["kiosk.homeApp"]);
    expect(problems({ kiosk: { lockTaskPackages: ["com.a.launcher", "com.a.till"], homeApp: "com.a.launcher" } })).toEqual([]);
    expect(problems({ kiosk: { homeApp: "com.a.launcher" } })).toEqual([]);
    expect(problems({})).toEqual([]);
  });
});

test("a policy's name of spaces alone is refused as blank", () => {
  const blank = CreateDevicePolicyRequest.safeParse({ name: "   ", settings: {} });
  expect(blank.success).toBe(false);
  expect(blank.error!.issues).toEqual([expect.objectContaining({ path: ["name"], message: "Must not be blank" })]);
  expect(CreateDevicePolicyRequest.safeParse({ name: " Store kiosk ", settings: {} }).success).toBe(true);
});
