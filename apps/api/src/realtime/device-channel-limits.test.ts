import { once } from "node:events";
import { BEARER_PROTOCOL_PREFIX, DEVICE_WS_PROTOCOL, type DeviceServerFrame } from "@mdm/contracts";
import { AdminClient, SimulatedDevice } from "@mdm/simulator";
import WebSocket from "ws";
import { poolOf } from "../db/client";
import { type RunningServer, startServer } from "../server";
import { TEST_ADMIN_KEY, TEST_HMAC_SECRET, testServerEnv, type TestDatabase, createTestDatabase, heartbeatBody, describeWithPostgres } from "../test";

// What one device, or one address, can cost the server over the device WebSocket.
const realPostgres = describeWithPostgres;

const credentials = { adminKey: TEST_ADMIN_KEY, hmacSecret: TEST_HMAC_SECRET };

type RawSocket = { ws: WebSocket; frames: DeviceServerFrame[]; closed: Promise<{ code: number; reason: string }> };

async function openDeviceSocket(url: string, deviceToken: string): Promise<RawSocket> {
  const ws = new WebSocket(`${url.replace(/^http/, "ws")}/ws/devices`, [DEVICE_WS_PROTOCOL, `${BEARER_PROTOCOL_PREFIX}${deviceToken}`]);
  const frames: DeviceServerFrame[] = [];
  ws.on("message", (data) => frames.push(JSON.parse(data.toString()) as DeviceServerFrame));
  const closed = once(ws, "close").then(([code, reason]) => ({ code: code as number, reason: String(reason) }));
  // A refused upgrade rejects `open` below; `closed` then never matters.
  closed.catch(() => undefined);
  await once(ws, "open");
  return { ws, frames, closed };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

realPostgres("limits of the device channel", () => {
  let database: TestDatabase;
  let server: RunningServer;
  let admin: AdminClient;

  const start = async (extra: Record<string, string>) => {
    server = await startServer(testServerEnv({ DATABASE_URL: database.url, ...extra }));
    admin = new AdminClient(server.url, credentials);
  };
  const enroll = async () => {
    const { token } = await admin.createEnrollmentToken({ maxUses: 10 });
    return SimulatedDevice.enroll(server.url, token);
  };

  beforeEach(async () => {
    database = await createTestDatabase();
  });
  afterEach(async () => {
    await server?.close();
    await database.close();
  });

  it("shares one request budget per device between HTTP and its WebSockets, however many sockets it opens", async () => {
    await start({ RATE_LIMIT_DEVICE_PER_MINUTE: "5" });
    const device = await enroll();
    const heartbeat = (token: string) =>
      fetch(`${server.url}/v1/heartbeat`, {
        method: "POST",
        headers: { authorization: `Bearer ${token}`, "content-type": "application/json" },
        body: JSON.stringify(heartbeatBody()),
      });
    for (let i = 0; i < 5; i++) expect((await heartbeat(device.registration.deviceToken)).status).toBe(200);
    expect((await heartbeat(device.registration.deviceToken)).status).toBe(429);

    // Fresh sockets do not bring a fresh budget: connecting spends it too, so the upgrade is refused.
    for (let socketNumber = 0; socketNumber < 3; socketNumber++) {
      const refused = await device.connect().catch((error: unknown) => error);
      expect(refused).toMatchObject({ status: 429, code: "rate_limited" });
    }
    expect(server.realtime.devices.size).toBe(0);
    expect(await server.deps.db.telemetryEvent.count({ where: { deviceId: device.deviceId } })).toBe(5);
  });

  it("counts heartbeat frames against the budget the socket's connection started from", async () => {
    await start({ RATE_LIMIT_DEVICE_PER_MINUTE: "4" });
    const device = await enroll();
    const socket = await openDeviceSocket(server.url, device.registration.deviceToken);
    // The connection took one of the four; three heartbeats pass, the fourth is refused.
    for (let i = 0; i < 4; i++) socket.ws.send(JSON.stringify({ type: "heartbeat", heartbeat: heartbeatBody() }));
    for (let waited = 0; waited < 100 && !socket.frames.some((frame) => frame.type === "error"); waited++) await sleep(20);
    expect(socket.frames.filter((frame) => frame.type === "heartbeat_ok")).toHaveLength(3);
    expect(socket.frames).toContainEqual(expect.objectContaining({ type: "error", code: "rate_limited" }));
    socket.ws.close();
    await socket.closed;
    expect(await server.deps.db.telemetryEvent.count({ where: { deviceId: device.deviceId } })).toBe(3);
  });

  it("does not let one device reconnect in a loop for free", async () => {
    await start({ RATE_LIMIT_DEVICE_PER_MINUTE: "10" });
    const device = await enroll();
    const outcomes: Array<number | "open"> = [];
    for (let i = 0; i < 15; i++) {
      const opened = await openDeviceSocket(server.url, device.registration.deviceToken).catch((error: Error) => error);
      if (opened instanceof Error) {
        outcomes.push(Number(/Unexpected server response: (\d+)/.exec(opened.message)?.[1]));
        continue;
      }
      outcomes.push("open");
      opened.ws.close();
      await opened.closed;
    }
    expect(outcomes.slice(0, 10)).toEqual(Array(10).fill("open"));
    expect(outcomes.slice(10)).toEqual(Array(5).fill(429));
  });

  it("counts frames as they arrive: a flood of large frames is cut off, with never more than a few dozen waiting", async () => {
    await start({ RATE_LIMIT_DEVICE_PER_MINUTE: "100000" });
    const device = await enroll();
    const socket = await openDeviceSocket(server.url, device.registration.deviceToken);
    // A valid heartbeat of about 20 KiB (50 apps with long names), 1,500 times in one go.
    const apps = Array.from({ length: 50 }, (_, index) => ({
      packageName: `com.example.${"a".repeat(200)}${index}`,
      versionName: "1.0.0",
      versionCode: 1,
      running: true,
      foreground: false,
    }));
    const frame = JSON.stringify({ type: "heartbeat", heartbeat: heartbeatBody({ apps }) });
    expect(frame.length).toBeGreaterThan(15_000);

    let peak = 0;
    const sampler = setInterval(() => (peak = Math.max(peak, server.realtime.devices.framesInFlight)), 2);
    try {
      for (let i = 0; i < 1500; i++) socket.ws.send(frame);
      const { code } = await socket.closed;
      expect([1008, 1013]).toContain(code);
    } finally {
      clearInterval(sampler);
    }
    expect(peak).toBeLessThanOrEqual(32);
    // At most a minute's worth of frames was processed.
    expect(await server.deps.db.telemetryEvent.count({ where: { deviceId: device.deviceId } })).toBeLessThanOrEqual(600);
  });

  it("refuses a device socket over the per-address cap before the upgrade (429)", async () => {
    await start({ RATE_LIMIT_DEVICE_PER_MINUTE: "100000", WS_MAX_DEVICE_SOCKETS_PER_IP: "2" });
    const [first, second, third] = [await enroll(), await enroll(), await enroll()];
    await first.connect();
    await second.connect();
    const refused = await third.connect().catch((error: unknown) => error);
    expect(refused).toMatchObject({ status: 429, code: "rate_limited" });
    expect(server.realtime.devices.size).toBe(2);

    // A closed socket frees its place.
    await first.stop();
    for (let waited = 0; waited < 100 && server.realtime.devices.size > 1; waited++) await sleep(20);
    await third.connect();
    expect(server.realtime.devices.isConnected(third.deviceId)).toBe(true);
    await second.stop();
    await third.stop();
  });

  it("with too many queries waiting for the database pool, refuses new device sockets (503) and heartbeat frames (an error frame), each counted, and serves both once the queue drains", async () => {
    await start({ RATE_LIMIT_DEVICE_PER_MINUTE: "100000", ADMISSION_MAX_DATABASE_QUEUE: "3" });
    const [open, later] = [await enroll(), await enroll()];
    const socket = await openDeviceSocket(server.url, open.registration.deviceToken);
    for (let waited = 0; waited < 100 && !server.realtime.devices.isConnected(open.deviceId); waited++) await sleep(20);
    const pool = poolOf(server.deps.db);
    const held = await Promise.all(Array.from({ length: pool.options.max }, () => pool.connect()));
    const waiting = Array.from({ length: 3 }, () => pool.query("SELECT 1"));
    try {
      // The three, and whatever the instance's own workers queued behind the held connections.
      const gauge = await server.deps.metrics.registry.getSingleMetricAsString("mdm_database_queries_waiting");
      expect(Number(/^mdm_database_queries_waiting (\d+)$/m.exec(gauge)?.[1])).toBeGreaterThanOrEqual(3);
      const refused = await later.connect().catch((error: unknown) => error);
      expect(refused).toMatchObject({ status: 503, code: "service_unavailable" });
      socket.ws.send(JSON.stringify({ type: "heartbeat", heartbeat: heartbeatBody() }));
      for (let waited = 0; waited < 100 && socket.frames.length === 0; waited++) await sleep(20);
      expect(socket.frames[0]).toMatchObject({
        type: "error",
        code: "service_unavailable",
        message: expect.stringContaining("waiting for a database connection"),
      });
      expect((await server.deps.metrics.shed.get()).values).toEqual(
        expect.arrayContaining([
          expect.objectContaining({ labels: { reason: "websocket_upgrade" }, value: 1 }),
          expect.objectContaining({ labels: { reason: "websocket_heartbeat" }, value: 1 }),
        ]),
      );
    } finally {
      for (const client of held) client.release();
      await Promise.all(waiting);
    }
    // Once the queue drains, both are served.
    socket.ws.send(JSON.stringify({ type: "heartbeat", heartbeat: heartbeatBody() }));
    for (let waited = 0; waited < 100 && !socket.frames.some((frame) => frame.type === "heartbeat_ok"); waited++) await sleep(20);
    expect(socket.frames.some((frame) => frame.type === "heartbeat_ok")).toBe(true);
    await later.connect();
    expect(server.realtime.devices.isConnected(later.deviceId)).toBe(true);
    socket.ws.close();
    await later.stop();
  });
});
