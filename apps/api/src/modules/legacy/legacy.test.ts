import request from "supertest";
import { type TestDatabase, createTestApp, createTestDatabase, heartbeatBody, resetTables } from "../../test";

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
    const res = await request(app).post("/api/devices/heartbeat").set("X-Enrollment-Key", "anything").send({ deviceId: "dev-1", ...heartbeatBody() });
    expect(res.status).toBe(404);
    expect(res.body.error.code).toBe("not_found");
    expect(await database.db.device.count()).toBe(0);
  });

  it("when enabled, enrolls an unknown device on first sight and reuses it afterwards", async () => {
    const { app } = createTestApp(database.db, { env: { LEGACY_ENROLLMENT_KEY: LEGACY_KEY } });
    const send = () =>
      request(app).post("/api/devices/heartbeat").set("X-Enrollment-Key", LEGACY_KEY).send({ deviceId: "kiosk-42", device: { model: "Lenovo M10" }, ...heartbeatBody() });
    const first = await send();
    expect(first.status).toBe(200);
    expect(first.body).toMatchObject({ deviceId: expect.any(String), commands: [], heartbeatIntervalSeconds: 60 });
    const second = await send();
    expect(second.body.deviceId).toBe(first.body.deviceId);
    const device = await database.db.device.findUniqueOrThrow({ where: { legacyId: "kiosk-42" } });
    expect(device).toMatchObject({ id: first.body.deviceId, model: "Lenovo M10", batteryLevel: 81 });
    expect(await database.db.telemetryEvent.count()).toBe(2);
  });

  it("refuses a wrong key with 401 and stores nothing", async () => {
    const { app } = createTestApp(database.db, { env: { LEGACY_ENROLLMENT_KEY: LEGACY_KEY } });
    const res = await request(app).post("/api/devices/heartbeat").set("X-Enrollment-Key", "wrong").send({ deviceId: "kiosk-1", ...heartbeatBody() });
    expect(res.status).toBe(401);
    expect(await database.db.device.count()).toBe(0);
  });
});
