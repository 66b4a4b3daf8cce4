import type { RegisterResponse } from "@mdm/contracts";
import { AdminClient, SimulatedDevice, forEachLimit } from "@mdm/simulator";
import { parseEnv } from "../config/env";
import { type RunningServer, startServer } from "../server";
import { TEST_ADMIN_KEY, TEST_HMAC_SECRET, TEST_SERVER_SETTINGS, type TestDatabase, createTestDatabase, describeWithPostgres, waitFor } from "../test";
import { type ChildApi, startChildApi } from "../test/child-api";
import { type FakeFcm, startFakeFcm } from "../test/fake-fcm";

// Instances that die mid-flight. The instance that dies runs in its own process and is
// killed with SIGKILL, so nothing of its own cleanup runs; the fake FCM server stands in
// for Google's. Real PostgreSQL and Redis only.
const realPostgres = describeWithPostgres;

const credentials = { adminKey: TEST_ADMIN_KEY, hmacSecret: TEST_HMAC_SECRET };
const LEASE_SECONDS = 2;

function settings(databaseUrl: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    ...TEST_SERVER_SETTINGS,
    DATABASE_URL: databaseUrl,
    REDIS_URL: process.env.TEST_REDIS_URL || process.env.REDIS_URL || "redis://127.0.0.1:6379",
    WS_LEASE_SECONDS: String(LEASE_SECONDS),
    COMMAND_RETRY_BASE_SECONDS: "0.5",
    ...extra,
  };
}

const pushedRequestIds = (fcm: FakeFcm) =>
  new Set(fcm.requests.map((request) => (request.body.message?.data as { requestId?: string } | undefined)?.requestId));

realPostgres("an API instance killed with SIGKILL", () => {
  let database: TestDatabase;
  let fcm: FakeFcm;
  const children: ChildApi[] = [];
  const servers: RunningServer[] = [];
  const devices: SimulatedDevice[] = [];

  beforeEach(async () => {
    database = await createTestDatabase();
  });

  afterEach(async () => {
    await Promise.all(devices.splice(0).map((device) => device.stop()));
    await Promise.all(children.splice(0).map((child) => child.kill()));
    for (const server of servers.splice(0)) await server.close();
    await fcm?.close();
    await database.close();
  });

  it("leaves no ghost socket: a command through the survivor is pushed once the lease lapses, and reaches the device when it reconnects there", async () => {
    fcm = await startFakeFcm();
    const doomed = await startChildApi(settings(database.url));
    children.push(doomed);
    const survivor = await startServer(parseEnv(settings(database.url)), { push: fcm.createGateway() });
    servers.push(survivor);
    const admin = new AdminClient(survivor.url, credentials);
    const { token } = await admin.createEnrollmentToken({ maxUses: 1 });

    const device = await SimulatedDevice.enroll(doomed.url, token, { facts: { model: "Kiosk", fcmToken: "fcm-of-the-orphan" } });
    devices.push(device);
    await device.connect();
    await waitFor(
      () => admin.getDevice(device.deviceId),
      (view) => view.connected,
      5000,
      "connected through the doomed instance",
    );

    await doomed.kill();
    await device.stop(); // it would only knock on the dead instance's door
    const created = await admin.createCommand({ deviceId: device.deviceId, type: "ping" });

    // Within one lease period (plus the sweep's quarter period), the push goes out.
    await waitFor(() => pushedRequestIds(fcm).has(created.requestId), Boolean, (LEASE_SECONDS + 2) * 1000, "the push of the orphaned device's command");
    const pushed = fcm.requests.find((request) => (request.body.message?.data as { requestId?: string } | undefined)?.requestId === created.requestId)!;
    expect(pushed.body.message).toMatchObject({ token: "fcm-of-the-orphan", android: { priority: "high" } });
    // The fake FCM answers before the delivery worker records the outcome, so wait for the record to land.
    const recorded = await waitFor(
      () => admin.getCommand(created.requestId),
      (command) => command.status !== "queued",
      5000,
      "the push recorded on the command",
    );
    expect(recorded).toMatchObject({ status: "sent", push: { outcome: "sent" } });
    expect(await admin.getDevice(device.deviceId)).toMatchObject({ connected: false });

    // The device wakes from the push and reconnects, this time to the survivor.
    const back = new SimulatedDevice(survivor.url, device.registration);
    devices.push(back);
    await back.connect();
    expect((await back.waitForCommand(created.requestId, 5000)).channel).toBe("websocket");
    const final = await waitFor(
      () => admin.getCommand(created.requestId),
      (command) => command.status === "succeeded",
      5000,
      "the result",
    );
    expect(final.result).toMatchObject({ pong: true });
    expect(await admin.getDevice(device.deviceId)).toMatchObject({ connected: true });
  });

  it("loses no command of a bulk fan-out when the instance dies in the middle of it: the restarted instance sends the rest", async () => {
    // Each push takes 300 ms to answer: the fan-out to 48 devices is still running when the kill lands.
    fcm = await startFakeFcm({ delayMs: 300 });
    const env = settings(database.url, { FAKE_FCM_PORT: String(fcm.port) });
    const first = await startChildApi(env);
    children.push(first);
    const admin = new AdminClient(first.url, credentials);
    const { token } = await admin.createEnrollmentToken({ maxUses: 100 });
    const fleet: RegisterResponse[] = [];
    await forEachLimit(
      Array.from({ length: 48 }, (_, index) => index),
      8,
      async (index) => {
        const device = await SimulatedDevice.enroll(first.url, token, { facts: { model: "Handheld", fcmToken: `fcm-${index}` } });
        fleet[index] = device.registration;
      },
    );

    const batch = await admin.createBulkCommand({ type: "lock", payload: { message: "closing" }, target: { all: true } });
    expect(batch.total).toBe(48);
    await waitFor(
      () => fcm.requests.length,
      (count) => count >= 4,
      10_000,
      "the first pushes",
    );
    await first.kill();
    const pushedBeforeTheCrash = pushedRequestIds(fcm).size;
    expect(pushedBeforeTheCrash).toBeLessThan(48);

    const restarted = await startChildApi(env);
    children.push(restarted);
    const adminAfter = new AdminClient(restarted.url, credentials);
    const { commands } = await adminAfter.listCommands({ batchId: batch.batchId, limit: 100 });
    expect(commands).toHaveLength(48);
    await waitFor(
      () => [...pushedRequestIds(fcm)].filter((id) => commands.some((command) => command.requestId === id)).length,
      (count) => count === 48,
      20_000,
      "a push for every command of the batch",
    );
    const settled = await waitFor(
      () => adminAfter.getBatch(batch.batchId),
      (progress) => progress.counts.sent === 48,
      10_000,
      "every command sent",
    );
    expect(settled.counts).toMatchObject({ queued: 0, sent: 48 });
    // Each device's token received that device's command.
    const commandOf = new Map(commands.map((command) => [command.requestId, command.deviceId]));
    const tokenOf = new Map(fleet.map((device, index) => [device.deviceId, index]));
    for (const request of fcm.requests) {
      const requestId = (request.body.message?.data as { requestId: string } | undefined)?.requestId ?? "";
      expect(request.body.message?.token).toBe(`fcm-${tokenOf.get(commandOf.get(requestId)!)}`);
    }
  });
});

realPostgres("an API instance shutting down (SIGTERM)", () => {
  let database: TestDatabase;
  let fcm: FakeFcm;
  const servers: RunningServer[] = [];

  beforeEach(async () => {
    database = await createTestDatabase();
  });
  afterEach(async () => {
    for (const server of servers.splice(0)) await server.close();
    await fcm?.close();
    await database.close();
  });

  it("stops after the round of attempts in hand instead of draining the queue, and leaves the rest due for the others", async () => {
    // FCM answers each push after 400 ms: draining 80 pushes would take seconds.
    fcm = await startFakeFcm({ delayMs: 400 });
    const env = parseEnv(settings(database.url, { COMMAND_RETRY_BASE_SECONDS: "30" }));
    const first = await startServer(env, { push: fcm.createGateway() });
    const admin = new AdminClient(first.url, credentials);
    const { token } = await admin.createEnrollmentToken({ maxUses: 100 });
    await forEachLimit(
      Array.from({ length: 80 }, (_, index) => index),
      8,
      (index) => SimulatedDevice.enroll(first.url, token, { facts: { model: "Handheld", fcmToken: `fcm-${index}` } }).then(() => undefined),
    );
    const batch = await admin.createBulkCommand({ type: "ping", target: { all: true } });
    await waitFor(
      () => fcm.requests.length,
      (count) => count >= 1,
      5000,
      "the first push",
    );

    await first.close();
    const pushedBeforeExit = fcm.requests.length;
    // At most the round in hand (16) and the one just claimed when the stop came.
    expect(pushedBeforeExit).toBeLessThanOrEqual(32);
    const untouched = await database.db.command.findMany({ where: { batchId: batch.batchId, pushAttempts: 0 } });
    expect(untouched.length).toBeGreaterThanOrEqual(48);
    for (const command of untouched) expect(command.nextAttemptAt!.getTime()).toBeLessThanOrEqual(Date.now());

    const next = await startServer(env, { push: fcm.createGateway() });
    servers.push(next);
    await waitFor(
      () => database.db.command.count({ where: { batchId: batch.batchId, status: "sent" } }),
      (count) => count === 80,
      20_000,
      "every command pushed by the next instance",
    );
  });
});
