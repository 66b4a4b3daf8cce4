import http from "node:http";
import type { AddressInfo } from "node:net";
import { SimulatedDevice } from "@mdm/simulator";
import request from "supertest";
import {
  type TestApp,
  type TestDatabase,
  adminRequest,
  createEnrollmentToken,
  createTestApp,
  createTestDatabase,
  describeWithPostgres,
  resetTables,
} from "../../test";

// The lifecycle command types end to end: the admin API queues them, the simulator (a real
// HTTP client of the API, verifying signatures) runs them from its heartbeat's answer and
// reports results the server checks against the contract's result schemas.
describeWithPostgres("wipe, factory_reset, lost_mode and locate", () => {
  let database: TestDatabase;
  let t: TestApp;
  let server: http.Server;
  let baseUrl: string;

  beforeAll(async () => {
    database = await createTestDatabase();
  });
  afterAll(() => database.close());
  beforeEach(async () => {
    await resetTables(database.db);
    t = createTestApp(database.db);
    server = http.createServer(t.app);
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterEach(() => new Promise<void>((resolve) => server.close(() => resolve())));

  async function enroll(options: ConstructorParameters<typeof SimulatedDevice>[2] = {}): Promise<SimulatedDevice> {
    return SimulatedDevice.enroll(baseUrl, await createEnrollmentToken(t.app, { maxUses: 1 }), options);
  }

  async function run(device: SimulatedDevice, command: Record<string, unknown>) {
    const created = await adminRequest(t.app, "POST", "/admin/command", { deviceId: device.deviceId, ...command });
    expect(created.status).toBe(201);
    await device.heartbeat();
    return (await adminRequest(t.app, "GET", `/admin/commands/${created.body.requestId}`)).body;
  }

  it("locate: the device reports its coordinates and accuracy in the result", async () => {
    const device = await enroll({ position: { latitude: -33.8568, longitude: 151.2153, accuracyMeters: 8.5 } });
    const located = await run(device, { type: "locate" });
    expect(located).toMatchObject({ status: "succeeded", result: { latitude: -33.8568, longitude: 151.2153, accuracyMeters: 8.5 } });
    // The dashboard reads the last position as the latest succeeded locate command.
    const last = await adminRequest(t.app, "GET", `/admin/commands?deviceId=${device.deviceId}&type=locate&status=succeeded&limit=1`);
    expect(last.body.commands[0].result.latitude).toBe(-33.8568);
  });

  it("lost_mode: entering stores the message and phone number on the device; exit leaves it", async () => {
    const device = await enroll();
    const entered = await run(device, {
      type: "lost_mode",
      payload: { action: "enter", message: "Please return to the front desk", phoneNumber: "+49 431 123456" },
    });
    expect(entered).toMatchObject({ status: "succeeded", result: { lostMode: true } });
    expect(device.lostMode).toEqual({ message: "Please return to the front desk", phoneNumber: "+49 431 123456" });
    const left = await run(device, { type: "lost_mode", payload: { action: "exit" } });
    expect(left).toMatchObject({ status: "succeeded", result: { lostMode: false } });
    expect(device.lostMode).toBeNull();
  });

  it.each(["wipe", "factory_reset"])("%s: the device erases itself and is retired; it comes back only with a new enrollment token", async (type) => {
    const enrollmentToken = await createEnrollmentToken(t.app, { maxUses: 1 });
    const device = await SimulatedDevice.enroll(baseUrl, enrollmentToken);
    const oldToken = device.registration.deviceToken;
    const oldId = device.deviceId;
    const erased = await run(device, { type, payload: { reason: "left the company" } });
    expect(erased.status).toBe("succeeded");
    expect(device.wiped).toBe(true);
    await expect(device.heartbeat()).rejects.toThrow(/wiped/);

    const view = await adminRequest(t.app, "GET", `/admin/devices/${oldId}`);
    expect(view.body.retiredAt).not.toBeNull();
    expect((await request(t.app).post("/v1/heartbeat").set("Authorization", `Bearer ${oldToken}`).send({ deviceTime: new Date().toISOString() })).status).toBe(
      401,
    );
    const audit = await database.db.auditLog.findFirst({ where: { action: "device.retire", targetId: oldId } });
    expect(audit?.actor).toBe(`command:${type}`);

    // The used enrollment token is refused; a new one enrolls it as a new device.
    await expect(device.reenroll(enrollmentToken)).rejects.toThrow();
    await device.reenroll(await createEnrollmentToken(t.app, { maxUses: 1 }));
    expect(device.deviceId).not.toBe(oldId);
    await device.heartbeat();
    expect((await adminRequest(t.app, "GET", `/admin/devices/${device.deviceId}`)).body.lastSeenAt).not.toBeNull();
  });

  it("refuses malformed payloads and a succeeded result that does not match its schema", async () => {
    const device = await enroll();
    const noPhone = await adminRequest(t.app, "POST", "/admin/command", {
      deviceId: device.deviceId,
      type: "lost_mode",
      payload: { action: "enter", message: "hi" },
    });
    expect(noPhone.status).toBe(400);
    expect(noPhone.body.error.code).toBe("validation_failed");
    const badPhone = await adminRequest(t.app, "POST", "/admin/command", {
      deviceId: device.deviceId,
      type: "lost_mode",
      payload: { action: "enter", message: "hi", phoneNumber: "call me" },
    });
    expect(badPhone.status).toBe(400);
    const extra = await adminRequest(t.app, "POST", "/admin/command", { deviceId: device.deviceId, type: "locate", payload: { precise: true } });
    expect(extra.status).toBe(400);

    const locate = await adminRequest(t.app, "POST", "/admin/command", { deviceId: device.deviceId, type: "locate" });
    const report = (result: Record<string, unknown>) =>
      request(t.app)
        .post("/v1/action-result")
        .set("Authorization", `Bearer ${device.registration.deviceToken}`)
        .send({ requestId: locate.body.requestId, status: "succeeded", result });
    const wrong = await report({ latitude: 91, longitude: 0, accuracyMeters: 5 });
    expect(wrong.status).toBe(400);
    expect(wrong.body.error.details).toEqual([expect.objectContaining({ path: "result.latitude" })]);
    expect((await report({ latitude: 10, longitude: 20 })).status).toBe(400);
    expect((await adminRequest(t.app, "GET", `/admin/commands/${locate.body.requestId}`)).body.status).toBe("queued");
    expect((await report({ latitude: 10, longitude: 20, accuracyMeters: 5 })).status).toBe(200);
  });
});
