import { randomUUID } from "node:crypto";
import { once } from "node:events";
import { type Command, finalCommandStatuses } from "@mdm/contracts";
import { AdminClient, type DeviceOptions, KIOSK_APP, SimulatedDevice, UpgradeRefusedError, forEachLimit } from "@mdm/simulator";
import { poolOf } from "../db/client";
import { expireCommands } from "../jobs/maintenance";
import { type RunningServer, startServer } from "../server";
import { TEST_ADMIN_KEY, TEST_HMAC_SECRET, testServerEnv, type TestDatabase, createTestDatabase, describeWithPostgres, testServerUrl, waitFor } from "../test";

// Command delivery over real sockets: a listening server on a fresh database, devices
// played by the simulator (a client built only on the public contracts).
//
// Real PostgreSQL only (TEST_DATABASE_URL; CI sets it). The embedded database runs one
// query at a time over a single connection (see EMBEDDED_POOL_SIZE): it serves a laptop's
// demo fleet, not this file's 200 devices heartbeating every second while enrolling.
const realPostgres = describeWithPostgres;

const credentials = { adminKey: TEST_ADMIN_KEY, hmacSecret: TEST_HMAC_SECRET };

// Unacknowledged commands are retried after 0.2 s, 0.4 s...; the delivery worker polls every 0.2 s.
const serverEnv = (extra: Record<string, string> = {}) => testServerEnv({ COMMAND_RETRY_BASE_SECONDS: "0.2", ...extra });

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

const isFinal = (command: Command) => finalCommandStatuses.includes(command.status);
const statusesOf = (command: Command) => command.events.map((event) => event.status);

realPostgres("command delivery over WebSocket", () => {
  let database: TestDatabase;
  let server: RunningServer;
  let admin: AdminClient;
  let enrollmentToken: string;
  const devices: SimulatedDevice[] = [];

  const enroll = async (options: DeviceOptions = {}) => {
    const device = await SimulatedDevice.enroll(server.url, enrollmentToken, options);
    devices.push(device);
    return device;
  };
  const finalCommand = (requestId: string) => waitFor(() => admin.getCommand(requestId), isFinal, 5000, `final status of ${requestId}`);
  /** Until the server has seen the socket close: the device is then offline for delivery. */
  const serverSeesDisconnected = (deviceId: string) =>
    waitFor(
      () => admin.getDevice(deviceId),
      (device) => !device.connected,
      5000,
      `${deviceId} disconnected`,
    );

  beforeAll(async () => {
    database = await createTestDatabase();
    server = await startServer(serverEnv({ DATABASE_URL: database.url }));
    admin = new AdminClient(server.url, credentials);
    enrollmentToken = (await admin.createEnrollmentToken({ maxUses: 1000, label: "delivery tests" })).token;
  });

  afterEach(async () => {
    await Promise.all(devices.splice(0).map((device) => device.stop()));
  });

  afterAll(async () => {
    await server?.close();
    await database?.close();
  });

  it("reaches a connected device over its socket, which acknowledges it and succeeds", async () => {
    const device = await enroll();
    await device.connect();

    const created = await admin.createCommand({ deviceId: device.deviceId, type: "ping" });
    const received = await device.waitForCommand(created.requestId, 10_000);
    expect(received.channel).toBe("websocket");

    const final = await finalCommand(created.requestId);
    expect(final).toMatchObject({ status: "succeeded", result: { pong: true } });
    expect(statusesOf(final)).toEqual(["queued", "sent", "acknowledged", "succeeded"]);
    expect(final.events[1]!.detail).toBe("websocket");
  });

  it("gives an offline device (no FCM token) the command queued meanwhile right after it reconnects", async () => {
    const device = await enroll();
    await device.connect();
    await device.disconnect();
    await serverSeesDisconnected(device.deviceId);
    device.stopApp();

    const created = await admin.createCommand({ deviceId: device.deviceId, type: "relaunch_app", payload: { packageName: KIOSK_APP } });
    const attempted = await waitFor(
      () => admin.getCommand(created.requestId),
      (command) => command.push.outcome !== null,
      5000,
      "a delivery attempt",
    );
    expect(attempted).toMatchObject({ status: "queued", push: { outcome: "no_token" } });
    expect(device.receiptsOf(created.requestId)).toHaveLength(0);

    await device.connect();
    const received = await device.waitForCommand(created.requestId, 2000);
    expect(received.channel).toBe("websocket");
    expect(await finalCommand(created.requestId)).toMatchObject({ status: "succeeded" });
    expect(device.state.apps.find((app) => app.packageName === KIOSK_APP)?.running).toBe(true);
  });

  it("relaunches a stopped kiosk app in the answer to the WebSocket heartbeat that reported it", async () => {
    const device = await enroll();
    await device.connect();
    await server.deps.db.appPolicy.create({ data: { id: randomUUID(), deviceId: device.deviceId, packageName: KIOSK_APP } });
    device.stopApp();
    await device.heartbeat();

    const relaunch = await waitFor(
      () => server.deps.db.command.findFirst({ where: { deviceId: device.deviceId, type: "relaunch_app" } }),
      (command) => command !== null,
      5000,
      "the relaunch command",
    );
    const received = await device.waitForCommand(relaunch!.requestId, 10_000);
    expect(received.channel).toBe("websocket");
    expect(await finalCommand(relaunch!.requestId)).toMatchObject({ status: "succeeded", createdBy: "policy:auto-relaunch" });
    expect(device.state.apps.find((app) => app.packageName === KIOSK_APP)?.running).toBe(true);
  });

  it("never runs a command twice when its ack is lost and the server sends it again", async () => {
    const device = await enroll({ dropAcks: 1 });
    await device.connect();

    const created = await admin.createCommand({ deviceId: device.deviceId, type: "custom", payload: { action: "sync" } });
    const final = await finalCommand(created.requestId);

    expect(device.receiptsOf(created.requestId).length).toBeGreaterThanOrEqual(2);
    expect(device.executions.get(created.requestId)).toBe(1);
    expect(final).toMatchObject({ status: "succeeded", result: { action: "sync" } });
    expect(statusesOf(final)).toEqual(["queued", "sent", "acknowledged", "succeeded"]);
  });

  it("does not deliver an expired command, and expires it", async () => {
    const device = await enroll();
    await device.connect();
    await device.disconnect();
    await serverSeesDisconnected(device.deviceId);

    const created = await admin.createCommand({ deviceId: device.deviceId, type: "ping", ttlSeconds: 10 });
    // Time moves on past the TTL (the running server reads the system clock).
    await server.deps.db.command.update({ where: { requestId: created.requestId }, data: { expiresAt: new Date(Date.now() - 1000) } });

    await device.connect();
    await sleep(600); // hello, pending commands and a few redelivery rounds
    expect(device.receiptsOf(created.requestId)).toHaveLength(0);

    expect(await expireCommands(server.deps)).toBeGreaterThanOrEqual(1);
    const expired = await admin.getCommand(created.requestId);
    expect(expired.status).toBe("expired");
    expect(statusesOf(expired)).toEqual(["queued", "expired"]);
  });

  it("completes a bulk command to 200 devices with 200 results", async () => {
    const fleet: SimulatedDevice[] = [];
    await forEachLimit(Array.from({ length: 200 }), 25, async () => void fleet.push(await enroll()));
    await forEachLimit(fleet, 50, (device) => device.connect());

    // The fan-out must not flood the database pool: past ADMISSION_MAX_DATABASE_QUEUE
    // waiting queries the instance sheds every request, the progress polls below included.
    // Reads and writes go in shared statements, a few at once each: the queue stays far under
    // the bound (128 waited, one or more reads per delivery, ack and result each, before).
    const pool = poolOf(server.deps.db);
    let peakWaiting = 0;
    const sampler = setInterval(() => (peakWaiting = Math.max(peakWaiting, pool.waitingCount)), 1);
    const done = await (async () => {
      try {
        const batch = await admin.createBulkCommand({ type: "ping", target: { deviceIds: fleet.map((device) => device.deviceId) } });
        expect(batch.total).toBe(200);
        return await waitFor(
          () => admin.getBatch(batch.batchId),
          (progress) => progress.done,
          30_000,
          "batch done",
        );
      } finally {
        clearInterval(sampler);
      }
    })();
    expect(peakWaiting).toBeLessThan(20);

    expect(done.counts.succeeded).toBe(200);
    expect(done.done).toBe(true);
    for (const device of fleet) expect([...device.executions.values()]).toEqual([1]);
    // Each device sent its ack before its result, and the history says so for every command.
    const { commands } = await admin.listCommands({ batchId: done.batchId, limit: 200 });
    const histories = commands.map((command) => statusesOf(command).join(" → "));
    expect(new Set(histories)).toEqual(new Set(["queued → sent → acknowledged → succeeded"]));
  });

  it("leaves no lease behind when devices disconnect while their leases are being renewed", async () => {
    const fleet: SimulatedDevice[] = [];
    await forEachLimit(Array.from({ length: 40 }), 10, async () => void fleet.push(await enroll()));
    await forEachLimit(fleet, 20, (device) => device.connect());
    const hub = server.realtime.devices;
    // Renewals keep running while every device goes: each may snapshot a device that is
    // leaving, and must not hand it its lease back after its close released it.
    let renewing = true;
    const renewals = (async () => {
      while (renewing) await hub.renewLeases();
    })();
    await forEachLimit(fleet, 40, (device) => device.stop());
    await waitFor(
      async () => hub.size,
      (size) => size === 0,
      5000,
      "every socket closed",
    );
    renewing = false;
    await renewals;
    await hub.renewLeases();
    const ghosts = await server.deps.db.device.count({
      where: { id: { in: fleet.map((device) => device.deviceId) }, socketInstanceId: { not: null } },
    });
    expect(ghosts).toBe(0);
  });

  it("keeps serving when a WebSocket delivery fails on the database", async () => {
    const device = await enroll();
    await device.connect();
    // A delivery whose query fails (here: a requestId that is no UUID) used to be an
    // unhandled rejection, which ends a Node process: every socket and request with it.
    server.deps.bus.publish({ kind: "deliver", deviceId: device.deviceId, requestId: "not-a-uuid" });
    await sleep(100);

    const created = await admin.createCommand({ deviceId: device.deviceId, type: "ping" });
    await device.waitForCommand(created.requestId, 2000);
    expect(await finalCommand(created.requestId)).toMatchObject({ status: "succeeded" });

    // Deliveries arriving together are read in one statement: a bad one among them must not
    // fail the others. This command is due in an hour, so only this delivery can bring it.
    const waiting = await server.deps.db.command.create({
      data: {
        requestId: randomUUID(),
        deviceId: device.deviceId,
        type: "ping",
        expiresAt: new Date(Date.now() + 7_200_000),
        nextAttemptAt: new Date(Date.now() + 3_600_000),
      },
    });
    server.deps.bus.publish({ kind: "deliver", deviceId: device.deviceId, requestId: "not-a-uuid" });
    server.deps.bus.publish({ kind: "deliver", deviceId: device.deviceId, requestId: waiting.requestId });
    expect((await device.waitForCommand(waiting.requestId, 10_000)).channel).toBe("websocket");
  });

  describe("the device channel's protocol and authentication", () => {
    it.each([
      ["a frame of an unknown type", JSON.stringify({ type: "reboot_now" })],
      [
        "a heartbeat breaking the contract",
        JSON.stringify({ type: "heartbeat", heartbeat: { deviceTime: new Date().toISOString(), battery: { level: 500, charging: false } } }),
      ],
      ["text that is not JSON", "{not json"],
    ])("closes the socket with 1008 on %s", async (_name, frame) => {
      const device = await enroll();
      await device.connect();
      const closed = once(device, "disconnected");
      device.sendRaw(frame);
      const [{ code }] = (await closed) as [{ code: number }];
      expect(code).toBe(1008);
    });

    it("refuses a wrong token before the upgrade: HTTP 401, no socket", async () => {
      const device = await enroll();
      const socketsBefore = server.realtime.devices.size;
      const impostor = new SimulatedDevice(server.url, { ...device.registration, deviceToken: `${device.deviceId}.${"x".repeat(43)}` });
      const refused = await impostor.connect().catch((error: unknown) => error);
      expect(refused).toBeInstanceOf(UpgradeRefusedError);
      expect(refused).toMatchObject({ status: 401, code: "unauthorized" });
      expect(impostor.connected).toBe(false);
      expect(server.realtime.devices.size).toBe(socketsBefore);
    });

    it("accepts the token in an Authorization header too", async () => {
      const device = await enroll({ auth: "header" });
      await device.connect();
      expect(server.realtime.devices.isConnected(device.deviceId)).toBe(true);
    });

    it("serves the legacy path /ws/{deviceId} for the device's own id and refuses another device's", async () => {
      const other = await enroll();
      const device = await enroll();
      const legacy = new SimulatedDevice(server.url, device.registration, { wsPath: `/ws/${device.deviceId}` });
      devices.push(legacy);
      await legacy.connect();
      expect(server.realtime.devices.isConnected(device.deviceId)).toBe(true);
      const created = await admin.createCommand({ deviceId: device.deviceId, type: "lock" });
      expect(await finalCommand(created.requestId)).toMatchObject({ status: "succeeded" });

      const trespasser = new SimulatedDevice(server.url, device.registration, { wsPath: `/ws/${other.deviceId}` });
      const refused = await trespasser.connect().catch((error: unknown) => error);
      expect(refused).toMatchObject({ status: 401 });
      expect(server.realtime.devices.isConnected(other.deviceId)).toBe(false);
    });
  });
});

describe.each([
  ["Redis", { REDIS_URL: process.env.TEST_REDIS_URL || process.env.REDIS_URL || "redis://127.0.0.1:6379" }],
  ["PostgreSQL only (LISTEN/NOTIFY, no Redis)", {}],
])("two API instances sharing %s", (busName, busEnv: Record<string, string>) => {
  (testServerUrl() ? it : it.skip)("delivers a command created on instance B to a device connected to instance A through the bus, not a retry", async () => {
    const database = await createTestDatabase();
    // Retries 30 s apart: only the bus can bring the command to A's socket well before the first retry.
    const env = serverEnv({ DATABASE_URL: database.url, COMMAND_RETRY_BASE_SECONDS: "30", ...busEnv });
    const servers: RunningServer[] = [];
    let device: SimulatedDevice | undefined;
    try {
      servers.push(await startServer(env), await startServer(env));
      const [a, b] = servers as [RunningServer, RunningServer];
      expect(a.deps.bus.name).toBe(busName === "Redis" ? "redis" : "postgresql");
      const adminB = new AdminClient(b.url, credentials);
      const { token } = await adminB.createEnrollmentToken({ maxUses: 1 });
      device = await SimulatedDevice.enroll(a.url, token);
      await device.connect();
      expect(a.realtime.devices.isConnected(device.deviceId)).toBe(true);
      expect(b.realtime.devices.isConnected(device.deviceId)).toBe(false);

      const created = await adminB.createCommand({ deviceId: device.deviceId, type: "ping" });
      const received = await device.waitForCommand(created.requestId, 10_000);
      expect(received.channel).toBe("websocket");
      const final = await waitFor(() => adminB.getCommand(created.requestId), isFinal, 5000, "final status");
      expect(final.status).toBe("succeeded");
    } finally {
      await device?.stop();
      for (const server of servers) await server.close();
      await database.close();
    }
  });
});
