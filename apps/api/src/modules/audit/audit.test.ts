import { ListAuditLogResponse } from "@mdm/contracts";
import request from "supertest";
import { pruneAuditLog } from "../../jobs/maintenance";
import { maintainTelemetryPartitions } from "../../jobs/telemetry-partitions";
import {
  TEST_ADMIN_KEY,
  type TestApp,
  type TestDatabase,
  adminRequest,
  createTestApp,
  createTestDatabase,
  enrollDevice,
  heartbeatBody,
  resetTables,
} from "../../test";
import { adminKeyId } from "../admin-auth/admin-auth.middleware";
import { sweepOffline } from "../fleet/fleet-monitor";
import { type SignedIn, asBrowser, signedInUser } from "../../test/sessions";

let database: TestDatabase;
let t: TestApp;
let admin: SignedIn;

beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(() => database.close());
beforeEach(async () => {
  await resetTables(database.db);
  t = createTestApp(database.db);
  admin = await signedInUser(t, "admin", "admin@example.com");
  await database.db.auditLog.deleteMany();
});

const at = (minutes: number) => new Date(Date.UTC(2026, 10, 25, 12, minutes));

async function seed() {
  await database.db.auditLog.createMany({
    data: [
      { at: at(0), actor: "alice@example.com", action: "user.invite", targetType: "user", targetId: "u1", ip: "10.0.0.1", details: { role: "viewer" } },
      { at: at(1), actor: "bob@example.com", action: "auth.login", targetType: "user", targetId: "u2" },
      { at: at(2), actor: "alice@example.com", action: "command.create", targetType: "device", targetId: "d1" },
      // Two entries at the same instant: the id orders them.
      { at: at(3), actor: "alice@example.com", action: "auth.login", targetType: "user", targetId: "u1" },
      { at: at(3), actor: "bob@example.com", action: "auth.logout", targetType: "user", targetId: "u2" },
    ],
  });
}

const list = (query = "") => asBrowser(t.app, admin, "get", `/admin/audit-log${query}`);

describe("GET /admin/audit-log", () => {
  it("lists entries newest first, with every field", async () => {
    await seed();
    const res = await list();
    expect(res.status).toBe(200);
    const { entries, nextCursor } = ListAuditLogResponse.parse(res.body);
    expect(entries.map((entry) => entry.action)).toEqual(["auth.logout", "auth.login", "command.create", "auth.login", "user.invite"]);
    expect(entries.at(-1)).toEqual({
      id: expect.stringMatching(/^\d+$/),
      at: at(0).toISOString(),
      actor: "alice@example.com",
      actorName: "alice@example.com",
      action: "user.invite",
      targetType: "user",
      targetId: "u1",
      targetName: null,
      ip: "10.0.0.1",
      details: { role: "viewer" },
    });
    expect(nextCursor).toBeNull();
  });

  it("names the targets and actors it knows: device alias, user email, enrollment token label, the admin key", async () => {
    const tokenRes = await adminRequest(t.app, "POST", "/admin/enrollment-tokens", { maxUses: 5, label: "Store 7" });
    const device = await enrollDevice(t.app, { serialNumber: "SN-42" });
    await adminRequest(t.app, "PATCH", `/admin/devices/${device.deviceId}`, { alias: "Till 3" });
    const res = await list();
    const entries = ListAuditLogResponse.parse(res.body).entries;
    const update = entries.find((entry) => entry.action === "device.update")!;
    expect(update).toMatchObject({
      targetId: device.deviceId,
      targetName: "Till 3",
      actorName: `Admin key (ADMIN_KEY ${adminKeyId(TEST_ADMIN_KEY).slice("admin-key:".length)})`,
    });
    const created = entries.find((entry) => entry.action === "enrollment_token.create" && entry.targetId === tokenRes.body.id)!;
    expect(created).toMatchObject({ targetId: tokenRes.body.id, targetName: "Store 7" });
    const enrolled = entries.filter((entry) => entry.action === "device.enroll" && entry.targetId === device.deviceId);
    expect(enrolled).toEqual([expect.objectContaining({ targetName: "Till 3", actorName: expect.stringMatching(/^Enrollment token/) })]);
    const user = await database.db.user.findFirstOrThrow({ where: { email: "admin@example.com" } });
    await database.db.auditLog.create({ data: { actor: "admin@example.com", action: "user.update", targetType: "user", targetId: user.id } });
    const [named] = ListAuditLogResponse.parse((await list("?targetType=user")).body).entries;
    expect(named).toMatchObject({ targetId: user.id, targetName: "admin@example.com" });
  });

  it("pages with the cursor, without overlap or gap, through entries sharing a time", async () => {
    await seed();
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const res = await list(`?limit=2${cursor ? `&cursor=${cursor}` : ""}`);
      expect(res.status).toBe(200);
      const page = ListAuditLogResponse.parse(res.body);
      seen.push(...page.entries.map((entry) => entry.id));
      cursor = page.nextCursor;
      pages += 1;
    } while (cursor);
    expect(pages).toBe(3);
    const all = ListAuditLogResponse.parse((await list()).body).entries.map((entry) => entry.id);
    expect(seen).toEqual(all);
  });

  it.each([
    ["actor", "?actor=alice@example.com", ["auth.login", "command.create", "user.invite"]],
    ["action", "?action=auth.login", ["auth.login", "auth.login"]],
    ["target", "?targetType=user&targetId=u2", ["auth.logout", "auth.login"]],
    ["time range", `?from=${at(1).toISOString()}&to=${at(3).toISOString()}`, ["command.create", "auth.login"]],
    ["several at once", "?actor=bob@example.com&action=auth.login", ["auth.login"]],
  ])("filters by %s", async (_case, query, actions) => {
    await seed();
    const res = await list(query);
    expect(res.status).toBe(200);
    expect(res.body.entries.map((entry: { action: string }) => entry.action)).toEqual(actions);
  });

  it.each([
    ["an unknown cursor", "?cursor=999999"],
    ["a malformed cursor", "?cursor=abc"],
    ["a cursor past bigint", "?cursor=9999999999999999999"],
    ["a limit over 200", "?limit=201"],
    ["a malformed time", "?from=yesterday"],
    ["an unknown filter", "?user=alice"],
  ])("refuses %s with 400", async (_case, query) => {
    await seed();
    const res = await list(query);
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe("validation_failed");
  });

  it("is for admins: viewers and operators get 403", async () => {
    for (const role of ["viewer", "operator"] as const) {
      const user = await signedInUser(t, role);
      const res = await asBrowser(t.app, user, "get", "/admin/audit-log");
      expect(res.status).toBe(403);
      expect(res.body.error.code).toBe("forbidden");
    }
  });

  it("refuses a request without a session with 401", async () => {
    expect((await request(t.app).get("/admin/audit-log")).status).toBe(401);
  });

  it("shows what the auth routes record, with the address", async () => {
    await request(t.app).post("/auth/login").send({ email: "admin@example.com", password: "wrong password" });
    const { entries } = ListAuditLogResponse.parse((await list("?action=auth.login_failed")).body);
    expect(entries).toHaveLength(1);
    expect(entries[0]).toMatchObject({ actor: "anonymous", details: { email: "admin@example.com", reason: "wrong_password" }, ip: expect.any(String) });
  });
});

describe("what the audit log records", () => {
  const entries = (action: string) => database.db.auditLog.findMany({ where: { action }, orderBy: { id: "asc" } });

  it("names the admin key that signed a request by its id, never the key, nor a bare 'admin-key'", async () => {
    await adminRequest(t.app, "POST", "/admin/enrollment-tokens", { maxUses: 1 });
    const [entry] = await entries("enrollment_token.create");
    expect(entry!.actor).toBe(adminKeyId(TEST_ADMIN_KEY));
    expect(entry!.actor).toMatch(/^admin-key:[0-9a-f]{12}$/);
    expect(entry!.actor).not.toContain(TEST_ADMIN_KEY);
    // Another key has another id: entries tell keys apart across a rotation.
    expect(adminKeyId("another-admin-key-0123456789abcdef0123")).not.toBe(entry!.actor);
  });

  it("records each enrollment with its enrollment token and the device's address", async () => {
    const device = await enrollDevice(t.app);
    const tokenId = (await database.db.device.findUniqueOrThrow({ where: { id: device.deviceId } })).enrollmentTokenId;
    const [entry] = await entries("device.enroll");
    expect(entry).toMatchObject({ actor: `enrollment-token:${tokenId}`, targetType: "device", targetId: device.deviceId, ip: expect.any(String) });
  });

  it("records a legacy device's enrollment, once", async () => {
    const legacy = createTestApp(database.db, { env: { LEGACY_ENROLLMENT_KEY: "legacy-key-0123456789abcdef0123456789abcdef" } });
    let deviceToken: string | undefined;
    for (let i = 0; i < 2; i++) {
      const call = request(legacy.app).post("/api/devices/heartbeat").set("X-Enrollment-Key", "legacy-key-0123456789abcdef0123456789abcdef");
      const res = await (deviceToken ? call.set("Authorization", `Bearer ${deviceToken}`) : call).send({ deviceId: "old-agent-7", ...heartbeatBody() });
      expect(res.status).toBe(200);
      deviceToken ??= res.body.deviceToken;
    }
    const recorded = await entries("device.enroll_legacy");
    expect(recorded).toHaveLength(1);
    expect(recorded[0]).toMatchObject({ actor: "legacy-enrollment-key", targetType: "device", details: { legacyId: "old-agent-7" } });
  });

  it("records every alert mail with its recipients", async () => {
    await adminRequest(t.app, "PATCH", "/admin/alert-settings", { recipients: ["ops@example.com"], offlineAfterSeconds: 240 });
    const device = await enrollDevice(t.app);
    await request(t.app).post("/v1/heartbeat").auth(device.deviceToken, { type: "bearer" }).send(heartbeatBody());
    t.clock.advance(241);
    await sweepOffline(t.deps);
    t.clock.advance(15 * 60); // the end of the alert window: its digest is due
    await sweepOffline(t.deps);
    const mails = await t.outbox();
    expect(mails).toHaveLength(1);
    expect(mails[0]!.text).toContain(device.deviceId);
    const [entry] = await entries("alert.mail_sent");
    expect(entry).toMatchObject({
      actor: "system:offline-monitor",
      targetType: "alert",
      details: { kind: "digest", recipients: ["ops@example.com"], mailId: mails[0]!.id.toString(), events: 1 },
    });
  });
});

describe("audit retention", () => {
  it("keeps entries AUDIT_RETENTION_DAYS, whatever the telemetry retention", async () => {
    const now = t.clock.now().getTime();
    const daysAgo = (days: number) => new Date(now - days * 24 * 3600_000);
    await database.db.auditLog.createMany({
      data: [
        { at: daysAgo(400), actor: "a", action: "old" },
        { at: daysAgo(300), actor: "a", action: "recent" },
        { at: daysAgo(3), actor: "a", action: "days" },
      ],
    });
    // Telemetry housekeeping (48 hours) leaves audit rows alone...
    await maintainTelemetryPartitions(t.deps, 48);
    expect(await database.db.auditLog.count()).toBeGreaterThanOrEqual(3);
    // ...and the audit's own retention (365 days by default) drops only what is older.
    expect(t.deps.env.AUDIT_RETENTION_DAYS).toBe(365);
    expect(await pruneAuditLog(t.deps, t.deps.env.AUDIT_RETENTION_DAYS)).toBe(1);
    const left = (await database.db.auditLog.findMany()).map((entry) => entry.action);
    expect(left).toEqual(expect.arrayContaining(["recent", "days"]));
    expect(left).not.toContain("old");
  });
});
