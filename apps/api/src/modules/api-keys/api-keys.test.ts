import { type CreateApiKeyResponse, ListApiKeysResponse, signAdminRequest } from "@mdm/contracts";
import type { Express } from "express";
import request from "supertest";
import { TEST_HOST, type TestApp, type TestDatabase, adminRequest, createTestApp, createTestDatabase, enrollDevice, resetTables } from "../../test";

let database: TestDatabase;
let t: TestApp;

beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(() => database.close());
beforeEach(async () => {
  await resetTables(database.db);
  t = createTestApp(database.db);
});

type Method = "GET" | "POST" | "PATCH" | "DELETE";

/** A request signed with an API key: its id in X-Admin, its own secret as the HMAC key. */
async function keyRequest(app: Express, key: { id: string; secret: string }, method: Method, pathWithQuery: string, body?: unknown, forwardedFor?: string) {
  const raw = body === undefined ? "" : JSON.stringify(body);
  const headers = await signAdminRequest({ adminKey: key.id, hmacSecret: key.secret, method, host: TEST_HOST, pathWithQuery, body: raw });
  let call = request(app)[method.toLowerCase() as "get" | "post" | "patch" | "delete"](pathWithQuery).set(headers).set("Host", TEST_HOST);
  if (forwardedFor) call = call.set("X-Forwarded-For", forwardedFor);
  return body === undefined ? call : call.set("Content-Type", "application/json").send(raw);
}

async function createKey(body: Record<string, unknown>): Promise<CreateApiKeyResponse> {
  const res = await adminRequest(t.app, "POST", "/admin/api-keys", body);
  expect(res.status).toBe(201);
  return res.body;
}

describe("API keys", () => {
  it("signs requests with its own secret; its actions are audited and its commands recorded under its name", async () => {
    const key = await createKey({ name: "ticketing-sync", role: "operator" });
    expect(key).toMatchObject({ name: "ticketing-sync", role: "operator", revokedAt: null, lastUsedAt: null, actor: `api-key:ticketing-sync (${key.id})` });
    expect(key.secret).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const device = await enrollDevice(t.app);

    const sent = await keyRequest(t.app, key, "POST", "/admin/command", { deviceId: device.deviceId, type: "ping" });
    expect(sent.status).toBe(201);
    expect(sent.body.createdBy).toBe(key.actor);
    const token = await keyRequest(t.app, key, "POST", "/admin/enrollment-tokens", { maxUses: 1, label: "from the key" });
    expect(token.status).toBe(201);

    const entries = await database.db.auditLog.findMany({ where: { actor: key.actor }, orderBy: { id: "asc" } });
    expect(entries.map((entry) => entry.action)).toEqual(["command.create", "enrollment_token.create"]);
    const created = await database.db.auditLog.findFirst({ where: { action: "api_key.create" } });
    expect(created).toMatchObject({ targetType: "api_key", targetId: key.id, details: expect.objectContaining({ name: "ticketing-sync", role: "operator" }) });

    const listed = ListApiKeysResponse.parse((await adminRequest(t.app, "GET", "/admin/api-keys")).body);
    expect(listed.keys[0]!.lastUsedAt).not.toBeNull();
  });

  it("an admin key reads the audit log and manages users as an admin user does; a viewer key gets 403 there", async () => {
    const admin = await createKey({ name: "directory-sync", role: "admin" });
    const invited = await keyRequest(t.app, admin, "POST", "/admin/users", { email: "new.hire@example.com", name: "New Hire", role: "viewer" });
    expect(invited.status).toBe(201);
    const users = await keyRequest(t.app, admin, "GET", "/admin/users");
    expect(users.status).toBe(200);
    expect(users.body.users.map((user: { email: string }) => user.email)).toEqual(["new.hire@example.com"]);
    const promoted = await keyRequest(t.app, admin, "PATCH", `/admin/users/${invited.body.id}`, { role: "operator" });
    expect(promoted.body).toMatchObject({ role: "operator" });
    const audit = await keyRequest(t.app, admin, "GET", `/admin/audit-log?actor=${encodeURIComponent(admin.actor)}`);
    expect(audit.status).toBe(200);
    expect(audit.body.entries.map((entry: { action: string }) => entry.action)).toEqual(["user.role_change", "user.invite"]);
    // The bootstrap key too.
    expect((await adminRequest(t.app, "GET", "/admin/audit-log")).status).toBe(200);

    const viewer = await createKey({ name: "dashboard-tv", role: "viewer" });
    for (const [method, path] of [
      ["GET", "/admin/users"],
      ["GET", "/admin/audit-log"],
    ] as const) {
      const refused = await keyRequest(t.app, viewer, method, path);
      expect(refused.status).toBe(403);
      expect(refused.body.error.code).toBe("forbidden");
    }
  });

  it("never returns the secret after creation", async () => {
    const key = await createKey({ name: "reporting", role: "viewer" });
    const listed = await adminRequest(t.app, "GET", "/admin/api-keys");
    expect(listed.status).toBe(200);
    expect(JSON.stringify(listed.body)).not.toContain(key.secret);
    expect(listed.body.keys[0]).not.toHaveProperty("secret");
    const revoked = await adminRequest(t.app, "POST", `/admin/api-keys/${key.id}/revoke`);
    expect(JSON.stringify(revoked.body)).not.toContain(key.secret);
    const audit = await database.db.auditLog.findMany();
    expect(JSON.stringify(audit.map((entry) => entry.details))).not.toContain(key.secret);
  });

  it("a revoked key is refused at once, on every instance", async () => {
    const key = await createKey({ name: "to-revoke", role: "viewer" });
    const other = createTestApp(database.db);
    expect((await keyRequest(other.app, key, "GET", "/admin/devices")).status).toBe(200);

    const revoked = await adminRequest(t.app, "POST", `/admin/api-keys/${key.id}/revoke`);
    expect(revoked.status).toBe(200);
    expect(revoked.body.revokedAt).not.toBeNull();

    for (const app of [t.app, other.app]) {
      const refused = await keyRequest(app, key, "GET", "/admin/devices");
      expect(refused.status).toBe(401);
      expect(refused.body.error.message).toMatch(/revoked/);
    }
    const audited = await database.db.auditLog.findFirst({ where: { action: "api_key.revoke" } });
    expect(audited).toMatchObject({ targetId: key.id });
  });

  it("a viewer key reads but cannot send commands (403)", async () => {
    const key = await createKey({ name: "dashboards", role: "viewer" });
    const device = await enrollDevice(t.app);
    expect((await keyRequest(t.app, key, "GET", `/admin/devices/${device.deviceId}`)).status).toBe(200);
    const refused = await keyRequest(t.app, key, "POST", "/admin/command", { deviceId: device.deviceId, type: "reboot" });
    expect(refused.status).toBe(403);
    expect(refused.body.error.code).toBe("forbidden");
    expect(await database.db.command.count()).toBe(0);
    // Nor manage keys: that is the admin role's.
    expect((await keyRequest(t.app, key, "POST", "/admin/api-keys", { name: "escalate", role: "admin" })).status).toBe(403);
  });

  it("an expired key is refused", async () => {
    const key = await createKey({ name: "short-lived", role: "viewer", expiresAt: new Date(Date.now() + 60_000).toISOString() });
    expect((await keyRequest(t.app, key, "GET", "/admin/devices")).status).toBe(200);
    await database.db.apiKey.update({ where: { id: key.id }, data: { expiresAt: new Date(Date.now() - 1000) } });
    const refused = await keyRequest(t.app, key, "GET", "/admin/devices");
    expect(refused.status).toBe(401);
    expect(refused.body.error.message).toMatch(/expired/);
  });

  it("is refused from addresses outside its allowed ranges, IPv4 and IPv6", async () => {
    const key = await createKey({ name: "office", role: "viewer", allowedCidrs: ["10.1.0.0/16", "2001:db8::/32"] });
    expect((await keyRequest(t.app, key, "GET", "/admin/devices", undefined, "10.1.2.3")).status).toBe(200);
    expect((await keyRequest(t.app, key, "GET", "/admin/devices", undefined, "2001:db8::7")).status).toBe(200);
    const outside = await keyRequest(t.app, key, "GET", "/admin/devices", undefined, "10.2.0.1");
    expect(outside.status).toBe(403);
    expect((await keyRequest(t.app, key, "GET", "/admin/devices", undefined, "2001:db9::1")).status).toBe(403);
    // No forwarded address: the loopback connection itself is outside the ranges.
    expect((await keyRequest(t.app, key, "GET", "/admin/devices")).status).toBe(403);
  });

  it("refuses a wrong signature, an unknown key id and bad input", async () => {
    const key = await createKey({ name: "signer", role: "admin" });
    expect((await keyRequest(t.app, { id: key.id, secret: "not-the-secret" }, "GET", "/admin/devices")).status).toBe(401);
    expect((await keyRequest(t.app, { id: "mdmk_aaaaaaaaaaaaaaaaaaaaaaaaaa", secret: key.secret }, "GET", "/admin/devices")).status).toBe(401);
    const badCidr = await adminRequest(t.app, "POST", "/admin/api-keys", { name: "x", role: "viewer", allowedCidrs: ["10.0.0.1"] });
    expect(badCidr.status).toBe(400);
    expect(badCidr.body.error.details[0].path).toBe("allowedCidrs.0");
    expect((await adminRequest(t.app, "POST", "/admin/api-keys", { name: "x", role: "root" })).status).toBe(400);
    expect((await adminRequest(t.app, "POST", "/admin/api-keys", { name: "x", role: "viewer", expiresAt: "2001-01-01T00:00:00Z" })).status).toBe(400);
    expect((await adminRequest(t.app, "POST", "/admin/api-keys/mdmk_aaaaaaaaaaaaaaaaaaaaaaaaaa/revoke")).status).toBe(404);
    expect((await adminRequest(t.app, "POST", "/admin/api-keys/nope/revoke")).status).toBe(400);
  });
});
