import { randomUUID } from "node:crypto";
import { verifyCommandSignature } from "@mdm/contracts";
import request from "supertest";
import { type TestApp, type TestDatabase, adminRequest, createTestApp, createTestDatabase, heartbeatBody, resetTables } from "../../test";

const LEGACY_KEY = "legacy-key-0123456789abcdef0123456789abcdef";
let database: TestDatabase;

beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(() => database.close());
beforeEach(() => resetTables(database.db));

describe("POST /api/devices/heartbeat (legacy)", () => {
  it("is off by default: 404, and nothing is stored", async () => {
    const { app } = createTestApp(database.db);
    const res = await request(app)
      .post("/api/devices/heartbeat")
      .set("X-Enrollment-Key", "anything")
      .send({ deviceId: "dev-1", ...heartbeatBody() });
    expect(res.status).toBe(404);
    expect(res.body.error.code).toBe("not_found");
    expect(await database.db.device.count()).toBe(0);
  });

  it("when enabled, enrolls an unknown device on first sight, gives it its own token, and knows it by that token afterwards", async () => {
    const { app } = createTestApp(database.db, { env: { LEGACY_ENROLLMENT_KEY: LEGACY_KEY } });
    const send = (token?: string) => {
      const call = request(app).post("/api/devices/heartbeat").set("X-Enrollment-Key", LEGACY_KEY);
      return (token ? call.set("Authorization", `Bearer ${token}`) : call).send({ deviceId: "kiosk-42", device: { model: "Lenovo M10" }, ...heartbeatBody() });
    };
    const first = await send();
    expect(first.status).toBe(200);
    expect(first.body).toMatchObject({
      deviceId: expect.any(String),
      commands: [],
      heartbeatIntervalSeconds: 60,
      deviceToken: expect.any(String),
      commandKey: expect.any(String),
    });
    const second = await send(first.body.deviceToken);
    expect(second.status).toBe(200);
    expect(second.body.deviceId).toBe(first.body.deviceId);
    expect(second.body.deviceToken).toBeUndefined();
    const device = await database.db.device.findUniqueOrThrow({ where: { legacyId: "kiosk-42" } });
    expect(device).toMatchObject({ id: first.body.deviceId, model: "Lenovo M10", batteryLevel: 81 });
    expect(await database.db.telemetryEvent.count()).toBe(2);
  });

  it("refuses a wrong key with 401 and stores nothing", async () => {
    const { app } = createTestApp(database.db, { env: { LEGACY_ENROLLMENT_KEY: LEGACY_KEY } });
    const res = await request(app)
      .post("/api/devices/heartbeat")
      .set("X-Enrollment-Key", "wrong")
      .send({ deviceId: "kiosk-1", ...heartbeatBody() });
    expect(res.status).toBe(401);
    expect(await database.db.device.count()).toBe(0);
  });
});

describe("legacy devices cannot be impersonated with the shared key", () => {
  const legacy = (app: TestApp["app"], deviceId: string, options: { token?: string; body?: Record<string, unknown> } = {}) => {
    const call = request(app).post("/api/devices/heartbeat").set("X-Enrollment-Key", LEGACY_KEY);
    return (options.token ? call.set("Authorization", `Bearer ${options.token}`) : call).send({ deviceId, ...heartbeatBody(), ...options.body });
  };

  it("refuses a known device id without its token: its commands stay put and its FCM token is not replaced", async () => {
    const t = createTestApp(database.db, { env: { LEGACY_ENROLLMENT_KEY: LEGACY_KEY } });
    const victim = await legacy(t.app, "kiosk-7", { body: { fcmToken: "victim-fcm" } });
    const install = await adminRequest(t.app, "POST", "/admin/command", {
      deviceId: victim.body.deviceId,
      type: "install_app",
      payload: { packageName: "com.example.pos", url: "https://apps.example.com/pos.apk", sha256: "a".repeat(64) },
    });
    expect(install.status).toBe(201);

    const attacker = await legacy(t.app, "kiosk-7", { body: { fcmToken: "attacker-fcm" } });
    expect(attacker.status).toBe(401);
    expect(attacker.body.commands).toBeUndefined();
    const other = await legacy(t.app, "kiosk-8");
    const wrongToken = await legacy(t.app, "kiosk-7", { token: other.body.deviceToken });
    expect(wrongToken.status).toBe(401);

    expect(await database.db.command.findUniqueOrThrow({ where: { requestId: install.body.requestId } })).toMatchObject({ status: "queued" });
    expect(await database.db.device.findUniqueOrThrow({ where: { id: victim.body.deviceId } })).toMatchObject({ fcmToken: "victim-fcm" });

    const owner = await legacy(t.app, "kiosk-7", { token: victim.body.deviceToken });
    expect(owner.body.commands).toEqual([expect.objectContaining({ requestId: install.body.requestId, type: "install_app" })]);
  });

  it("gives a device enrolled before tokens existed its token at its next contact within LEGACY_CLAIM_UNTIL, then requires it", async () => {
    const t = createTestApp(database.db, { env: { LEGACY_ENROLLMENT_KEY: LEGACY_KEY, LEGACY_CLAIM_UNTIL: new Date(Date.now() + 3600_000).toISOString() } });
    const old = await database.db.device.create({ data: { id: randomUUID(), legacyId: "old-kiosk", tokenHash: "0".repeat(64) } });
    const first = await legacy(t.app, "old-kiosk");
    expect(first.status).toBe(200);
    expect(first.body).toMatchObject({ deviceId: old.id, deviceToken: expect.stringMatching(new RegExp(`^${old.id}\\.`)) });
    expect((await legacy(t.app, "old-kiosk")).status).toBe(401);
    expect((await legacy(t.app, "old-kiosk", { token: first.body.deviceToken })).status).toBe(200);
  });

  it("refuses to hand out the token of a retired device enrolled before tokens existed, within the claim window too", async () => {
    const t = createTestApp(database.db, { env: { LEGACY_ENROLLMENT_KEY: LEGACY_KEY, LEGACY_CLAIM_UNTIL: new Date(Date.now() + 3600_000).toISOString() } });
    const old = await database.db.device.create({ data: { id: randomUUID(), legacyId: "retired-kiosk", tokenHash: "0".repeat(64) } });
    expect((await adminRequest(t.app, "POST", `/admin/devices/${old.id}/retire`)).status).toBe(200);
    const claim = await legacy(t.app, "retired-kiosk");
    expect(claim.status).toBe(401);
    expect(claim.body.error).toMatchObject({ code: "unauthorized", message: expect.stringContaining("retired") });
    expect(claim.body.deviceToken).toBeUndefined();
    const row = await database.db.device.findUniqueOrThrow({ where: { id: old.id } });
    expect(row).toMatchObject({ tokenHash: "0".repeat(64), legacyTokenIssuedAt: null, online: false });
    expect(row.retiredAt).not.toBeNull();
    expect(await database.db.auditLog.count({ where: { action: "device.legacy_token_issued" } })).toBe(0);
    expect(await database.db.telemetryEvent.count({ where: { deviceId: old.id } })).toBe(0);
  });

  it("refuses to hand out the token of a device enrolled before tokens existed without a claim window, or after it closed", async () => {
    const old = await database.db.device.create({ data: { id: randomUUID(), legacyId: "old-till", tokenHash: "0".repeat(64) } });
    const claimWindows: Array<Record<string, string>> = [{}, { LEGACY_CLAIM_UNTIL: new Date(Date.now() - 1000).toISOString() }];
    for (const claimWindow of claimWindows) {
      const t = createTestApp(database.db, { env: { LEGACY_ENROLLMENT_KEY: LEGACY_KEY, ...claimWindow } });
      const claim = await legacy(t.app, "old-till");
      expect(claim.status).toBe(401);
      expect(claim.body.error.message).toMatch(/LEGACY_CLAIM_UNTIL/);
      expect(claim.body.deviceToken).toBeUndefined();
    }
    expect(await database.db.device.findUniqueOrThrow({ where: { id: old.id } })).toMatchObject({ tokenHash: "0".repeat(64), legacyTokenIssuedAt: null });
  });

  it("lets a legacy device report results with its token", async () => {
    const t = createTestApp(database.db, { env: { LEGACY_ENROLLMENT_KEY: LEGACY_KEY } });
    const enrolled = await legacy(t.app, "kiosk-9");
    const created = await adminRequest(t.app, "POST", "/admin/command", { deviceId: enrolled.body.deviceId, type: "ping" });
    const answer = await legacy(t.app, "kiosk-9", { token: enrolled.body.deviceToken });
    expect(answer.body.commands[0]).toMatchObject({ requestId: created.body.requestId });
    expect(await verifyCommandSignature(enrolled.body.commandKey, answer.body.commands[0])).toBe(true);
    const result = await request(t.app)
      .post("/v1/action-result")
      .set("Authorization", `Bearer ${enrolled.body.deviceToken}`)
      .send({ requestId: created.body.requestId, status: "succeeded", result: { pong: true } });
    expect(result.body).toEqual({ requestId: created.body.requestId, status: "succeeded", changed: true });
  });

  it("limits new enrollments per client address, not the heartbeats of enrolled devices", async () => {
    const t = createTestApp(database.db, { env: { LEGACY_ENROLLMENT_KEY: LEGACY_KEY, RATE_LIMIT_LEGACY_ENROLLMENT_PER_MINUTE: "3" } });
    const enrolled = [];
    for (let i = 0; i < 3; i++) enrolled.push(await legacy(t.app, `fresh-${i}`));
    expect(enrolled.map((res) => res.status)).toEqual([200, 200, 200]);
    const fourth = await legacy(t.app, "fresh-3");
    expect(fourth.status).toBe(429);
    expect(fourth.headers["retry-after"]).toMatch(/^\d+$/);
    expect(await database.db.device.count()).toBe(3);
    expect((await legacy(t.app, "fresh-0", { token: enrolled[0]!.body.deviceToken })).status).toBe(200);
  });

  it("answers 410 after the sunset date", async () => {
    const t = createTestApp(database.db, { env: { LEGACY_ENROLLMENT_KEY: LEGACY_KEY, LEGACY_SUNSET_AT: "2020-01-01T00:00:00Z" } });
    const res = await legacy(t.app, "late-kiosk");
    expect(res.status).toBe(410);
    expect(res.body.error).toMatchObject({ code: "gone", message: expect.stringContaining("2020-01-01") });
    expect(await database.db.device.count()).toBe(0);
  });
});
