import { WsCloseCode } from "@mdm/contracts";
import { AdminClient, SimulatedDevice, UpgradeRefusedError } from "@mdm/simulator";
import request from "supertest";
import {
  TEST_ADMIN_KEY,
  TEST_HMAC_SECRET,
  TEST_SERVER_SETTINGS,
  type TestApp,
  type TestDatabase,
  adminRequest,
  createTestApp,
  createTestDatabase,
  describeWithPostgres,
  enrollDevice,
  heartbeatBody,
  resetTables,
  within,
} from "../../test";
import { type ChildApi, startChildApi } from "../../test/child-api";
import { parseEnv } from "../../config/env";
import { type RunningServer, startServer } from "../../server";
import { adminKeyId } from "../admin-auth/admin-auth.middleware";

const credentials = { adminKey: TEST_ADMIN_KEY, hmacSecret: TEST_HMAC_SECRET };
const ADMIN = adminKeyId(TEST_ADMIN_KEY);

async function heartbeatOver(baseUrl: string, deviceToken: string): Promise<number> {
  const res = await fetch(`${baseUrl}/v1/heartbeat`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${deviceToken}` },
    body: JSON.stringify(heartbeatBody({ deviceTime: new Date().toISOString() })),
  });
  await res.arrayBuffer();
  return res.status;
}

// Two API processes sharing one PostgreSQL database and one Redis, as a deployment runs.
describeWithPostgres("retiring a device on a two-instance cluster", () => {
  let database: TestDatabase;
  const children: ChildApi[] = [];
  const devices: SimulatedDevice[] = [];

  beforeAll(async () => {
    database = await createTestDatabase();
  });
  afterAll(async () => {
    await Promise.all(devices.splice(0).map((device) => device.stop()));
    await Promise.all(children.splice(0).map((child) => child.kill()));
    await database.close();
  });

  it("refuses the token at once on both instances, the one that had it cached included, and closes its open socket with 4004", async () => {
    const env = {
      ...TEST_SERVER_SETTINGS,
      DATABASE_URL: database.url,
      REDIS_URL: process.env.TEST_REDIS_URL || process.env.REDIS_URL || "redis://127.0.0.1:6379",
    };
    const [first, second] = await Promise.all([startChildApi(env), startChildApi(env)]);
    children.push(first!, second!);
    const admin = new AdminClient(first!.url, credentials);
    const { token } = await admin.createEnrollmentToken({ maxUses: 1 });
    const enrolled = await SimulatedDevice.enroll(first!.url, token, { facts: { model: "Kiosk" } });
    const deviceToken = enrolled.registration.deviceToken;

    // Both instances verify (and so cache) the token.
    expect(await heartbeatOver(first!.url, deviceToken)).toBe(200);
    expect(await heartbeatOver(second!.url, deviceToken)).toBe(200);
    expect(await heartbeatOver(second!.url, deviceToken)).toBe(200);

    // Its socket is held by the instance that is NOT asked to retire it.
    const connected = new SimulatedDevice(second!.url, enrolled.registration);
    devices.push(connected);
    await connected.connect();
    const closed = new Promise<{ code: number; reason: string }>((resolve) => connected.once("disconnected", resolve));

    const retired = await admin.retireDevice(enrolled.deviceId);
    expect(retired).toMatchObject({ alreadyRetired: false, device: { id: enrolled.deviceId } });
    expect(retired.device.retiredAt).not.toBeNull();

    expect(await heartbeatOver(second!.url, deviceToken)).toBe(401);
    expect(await heartbeatOver(first!.url, deviceToken)).toBe(401);
    expect(await within(closed, 5000, "the socket's close")).toMatchObject({ code: WsCloseCode.retired });

    // Nor can it open a new socket on either instance.
    for (const instance of [first!, second!]) {
      const again = new SimulatedDevice(instance.url, enrolled.registration);
      await expect(again.connect()).rejects.toBeInstanceOf(UpgradeRefusedError);
      await again.stop();
    }
  });
});

// The instance holding the socket never hears of the retirement: it was decided by another
// instance whose event bus does not reach this one (as when the retiring instance dies right
// after its commit, or the bus is down). The database is what stops the device.
describeWithPostgres("a retirement whose announcement never reaches the instance holding the socket", () => {
  let database: TestDatabase;
  const servers: RunningServer[] = [];
  const devices: SimulatedDevice[] = [];

  beforeAll(async () => {
    database = await createTestDatabase();
  });
  afterEach(async () => {
    await Promise.all(devices.splice(0).map((device) => device.stop()));
    for (const server of servers.splice(0)) await server.close();
  });
  afterAll(() => database.close());

  async function connectedDevice(extra: Record<string, string> = {}) {
    const holder = await startServer(
      parseEnv({
        ...TEST_SERVER_SETTINGS,
        DATABASE_URL: database.url,
        REDIS_URL: process.env.TEST_REDIS_URL || process.env.REDIS_URL || "redis://127.0.0.1:6379",
        ...extra,
      }),
    );
    servers.push(holder);
    // The other instance: same database, its own in-process bus.
    const other = createTestApp(database.db);
    const { token } = await new AdminClient(holder.url, credentials).createEnrollmentToken({ maxUses: 1 });
    const device = await SimulatedDevice.enroll(holder.url, token, { facts: { model: "Kiosk" } });
    devices.push(device);
    // The holder verifies, and so caches, the token.
    expect(await heartbeatOver(holder.url, device.registration.deviceToken)).toBe(200);
    await device.connect();
    const closed = new Promise<{ code: number; reason: string }>((resolve) => device.once("disconnected", resolve));
    expect((await adminRequest(other.app, "POST", `/admin/devices/${device.deviceId}/retire`)).status).toBe(200);
    return { holder, device, closed };
  }

  it("closes the socket with 4004 at its next heartbeat frame, refuses the cached token, and the device stays retired and offline", async () => {
    const { holder, device, closed } = await connectedDevice();
    expect(device.connected).toBe(true);
    device.sendRaw(JSON.stringify({ type: "heartbeat", heartbeat: heartbeatBody({ deviceTime: new Date().toISOString() }) }));
    expect(await within(closed, 5000, "the socket's close")).toMatchObject({ code: WsCloseCode.retired });
    expect(await heartbeatOver(holder.url, device.registration.deviceToken)).toBe(401);
    const row = await database.db.device.findUniqueOrThrow({ where: { id: device.deviceId } });
    expect(row.online).toBe(false);
    expect(row.retiredAt).not.toBeNull();
    expect(await database.db.telemetryEvent.count({ where: { deviceId: device.deviceId } })).toBe(1);
  });

  it("closes a silent socket with 4004 at its next lease renewal", async () => {
    const { device, closed } = await connectedDevice({ WS_LEASE_SECONDS: "3" });
    expect(await within(closed, 5000, "the socket's close")).toMatchObject({ code: WsCloseCode.retired });
    expect(await database.db.device.findUniqueOrThrow({ where: { id: device.deviceId } })).toMatchObject({ online: false });
    // The close released the lease (its handler runs just after the close frame went out).
    const released = async () => (await database.db.device.findUniqueOrThrow({ where: { id: device.deviceId } })).socketInstanceId === null;
    for (let tries = 0; !(await released()) && tries < 50; tries++) await new Promise((resolve) => setTimeout(resolve, 50));
    expect(await released()).toBe(true);
  });
});

describeWithPostgres("device retirement and deletion", () => {
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

  const heartbeat = (deviceToken: string) => request(t.app).post("/v1/heartbeat").set("Authorization", `Bearer ${deviceToken}`).send(heartbeatBody());

  it("cancels pending commands with a reason, keeps history, and leaves the device out of lists, groups and counts", async () => {
    const device = await enrollDevice(t.app);
    const other = await enrollDevice(t.app);
    await adminRequest(t.app, "PATCH", `/admin/devices/${device.deviceId}`, { groups: ["lobby"] });
    await adminRequest(t.app, "PATCH", `/admin/devices/${other.deviceId}`, { groups: ["lobby"] });
    expect((await heartbeat(device.deviceToken)).status).toBe(200);
    const done = await adminRequest(t.app, "POST", "/admin/command", { deviceId: device.deviceId, type: "ping" });
    await request(t.app)
      .post("/v1/action-result")
      .set("Authorization", `Bearer ${device.deviceToken}`)
      .send({ requestId: done.body.requestId, status: "succeeded" });
    const pending = await adminRequest(t.app, "POST", "/admin/command", { deviceId: device.deviceId, type: "reboot" });

    const res = await adminRequest(t.app, "POST", `/admin/devices/${device.deviceId}/retire`);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ cancelledCommands: 1, alreadyRetired: false, device: { online: false } });

    const cancelled = await adminRequest(t.app, "GET", `/admin/commands/${pending.body.requestId}`);
    expect(cancelled.body).toMatchObject({ status: "cancelled", errorMessage: `device retired by ${ADMIN}` });
    expect(cancelled.body.events.at(-1)).toMatchObject({ status: "cancelled", detail: `device retired by ${ADMIN}` });
    // History stays: the finished command and the telemetry.
    expect((await adminRequest(t.app, "GET", `/admin/commands/${done.body.requestId}`)).body.status).toBe("succeeded");
    expect(await database.db.telemetryEvent.count({ where: { deviceId: device.deviceId } })).toBe(1);

    expect((await heartbeat(device.deviceToken)).status).toBe(401);
    const listed = await adminRequest(t.app, "GET", "/admin/devices");
    expect(listed.body.devices.map((view: { id: string }) => view.id)).toEqual([other.deviceId]);
    const retiredOnly = await adminRequest(t.app, "GET", "/admin/devices?status=retired");
    expect(retiredOnly.body).toMatchObject({ total: 1, devices: [{ id: device.deviceId }] });
    expect((await adminRequest(t.app, "GET", "/admin/fleet/summary")).body).toMatchObject({ total: 1 });
    expect((await adminRequest(t.app, "GET", "/admin/groups")).body.groups).toEqual([{ name: "lobby", devices: 1, online: 0 }]);

    // It takes no more commands, alone or in a bulk command.
    expect((await adminRequest(t.app, "POST", "/admin/command", { deviceId: device.deviceId, type: "ping" })).status).toBe(409);
    const bulk = await adminRequest(t.app, "POST", "/admin/commands/bulk", { type: "ping", target: { group: "lobby" } });
    expect(bulk.body.total).toBe(1);

    // Retiring again changes nothing.
    expect((await adminRequest(t.app, "POST", `/admin/devices/${device.deviceId}/retire`)).body).toMatchObject({ alreadyRetired: true, cancelledCommands: 0 });
    const audit = await database.db.auditLog.findMany({ where: { action: "device.retire", targetId: device.deviceId } });
    expect(audit).toHaveLength(1);
    expect(audit[0]).toMatchObject({ actor: ADMIN, details: { cancelledCommands: 1 } });
  });

  it("deletes only a retired device, with its history, and audits the fact", async () => {
    const device = await enrollDevice(t.app, { serialNumber: "SN-42" });
    expect((await heartbeat(device.deviceToken)).status).toBe(200);
    await adminRequest(t.app, "POST", "/admin/command", { deviceId: device.deviceId, type: "ping" });
    const rule = { deviceId: device.deviceId, packageName: "com.example.kiosk" };
    expect((await adminRequest(t.app, "POST", "/admin/policies", rule)).status).toBe(201);

    const refused = await adminRequest(t.app, "DELETE", `/admin/devices/${device.deviceId}`);
    expect(refused.status).toBe(409);
    expect(refused.body.error.code).toBe("conflict");

    await adminRequest(t.app, "POST", `/admin/devices/${device.deviceId}/retire`);
    const deleted = await adminRequest(t.app, "DELETE", `/admin/devices/${device.deviceId}`);
    expect(deleted.status).toBe(204);
    expect(await database.db.device.count({ where: { id: device.deviceId } })).toBe(0);
    expect(await database.db.command.count({ where: { deviceId: device.deviceId } })).toBe(0);
    expect(await database.db.telemetryEvent.count({ where: { deviceId: device.deviceId } })).toBe(0);
    expect(await database.db.appPolicy.count({ where: { deviceId: device.deviceId } })).toBe(0);
    const audit = await database.db.auditLog.findFirst({ where: { action: "device.delete", targetId: device.deviceId } });
    expect(audit).toMatchObject({ actor: ADMIN, details: { serialNumber: "SN-42", model: "Pixel 8", removed: { appPolicies: 1, commands: 1 } } });
    expect((await adminRequest(t.app, "GET", `/admin/devices/${device.deviceId}`)).status).toBe(404);
    expect((await heartbeat(device.deviceToken)).status).toBe(401);
  });

  it("deleting a device leaves its finished batches finished: its commands leave the batch and its total", async () => {
    const kept = await enrollDevice(t.app);
    const gone = await enrollDevice(t.app);
    const batch = await adminRequest(t.app, "POST", "/admin/commands/bulk", { type: "ping", target: { deviceIds: [kept.deviceId, gone.deviceId] } });
    expect(batch.status).toBe(202);
    const answer = await heartbeat(kept.deviceToken);
    const ping = answer.body.commands[0];
    await request(t.app)
      .post("/v1/action-result")
      .set("Authorization", `Bearer ${kept.deviceToken}`)
      .send({ requestId: ping.requestId, status: "succeeded", result: { pong: true } });
    await adminRequest(t.app, "POST", `/admin/devices/${gone.deviceId}/retire`);
    const finished = await adminRequest(t.app, "GET", `/admin/batches/${batch.body.batchId}`);
    expect(finished.body).toMatchObject({ total: 2, done: true, counts: { succeeded: 1, cancelled: 1 } });

    expect((await adminRequest(t.app, "DELETE", `/admin/devices/${gone.deviceId}`)).status).toBe(204);
    const after = await adminRequest(t.app, "GET", `/admin/batches/${batch.body.batchId}`);
    expect(after.body).toMatchObject({ total: 1, done: true, counts: { succeeded: 1, cancelled: 0 } });
    expect((await adminRequest(t.app, "GET", "/admin/batches")).body.batches[0]).toMatchObject({ batchId: batch.body.batchId, total: 1, done: true });
  });

  it("answers 404 for an unknown device and 400 for a malformed id", async () => {
    const unknown = "00000000-0000-4000-8000-000000000000";
    expect((await adminRequest(t.app, "POST", `/admin/devices/${unknown}/retire`)).status).toBe(404);
    expect((await adminRequest(t.app, "DELETE", `/admin/devices/${unknown}`)).status).toBe(404);
    expect((await adminRequest(t.app, "POST", "/admin/devices/not-a-uuid/retire")).status).toBe(400);
  });
});
