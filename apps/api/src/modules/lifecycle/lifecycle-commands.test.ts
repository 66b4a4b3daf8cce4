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
  enrollDevice,
  resetTables,
} from "../../test";
import { retireErasedDevices } from "./lifecycle.service";

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

  // The result's status and the retirement commit apart: a failure between them (here the
  // database refusing the retirement, through a trigger) must not leave an erased device in
  // the fleet, whether the device retries its report or never speaks again.
  it("a wipe whose retirement failed is retired on the device's repeated report, or by the maintenance sweep", async () => {
    const allowRetirement = async () => {
      await database.db.$executeRawUnsafe(`DROP TRIGGER IF EXISTS refuse_retirement ON "Device"`);
      await database.db.$executeRawUnsafe(`DROP FUNCTION IF EXISTS refuse_retirement()`);
    };
    /** The database refuses to retire `only` (every device when not given). */
    const refuseRetirement = async (only?: string) => {
      await allowRetirement();
      await database.db.$executeRawUnsafe(`
        CREATE FUNCTION refuse_retirement() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'retirement refused by the test'; END $$`);
      await database.db.$executeRawUnsafe(`
        CREATE TRIGGER refuse_retirement BEFORE UPDATE OF "retiredAt" ON "Device" FOR EACH ROW
        WHEN (NEW."retiredAt" IS NOT NULL ${only ? `AND NEW.id = '${only}'::uuid` : ""}) EXECUTE FUNCTION refuse_retirement()`);
    };
    const retiredAt = async (deviceId: string) => (await adminRequest(t.app, "GET", `/admin/devices/${deviceId}`)).body.retiredAt;
    await refuseRetirement();
    try {
      const retrying = await enrollDevice(t.app);
      const silent = await Promise.all([enrollDevice(t.app), enrollDevice(t.app), enrollDevice(t.app)]);
      const wipe = async (device: typeof retrying) => {
        const created = await adminRequest(t.app, "POST", "/admin/command", { deviceId: device.deviceId, type: "wipe" });
        expect(created.status).toBe(201);
        const report = () =>
          request(t.app)
            .post("/v1/action-result")
            .set("Authorization", `Bearer ${device.deviceToken}`)
            .send({ requestId: created.body.requestId, status: "succeeded", result: { wiped: true } });
        const failed = await report();
        expect(failed.status).toBe(500);
        expect((await adminRequest(t.app, "GET", `/admin/commands/${created.body.requestId}`)).body.status).toBe("succeeded");
        expect(await retiredAt(device.deviceId)).toBeNull();
        return report;
      };
      const reportAgain = await wipe(retrying);
      for (const device of silent) await wipe(device);
      // Among the silent ones, the first in the sweep's order stays refused.
      const [stuck, ...others] = silent.map((device) => device.deviceId).sort();
      await refuseRetirement(stuck);

      // The device's retry of the same report: the status is already recorded, the retirement happens now.
      const repeated = await reportAgain();
      expect(repeated.status).toBe(200);
      expect(repeated.body).toEqual({ requestId: expect.any(String), status: "succeeded", changed: false });
      expect(await retiredAt(retrying.deviceId)).not.toBeNull();

      // The devices that never report again: the sweep goes past the one it cannot retire,
      // through every page (of one device here), and takes it again on its next run.
      expect(await retireErasedDevices(t.deps, 1)).toBe(2);
      for (const deviceId of others) expect(await retiredAt(deviceId)).not.toBeNull();
      expect(await retiredAt(stuck!)).toBeNull();
      await allowRetirement();
      expect(await retireErasedDevices(t.deps, 1)).toBe(1);
      expect(await retireErasedDevices(t.deps)).toBe(0);
      expect(await retiredAt(stuck!)).not.toBeNull();
      const audits = await database.db.auditLog.findMany({ where: { action: "device.retire" } });
      expect(audits.map((audit) => [audit.targetId, audit.actor]).sort()).toEqual(
        [retrying.deviceId, ...silent.map((device) => device.deviceId)].sort().map((deviceId) => [deviceId, "command:wipe"]),
      );
    } finally {
      await allowRetirement();
    }
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
