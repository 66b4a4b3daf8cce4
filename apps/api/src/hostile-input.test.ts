import { randomUUID } from "node:crypto";
import { type ApiRoute, type ApiRouteName, apiRoutes, signAdminRequest } from "@mdm/contracts";
import fc from "fast-check";
import request from "supertest";
import {
  TEST_ADMIN_KEY,
  TEST_HMAC_SECRET,
  TEST_HOST,
  type TestApp,
  type TestDatabase,
  adminRequest,
  createTestApp,
  createTestDatabase,
  enrollDevice,
  heartbeatBody,
  resetTables,
} from "./test";
import { bodyKeys, rowCounts as countRows, expectErrorBody, nested } from "./test/hostile";
import { signedInUser } from "./test/sessions";

const LEGACY_KEY = "legacy-key-0123456789abcdef0123456789abcdef";
const BODY_LIMIT = 64 * 1024;
const UNKNOWN_ID = "3f0e8a3c-1111-4222-8333-444455556666";

let database: TestDatabase;
let t: TestApp;
let device: { deviceId: string; deviceToken: string };
let adminAccessToken: string;

// One app and one enrolled device for the whole file: every hostile request must leave the
// database as it found it, and each test checks exactly that.
beforeAll(async () => {
  database = await createTestDatabase();
  await resetTables(database.db);
  t = createTestApp(database.db, { env: { LEGACY_ENROLLMENT_KEY: LEGACY_KEY } });
  device = await enrollDevice(t.app);
  adminAccessToken = (await signedInUser(t, "admin")).access;
});
afterAll(() => database.close());

const bodyRoutes = (Object.entries(apiRoutes) as Array<[ApiRouteName, ApiRoute]>).filter(([, route]) => route.body);

const rowCounts = (options: { withNonces?: boolean } = {}) => countRows(database.db, options);

function pathOf(route: ApiRoute): string {
  return route.path.replace(/\{(\w+)\}/g, (_match, name: string) =>
    name === "deviceId" ? device.deviceId : name === "packageName" ? "com.example.kiosk" : UNKNOWN_ID,
  );
}

/** Sends `raw` byte for byte to a route, with the credentials its auth needs (admin requests signed over `raw`). */
async function send(route: ApiRoute, raw: string | Buffer, contentType = "application/json", options: { credentials?: boolean } = {}) {
  const path = pathOf(route);
  let call = request(t.app)[route.method](path).set("Host", TEST_HOST);
  if (options.credentials !== false) {
    if (route.auth === "device") call = call.set("Authorization", `Bearer ${device.deviceToken}`);
    if (route.auth === "legacy") call = call.set("X-Enrollment-Key", LEGACY_KEY);
    if (route.auth === "session") call = call.set("Authorization", `Bearer ${adminAccessToken}`);
    if (route.auth === "admin") {
      call = call.set(
        await signAdminRequest({
          adminKey: TEST_ADMIN_KEY,
          hmacSecret: TEST_HMAC_SECRET,
          method: route.method,
          host: TEST_HOST,
          pathWithQuery: path,
          body: raw,
        }),
      );
    }
  }
  return call.set("Content-Type", contentType).send(raw);
}

/** A JSON object giving every property of the route's body the same raw JSON literal. */
function everyKeyAs(route: ApiRoute, literal: string): string {
  const keys = bodyKeys(route);
  return `{${(keys.length ? keys : ["value"]).map((key) => `${JSON.stringify(key)}:${literal}`).join(",")}}`;
}

/** A body each route accepts, and a text field in it to poison. */
type Sample = { body: Record<string, unknown>; textField: string };

function samples(): Partial<Record<ApiRouteName, Sample>> {
  return {
    register: { body: { enrollmentToken: `${UNKNOWN_ID}.${"A".repeat(43)}`, device: { model: "Pixel 8" } }, textField: "device.model" },
    heartbeat: { body: heartbeatBody({ appVersion: "1.0.0" }), textField: "appVersion" },
    actionResult: { body: { requestId: UNKNOWN_ID, status: "failed", error: "boom" }, textField: "error" },
    legacyHeartbeat: { body: { deviceId: "kiosk-1", ...heartbeatBody() }, textField: "deviceId" },
    createEnrollmentToken: { body: { label: "front desk", maxUses: 2 }, textField: "label" },
    createCommand: { body: { type: "lock", deviceId: device.deviceId, payload: { message: "Returned to IT" } }, textField: "payload.message" },
    updateDevice: { body: { alias: "front desk" }, textField: "alias" },
    createBulkCommand: { body: { type: "lock", target: { deviceIds: [device.deviceId] }, payload: { message: "hi" } }, textField: "payload.message" },
    createPolicy: { body: { deviceId: device.deviceId, packageName: "com.example.kiosk" }, textField: "packageName" },
    updateAlertSettings: { body: { recipients: ["ops@example.com"] }, textField: "recipients.0" },
    setup: { body: { email: "first@example.com", password: "correct horse battery staple", name: "First" }, textField: "name" },
    login: { body: { email: "someone@example.com", password: "correct horse battery staple" }, textField: "password" },
    requestPasswordReset: { body: { email: "someone@example.com" }, textField: "email" },
    confirmPasswordReset: { body: { token: `${UNKNOWN_ID}.${"A".repeat(43)}`, password: "correct horse battery staple" }, textField: "token" },
    inviteUser: { body: { email: "new@example.com", name: "New", role: "viewer" }, textField: "name" },
    updateUser: { body: { name: "Renamed" }, textField: "name" },
    enrollmentProvisioning: {
      body: { enrollmentToken: `${UNKNOWN_ID}.${"A".repeat(43)}`, wifi: { ssid: "Store", securityType: "NONE" } },
      textField: "wifi.ssid",
    },
    createDevicePolicy: { body: { name: "Kiosk", settings: { kiosk: { homeApp: "com.example.kiosk" } } }, textField: "name" },
    updateDevicePolicy: { body: { description: "Front desk tablets" }, textField: "description" },
    createPolicyAssignment: { body: { group: "stores", priority: 1 }, textField: "group" },
    createRelease: { body: { versionCode: 2, target: { group: "tills" }, percent: 25 }, textField: "target.group" },
    advanceRelease: { body: { percent: 25, reason: "no crashes in a day" }, textField: "reason" },
    checkPasswordReset: { body: { token: `${UNKNOWN_ID}.${"A".repeat(43)}` }, textField: "token" },
    bulkEditDevices: { body: { target: { group: "stores" }, aliasPrefix: "till-" }, textField: "aliasPrefix" },
    updatePolicy: { body: { packageName: "com.example.kiosk" }, textField: "packageName" },
    createApiKey: { body: { name: "ticketing-sync", role: "viewer" }, textField: "name" },
    // An address literal outside every private range: accepted without a DNS lookup.
    createWebhook: { body: { url: "https://203.0.113.10/hook", events: ["device.enrolled"], description: "paging" }, textField: "description" },
  };
}

function withValue(body: Record<string, unknown>, path: string, value: unknown): Record<string, unknown> {
  const copy = structuredClone(body);
  const segments = path.split(".");
  const parent = segments.slice(0, -1).reduce<Record<string, unknown>>((node, segment) => node[segment] as Record<string, unknown>, copy);
  parent[segments.at(-1)!] = value;
  return copy;
}

type HostileCase = { name: string; raw: (route: ApiRoute) => string | Buffer; contentType?: string; status: number; code: string };

const HOSTILE_CASES: HostileCase[] = [
  { name: "malformed JSON", raw: () => '{"a":', status: 400, code: "invalid_json" },
  { name: "an empty body sent as JSON", raw: () => "", status: 400, code: "invalid_json" },
  { name: "JSON with a trailing comma", raw: () => '{"a":1,}', status: 400, code: "invalid_json" },
  { name: "a JSON array", raw: () => "[1,2,3]", status: 400, code: "validation_failed" },
  { name: "a JSON number", raw: () => "42", status: 400, code: "validation_failed" },
  { name: "JSON null", raw: () => "null", status: 400, code: "validation_failed" },
  { name: "a JSON string", raw: () => '"hello"', status: 400, code: "validation_failed" },
  { name: "JSON true", raw: () => "true", status: 400, code: "validation_failed" },
  { name: "JSON sent as text/plain", raw: () => "{}", contentType: "text/plain", status: 415, code: "unsupported_media_type" },
  { name: "a form body", raw: () => "a=1&b=2", contentType: "application/x-www-form-urlencoded", status: 415, code: "unsupported_media_type" },
  { name: "JSON declared as Latin-1", raw: () => "{}", contentType: "application/json; charset=latin1", status: 415, code: "unsupported_media_type" },
  { name: "a body one byte over 64 KiB", raw: () => `"${"x".repeat(BODY_LIMIT - 1)}"`, status: 413, code: "payload_too_large" },
  { name: "an object nested 10,000 levels deep", raw: () => nested(10_000), status: 400, code: "validation_failed" },
  { name: "an array nested 10,000 levels deep", raw: () => "[".repeat(10_000) + "]".repeat(10_000), status: 400, code: "validation_failed" },
  { name: "every field NUL", raw: (route) => everyKeyAs(route, '"\\u0000"'), status: 400, code: "validation_failed" },
  { name: "every field a lone surrogate", raw: (route) => everyKeyAs(route, '"\\ud800"'), status: 400, code: "validation_failed" },
  { name: "a NUL key holding a lone surrogate", raw: () => '{"\\u0000":"\\udfff"}', status: 400, code: "validation_failed" },
  { name: "every field 1e309", raw: (route) => everyKeyAs(route, "1e309"), status: 400, code: "validation_failed" },
  { name: "every field -1e309", raw: (route) => everyKeyAs(route, "-1e309"), status: 400, code: "validation_failed" },
  { name: "every field -0", raw: (route) => everyKeyAs(route, "-0"), status: 400, code: "validation_failed" },
  { name: "every field 2**64", raw: (route) => everyKeyAs(route, "18446744073709551616"), status: 400, code: "validation_failed" },
  { name: "every field a 400-digit number", raw: (route) => everyKeyAs(route, "9".repeat(400)), status: 400, code: "validation_failed" },
  { name: "a __proto__ key", raw: () => '{"__proto__":{"polluted":true,"isAdmin":true}}', status: 400, code: "validation_failed" },
  { name: "a constructor.prototype key", raw: () => '{"constructor":{"prototype":{"polluted":true}}}', status: 400, code: "validation_failed" },
];

describe.each(bodyRoutes)("%s: hostile bodies", (_name, route) => {
  it.each(HOSTILE_CASES)("answers $name with $status $code and changes nothing", async ({ raw, contentType, status, code }) => {
    const before = await rowCounts();
    const res = await send(route, raw(route), contentType);
    expect(res.status).toBe(status);
    expectErrorBody(res, code);
    expect(await rowCounts()).toEqual(before);
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it("accepts a body of exactly 64 KiB as far as the size limit goes", async () => {
    const before = await rowCounts();
    const res = await send(route, `[${" ".repeat(BODY_LIMIT - 2)}]`);
    expect(res.status).toBe(400);
    expectErrorBody(res, "validation_failed");
    expect(await rowCounts()).toEqual(before);
  });

  it("never answers 5xx to random JSON or random values", async () => {
    const bodies = fc.oneof(
      fc.json({ stringUnit: "binary" }),
      fc.anything({ stringUnit: "binary" }).map((value) => JSON.stringify(value) ?? "null"),
    );
    await fc.assert(
      fc.asyncProperty(bodies, async (raw) => {
        const res = await send(route, raw);
        expect(res.status).toBeLessThan(500);
        if (res.status >= 400) expectErrorBody(res);
      }),
      { numRuns: 50 },
    );
  });
});

// Guards run before the body is decoded, so a stranger learns nothing from parse errors.
describe.each(bodyRoutes.filter(([, route]) => route.auth !== "none"))("%s: without credentials", (_name, route) => {
  it("answers 401 without parsing the body, and changes nothing", async () => {
    const before = await rowCounts({ withNonces: true });
    const res = await send(route, '{"a":', "application/json", { credentials: false });
    expect(res.status).toBe(401);
    expectErrorBody(res, "unauthorized");
    expect(await rowCounts({ withNonces: true })).toEqual(before);
  });
});

describe.each(bodyRoutes)("%s: hostile values in an otherwise valid body", (name, route) => {
  const sample = () => {
    const found = samples()[name];
    if (!found) throw new Error(`hostile-input.test.ts has no sample body for ${name}: add one`);
    return found;
  };

  it("has a sample body the contract accepts", () => {
    expect(route.body!.safeParse(sample().body).error).toBeUndefined();
  });

  it.each([
    ["NUL", "a\u0000b"],
    ["a lone high surrogate", "a\ud800"],
    ["a lone low surrogate", "\udc00b"],
  ])("refuses %s in a text field with 400 naming the field", async (_kind, hostile) => {
    const { body, textField } = sample();
    const before = await rowCounts();
    const res = await send(route, JSON.stringify(withValue(body, textField, hostile)));
    expect(res.status).toBe(400);
    const error = expectErrorBody(res, "validation_failed");
    expect(error.error.details?.map((issue) => issue.path)).toContain(textField);
    expect(await rowCounts()).toEqual(before);
  });

  // If any layer copied the parsed body with assignment semantics, a __proto__ key would
  // become the prototype and its (valid) fields would reach validation.
  it("does not read fields through a __proto__ or constructor key", async () => {
    const before = await rowCounts();
    for (const raw of [`{"__proto__":${JSON.stringify(sample().body)}}`, `{"constructor":{"prototype":${JSON.stringify(sample().body)}}}`]) {
      const res = await send(route, raw);
      expect(res.status).toBe(400);
      expectErrorBody(res, "validation_failed");
    }
    expect(await rowCounts()).toEqual(before);
    expect(({} as Record<string, unknown>).deviceTime).toBeUndefined();
  });
});

describe("huge numbers in typed fields", () => {
  it.each([
    ["memory.total", "18446744073709551616"],
    ["memory.total", "1e309"],
    ["uptimeSeconds", "9007199254740993"],
    ["battery.level", "-1e309"],
  ])("POST /v1/heartbeat refuses %s = %s with 400", async (field, literal) => {
    const before = await rowCounts();
    const placeholder = "__HUGE__";
    const raw = JSON.stringify(withValue(heartbeatBody(), field, placeholder)).replace(`"${placeholder}"`, literal);
    const res = await send(apiRoutes.heartbeat, raw);
    expect(res.status).toBe(400);
    expect(expectErrorBody(res, "validation_failed").error.details?.map((issue) => issue.path)).toEqual([field]);
    expect(await rowCounts()).toEqual(before);
  });
});

describe("inputs PostgreSQL cannot store", () => {
  const deep = nested(10_000);

  it("POST /admin/command refuses custom data nested 10,000 levels with 400", async () => {
    const res = await send(apiRoutes.createCommand, `{"type":"custom","deviceId":"${device.deviceId}","payload":{"action":"x","data":${deep}}}`);
    expect(res.status).toBe(400);
  });

  it("POST /v1/action-result refuses a result nested 10,000 levels with 400", async () => {
    const res = await send(apiRoutes.actionResult, `{"requestId":"${UNKNOWN_ID}","status":"succeeded","result":${deep}}`);
    expect(res.status).toBe(400);
  });

  it.each([
    ["NUL", "https://example.com/a\u0000.apk"],
    ["a lone surrogate", "https://example.com/\ud800.apk"],
  ])("POST /admin/command refuses an install URL holding %s with 400", async (_kind, url) => {
    const before = await rowCounts();
    const res = await adminRequest(t.app, "POST", "/admin/command", {
      type: "install_app",
      deviceId: device.deviceId,
      payload: { packageName: "com.a.b", url, sha256: "0f".repeat(32) },
    });
    expect(res.status).toBe(400);
    expect(await rowCounts()).toEqual(before);
  });

  it("POST /v1/heartbeat refuses deviceTime 0000-01-01T00:00:00Z with 400", async () => {
    const res = await send(apiRoutes.heartbeat, JSON.stringify(heartbeatBody({ deviceTime: "0000-01-01T00:00:00Z" })));
    expect(res.status).toBe(400);
  });
});

describe("routing and query errors", () => {
  it.each([
    ["GET", "/nope"],
    ["POST", "/v1/nope"],
    ["DELETE", "/v1/heartbeat"],
    ["GET", "/admin/../../etc/passwd"],
  ])("answers %s %s with a JSON 404", async (method, path) => {
    const res = await request(t.app)[method.toLowerCase() as "get" | "post" | "delete"](path).set("Content-Type", "application/json").send('{"a":');
    expect(res.status).toBe(404);
    expectErrorBody(res, "not_found");
  });

  it("answers GET /admin/devices?limit=abc with 400 at query.limit", async () => {
    const res = await adminRequest(t.app, "GET", "/admin/devices?limit=abc");
    expect(res.status).toBe(400);
    const error = expectErrorBody(res, "validation_failed");
    expect(error.error.details?.map((issue) => issue.path)).toEqual(["query.limit"]);
  });

  it.each(["%zz", "%", "%E0%A4%A"])("answers a path parameter that is not valid percent-encoding (%s) with 400 at params", async (param) => {
    const res = await adminRequest(t.app, "POST", `/admin/enrollment-tokens/${param}/revoke`);
    expect(res.status).toBe(400);
    expect(expectErrorBody(res, "validation_failed").error.details?.map((issue) => issue.path)).toEqual(["params"]);
  });

  it("answers a malformed path parameter with 400 at params", async () => {
    const res = await adminRequest(t.app, "GET", "/admin/devices/not-a-uuid");
    expect(res.status).toBe(400);
    expect(expectErrorBody(res, "validation_failed").error.details?.map((issue) => issue.path)).toEqual(["params.deviceId"]);
  });
});

describe("admin requests with a wrong signature", () => {
  const adminBodyRoutes = bodyRoutes.filter(([, route]) => route.auth === "admin");

  it.each(adminBodyRoutes)("%s: a signature over other bytes is 401 and changes nothing, not even the nonces", async (name, route) => {
    const raw = JSON.stringify(samples()[name]!.body);
    const path = pathOf(route);
    const before = await rowCounts({ withNonces: true });
    // Signed over a different body: what an attacker altering a captured request would send.
    const headers = await signAdminRequest({
      adminKey: TEST_ADMIN_KEY,
      hmacSecret: TEST_HMAC_SECRET,
      method: route.method,
      host: TEST_HOST,
      pathWithQuery: path,
      body: `${raw} `,
    });
    const res = await request(t.app)[route.method](path).set("Host", TEST_HOST).set(headers).set("Content-Type", "application/json").send(raw);
    expect(res.status).toBe(401);
    expectErrorBody(res, "unauthorized");
    const forged = await signAdminRequest({
      adminKey: TEST_ADMIN_KEY,
      hmacSecret: "not-the-secret",
      method: route.method,
      host: TEST_HOST,
      pathWithQuery: path,
      body: raw,
    });
    const res2 = await request(t.app)[route.method](path).set("Host", TEST_HOST).set(forged).set("Content-Type", "application/json").send(raw);
    expect(res2.status).toBe(401);
    expect(await rowCounts({ withNonces: true })).toEqual(before);
  });

  it("the same body correctly signed is accepted, so the 401 was the signature's doing", async () => {
    const before = await rowCounts();
    const res = await adminRequest(t.app, "POST", "/admin/enrollment-tokens", samples().createEnrollmentToken!.body);
    expect(res.status).toBe(201);
    expect((await rowCounts()).EnrollmentToken).toBe(before.EnrollmentToken! + 1);
  });

  it("a replayed nonce is 401 and changes nothing", async () => {
    const raw = JSON.stringify({ label: "replayed" });
    const headers = await signAdminRequest({
      adminKey: TEST_ADMIN_KEY,
      hmacSecret: TEST_HMAC_SECRET,
      method: "POST",
      host: TEST_HOST,
      pathWithQuery: "/admin/enrollment-tokens",
      body: raw,
      nonce: randomUUID(),
    });
    const first = await request(t.app).post("/admin/enrollment-tokens").set("Host", TEST_HOST).set(headers).set("Content-Type", "application/json").send(raw);
    expect(first.status).toBe(201);
    const before = await rowCounts({ withNonces: true });
    const replay = await request(t.app).post("/admin/enrollment-tokens").set("Host", TEST_HOST).set(headers).set("Content-Type", "application/json").send(raw);
    expect(replay.status).toBe(401);
    expect(await rowCounts({ withNonces: true })).toEqual(before);
  });

  it("counts the tables the brief names", async () => {
    expect(Object.keys(await rowCounts())).toEqual(expect.arrayContaining(["Device", "Command", "EnrollmentToken", "TelemetryEvent", "AuditLog"]));
  });
});
