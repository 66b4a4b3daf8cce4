import request from "supertest";
import { adminKeyId } from "../admin-auth/admin-auth.middleware";
import {
  TEST_ADMIN_KEY,
  type TestApp,
  type TestDatabase,
  adminRequest,
  createEnrollmentToken,
  createTestApp,
  createTestDatabase,
  resetTables,
} from "../../test";

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

describe("POST /v1/register: happy", () => {
  it("enrolls a device and returns its id, token and command key once", async () => {
    const enrollmentToken = await createEnrollmentToken(t.app, { maxUses: 2 });
    const res = await request(t.app)
      .post("/v1/register")
      .send({ enrollmentToken, device: { model: "TC52", manufacturer: "Zebra", osVersion: "11", sdkInt: 30, appVersion: "1.4.0", fcmToken: "fcm-abc" } });
    expect(res.status).toBe(201);
    expect(res.body.deviceToken).toMatch(new RegExp(`^${res.body.deviceId}\\.[A-Za-z0-9_-]{43}$`));
    expect(res.body.commandKey).toMatch(/^[a-f0-9]{64}$/);
    expect(res.body.heartbeatIntervalSeconds).toBe(60);

    const device = await database.db.device.findUniqueOrThrow({ where: { id: res.body.deviceId } });
    expect(device).toMatchObject({ model: "TC52", manufacturer: "Zebra", sdkInt: 30, fcmToken: "fcm-abc" });
    // Only a hash of the secret is stored.
    expect(device.tokenHash).toMatch(/^[a-f0-9]{64}$/);
    expect(JSON.stringify(device)).not.toContain(res.body.deviceToken.split(".")[1]);
    const token = await database.db.enrollmentToken.findFirstOrThrow();
    expect(token.usedCount).toBe(1);
  });

  it("lists the enrolled device to admins", async () => {
    const enrollmentToken = await createEnrollmentToken(t.app);
    const registered = await request(t.app)
      .post("/v1/register")
      .send({ enrollmentToken, device: { model: "A" } });
    const list = await adminRequest(t.app, "GET", "/admin/devices?limit=10");
    expect(list.status).toBe(200);
    expect(list.body.devices).toHaveLength(1);
    expect(list.body.devices[0]).toMatchObject({ id: registered.body.deviceId, model: "A", lastSeenAt: null });
    expect(JSON.stringify(list.body)).not.toContain("tokenHash");
  });
});

describe("POST /v1/register: errors", () => {
  it("refuses a token used up, and two racing devices cannot share the last use", async () => {
    const enrollmentToken = await createEnrollmentToken(t.app, { maxUses: 1 });
    const results = await Promise.all(Array.from({ length: 5 }, () => request(t.app).post("/v1/register").send({ enrollmentToken, device: {} })));
    expect(results.map((res) => res.status).sort()).toEqual([201, 401, 401, 401, 401]);
    expect(await database.db.device.count()).toBe(1);
    expect((await database.db.enrollmentToken.findFirstOrThrow()).usedCount).toBe(1);
  });

  it("refuses an expired token", async () => {
    const enrollmentToken = await createEnrollmentToken(t.app, { expiresInSeconds: 60 });
    t.clock.advance(61);
    const res = await request(t.app).post("/v1/register").send({ enrollmentToken });
    expect(res.status).toBe(401);
    expect(res.body.error.code).toBe("unauthorized");
    expect(await database.db.device.count()).toBe(0);
  });

  it("answers 400 with field paths for invalid facts", async () => {
    const enrollmentToken = await createEnrollmentToken(t.app);
    const res = await request(t.app)
      .post("/v1/register")
      .send({ enrollmentToken, device: { sdkInt: "thirty", model: "x".repeat(500) } });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe("validation_failed");
    expect(res.body.error.details.map((issue: { path: string }) => issue.path).sort()).toEqual(["device.model", "device.sdkInt"]);
    expect(await database.db.device.count()).toBe(0);
  });
});

describe("POST /v1/register: security", () => {
  it("refuses a forged token with a valid id but a wrong secret", async () => {
    const enrollmentToken = await createEnrollmentToken(t.app);
    const forged = `${enrollmentToken.split(".")[0]}.${"A".repeat(43)}`;
    const res = await request(t.app).post("/v1/register").send({ enrollmentToken: forged });
    expect(res.status).toBe(401);
    expect(await database.db.device.count()).toBe(0);
    expect((await database.db.enrollmentToken.findFirstOrThrow()).usedCount).toBe(0);
  });

  it.each(["", "not-a-token", "00000000-0000-0000-0000-000000000000.short", '\'; DROP TABLE "Device"; --'])(
    "refuses the garbage token %j",
    async (enrollmentToken) => {
      const res = await request(t.app).post("/v1/register").send({ enrollmentToken });
      expect([400, 401]).toContain(res.status);
      expect(res.body.error.requestId).toBeTruthy();
    },
  );
});

describe("enrollment tokens: list and revoke", () => {
  it("lists tokens with their use, never their secret, and a revoked token enrolls nobody", async () => {
    const enrollmentToken = await createEnrollmentToken(t.app, { maxUses: 5, label: "store 7" });
    await request(t.app).post("/v1/register").send({ enrollmentToken });
    const listed = await adminRequest(t.app, "GET", "/admin/enrollment-tokens");
    expect(listed.status).toBe(200);
    expect(listed.body.tokens).toEqual([
      expect.objectContaining({ label: "store 7", maxUses: 5, usedCount: 1, revokedAt: null, createdBy: adminKeyId(TEST_ADMIN_KEY) }),
    ]);
    expect(JSON.stringify(listed.body)).not.toContain(enrollmentToken.split(".")[1]);

    const id = enrollmentToken.split(".")[0];
    const revoked = await adminRequest(t.app, "POST", `/admin/enrollment-tokens/${id}/revoke`);
    expect(revoked.status).toBe(200);
    expect(revoked.body.revokedAt).not.toBeNull();
    const again = await adminRequest(t.app, "POST", `/admin/enrollment-tokens/${id}/revoke`);
    expect(again.body.revokedAt).toBe(revoked.body.revokedAt);
    const refused = await request(t.app).post("/v1/register").send({ enrollmentToken });
    expect(refused.status).toBe(401);
    expect(await database.db.device.count()).toBe(1);
    expect((await adminRequest(t.app, "POST", "/admin/enrollment-tokens/00000000-0000-4000-8000-000000000000/revoke")).status).toBe(404);
  });
});
