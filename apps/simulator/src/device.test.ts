import { createHash, randomUUID } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import {
  DEVICE_WS_PROTOCOL,
  type DeviceClientFrame,
  DeviceClientFrame as DeviceClientFrameSchema,
  type DeviceCommand,
  type DeviceServerFrame,
  signCommand,
} from "@mdm/contracts";
import { WebSocket, WebSocketServer } from "ws";
import { SimulatedDevice, reconnectDelayMs } from "./device";
import { seededRandom } from "./telemetry";

// The device's own rules (signature, expiry, exactly-once, reconnect) against a minimal
// fake of the server side of the protocol; the real server is exercised in apps/api.

const COMMAND_KEY = "a".repeat(64);
const DEVICE_ID = randomUUID();

type FakeServer = {
  url: string;
  frames: DeviceClientFrame[];
  sockets: WebSocket[];
  send(frame: DeviceServerFrame, socket?: WebSocket): void;
  waitForFrames(count: number): Promise<void>;
  close(): Promise<void>;
};

async function startFakeServer(): Promise<FakeServer> {
  const server = http.createServer((_req, res) => res.writeHead(404).end());
  const wss = new WebSocketServer({ server, handleProtocols: (protocols) => (protocols.has(DEVICE_WS_PROTOCOL) ? DEVICE_WS_PROTOCOL : false) });
  const frames: DeviceClientFrame[] = [];
  const sockets: WebSocket[] = [];
  const waiters: Array<() => void> = [];
  wss.on("connection", (socket) => {
    sockets.push(socket);
    socket.on("message", (data) => {
      frames.push(DeviceClientFrameSchema.parse(JSON.parse(data.toString())));
      for (const wake of waiters.splice(0)) wake();
    });
    socket.send(JSON.stringify({ type: "hello", deviceId: DEVICE_ID, serverTime: new Date().toISOString(), heartbeatIntervalSeconds: 60 }));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    frames,
    sockets,
    send: (frame, socket = sockets.at(-1)) => socket!.send(JSON.stringify(frame)),
    async waitForFrames(count) {
      const deadline = Date.now() + 3000;
      while (frames.length < count) {
        if (Date.now() > deadline) throw new Error(`expected ${count} frames, got ${JSON.stringify(frames)}`);
        await new Promise<void>((resolve) => {
          waiters.push(resolve);
          setTimeout(resolve, 100);
        });
      }
    },
    async close() {
      for (const socket of wss.clients) socket.terminate();
      wss.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

async function signed(overrides: Partial<DeviceCommand> = {}, key = COMMAND_KEY): Promise<DeviceCommand> {
  const now = Date.now();
  const unsigned = {
    keyId: "1",
    requestId: randomUUID(),
    type: "ping" as const,
    payload: {},
    issuedAt: new Date(now).toISOString(),
    expiresAt: new Date(now + 60_000).toISOString(),
    ...overrides,
  };
  return { ...unsigned, signature: await signCommand(key, unsigned) };
}

describe("a simulated device", () => {
  let server: FakeServer;
  let device: SimulatedDevice;

  beforeEach(async () => {
    server = await startFakeServer();
    device = new SimulatedDevice(
      server.url,
      { deviceId: DEVICE_ID, deviceToken: `${DEVICE_ID}.${"s".repeat(43)}`, commandKey: COMMAND_KEY, commandKeyId: "1", heartbeatIntervalSeconds: 60 },
      {
        reconnectBaseMs: 20,
        random: seededRandom(1),
      },
    );
    await device.connect();
  });

  afterEach(async () => {
    await device.stop();
    await server.close();
  });

  it("acknowledges, runs and reports a signed command", async () => {
    const command = await signed();
    server.send({ type: "command", command });
    await server.waitForFrames(2);
    expect(server.frames).toEqual([
      { type: "command_ack", requestId: command.requestId },
      { type: "command_result", result: expect.objectContaining({ requestId: command.requestId, status: "succeeded", result: { pong: true } }) },
    ]);
    expect(device.executions.get(command.requestId)).toBe(1);
  });

  it("drops a forged or tampered command without reporting it, so a genuine command reusing its requestId still runs", async () => {
    const genuine = await signed();
    const forged = await signed({ requestId: genuine.requestId }, "b".repeat(64));
    const tampered = { ...(await signed({ type: "launch_app", payload: { packageName: "com.example.kiosk" } })), payload: { packageName: "com.evil.app" } };
    // Signed with the right key but claiming another key id: the device cannot tell it is genuine.
    const otherKeyId = await signed({ keyId: "2" });
    const problems: string[] = [];
    device.on("problem", (message) => problems.push(message));
    device.stopApp();
    server.send({ type: "command", command: forged });
    server.send({ type: "command", command: tampered });
    server.send({ type: "command", command: otherKeyId });
    server.send({ type: "command", command: genuine });
    await server.waitForFrames(2);
    // Frames arrive in order: had the forgeries been reported, they would come first.
    expect(server.frames).toEqual([
      { type: "command_ack", requestId: genuine.requestId },
      { type: "command_result", result: expect.objectContaining({ requestId: genuine.requestId, status: "succeeded" }) },
    ]);
    expect(device.executions.get(genuine.requestId)).toBe(1);
    expect(device.executions.get(tampered.requestId)).toBeUndefined();
    expect(device.state.apps[0]!.running).toBe(false);
    expect(device.stats.commandsDropped).toBe(3);
    // Not even recorded as received: only the genuine command is, once.
    expect(device.receiptsOf(genuine.requestId).map((receipt) => receipt.command)).toEqual([genuine]);
    expect(device.receiptsOf(tampered.requestId)).toEqual([]);
    expect(device.stats.commandsReceived).toBe(1);
    // Each verification is asynchronous: the three are reported in any order.
    expect([...problems].sort()).toEqual(
      [
        `dropped command ${genuine.requestId}: signature does not verify`,
        `dropped command ${tampered.requestId}: signature does not verify`,
        `dropped command ${otherKeyId.requestId}: signature does not verify`,
      ].sort(),
    );
  });

  it("refuses an expired command", async () => {
    const expired = await signed({ expiresAt: new Date(Date.now() - 1000).toISOString() });
    server.send({ type: "command", command: expired });
    await server.waitForFrames(1);
    expect(server.frames[0]).toEqual({
      type: "command_result",
      result: expect.objectContaining({ status: "failed", error: `expired at ${expired.expiresAt}` }),
    });
    expect(device.executions.size).toBe(0);
  });

  it("runs a re-delivered command once, answering the repeat with its ack and recorded result", async () => {
    const command = await signed({ type: "custom", payload: { action: "sync" } });
    server.send({ type: "command", command });
    await server.waitForFrames(2);
    server.send({ type: "command", command });
    await server.waitForFrames(4);
    expect(server.frames.slice(2)).toEqual(server.frames.slice(0, 2));
    expect(device.executions.get(command.requestId)).toBe(1);
    expect(device.receiptsOf(command.requestId)).toHaveLength(2);
  });

  it("drops the first acks and their results when told to, then answers the re-delivery", async () => {
    await device.stop();
    device = new SimulatedDevice(server.url, device.registration, { dropAcks: 1 });
    await device.connect();
    const command = await signed();
    server.send({ type: "command", command });
    await device.waitForCommand(command.requestId);
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(server.frames).toEqual([]);
    server.send({ type: "command", command });
    await server.waitForFrames(2);
    expect(server.frames.map((frame) => frame.type)).toEqual(["command_ack", "command_result"]);
    expect(device.executions.get(command.requestId)).toBe(1);
  });

  it("reconnects by itself when the server drops the socket, and a reboot reopens it", async () => {
    server.sockets[0]!.terminate();
    await new Promise<void>((resolve) => device.once("connected", resolve));
    expect(server.sockets).toHaveLength(2);
    expect(device.connected).toBe(true);

    const reboot = await signed({ type: "reboot" });
    server.send({ type: "command", command: reboot });
    await server.waitForFrames(2);
    expect(server.sockets).toHaveLength(3);
    expect(server.frames[1]).toEqual({ type: "command_result", result: expect.objectContaining({ requestId: reboot.requestId, status: "succeeded" }) });
    expect(device.state.bootedAt).toBeGreaterThan(Date.now() - 5000);
  });

  it("sends a result again on the next connection when the socket closed before the server answered it", async () => {
    const unanswered = await signed();
    server.send({ type: "command", command: unanswered });
    await server.waitForFrames(2); // ack + result, never answered: the instance went away
    server.sockets[0]!.close(1001, "server shutting down");
    await new Promise<void>((resolve) => device.once("connected", resolve));
    await server.waitForFrames(3);
    expect(server.frames[2]).toEqual({ type: "command_result", result: expect.objectContaining({ requestId: unanswered.requestId, status: "succeeded" }) });

    // Answered this time: a later reconnect has nothing to send again.
    server.send({ type: "result_ok", requestId: unanswered.requestId, status: "succeeded", changed: true });
    const answered = await signed();
    server.send({ type: "command", command: answered });
    await server.waitForFrames(5);
    server.send({ type: "result_ok", requestId: answered.requestId, status: "succeeded", changed: true });
    await new Promise((resolve) => setTimeout(resolve, 50));
    server.sockets[1]!.close(1001, "server shutting down");
    await new Promise<void>((resolve) => device.once("connected", resolve));
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(server.frames).toHaveLength(5);
    expect(device.executions.get(unanswered.requestId)).toBe(1);
    expect(device.executions.get(answered.requestId)).toBe(1);
  });

  it("keeps the lock-task app in front once it is installed, and never reports one it does not have", async () => {
    // The APKs come from a local file server standing in for the catalogue's https origin.
    const apk = Buffer.from("not really an apk, but hashed all the same");
    const files = http.createServer((_req, res) => res.writeHead(200).end(apk));
    await new Promise<void>((resolve) => files.listen(0, "127.0.0.1", resolve));
    const kiosk = new SimulatedDevice(
      server.url,
      { deviceId: DEVICE_ID, deviceToken: `${DEVICE_ID}.${"s".repeat(43)}`, commandKey: COMMAND_KEY, commandKeyId: "1", heartbeatIntervalSeconds: 60 },
      { random: seededRandom(2), downloadOrigin: `http://127.0.0.1:${(files.address() as AddressInfo).port}` },
    );
    try {
      await kiosk.connect();
      const socket = server.sockets.at(-1)!;
      const till = "com.example.till";
      const applied = new Promise((resolve) => kiosk.once("policy", resolve));
      server.send({ type: "policy", policy: { hash: "h1", settings: { kiosk: { lockTaskPackages: [till] } } } }, socket);
      await applied;
      expect(kiosk.state.apps.find((app) => app.packageName === till)).toBeUndefined();

      const sha256 = createHash("sha256").update(apk).digest("hex");
      for (const versionCode of [3, 4]) {
        const install = await signed({ type: "install_app", payload: { packageName: till, versionCode, url: "https://apps.example.com/till.apk", sha256 } });
        const done = new Promise<{ status: string }>((resolve) => kiosk.once("result", resolve));
        server.send({ type: "command", command: install }, socket);
        expect((await done).status).toBe("succeeded");
        // Installed, then updated: each time back in front, alone.
        expect(kiosk.state.apps.find((app) => app.packageName === till)).toMatchObject({ versionCode, running: true, foreground: true });
        expect(kiosk.state.apps.filter((app) => app.foreground).map((app) => app.packageName)).toEqual([till]);
      }
    } finally {
      await kiosk.stop();
      await new Promise((resolve) => files.close(resolve));
    }
  });

  it("stays disconnected after disconnect()", async () => {
    await device.disconnect();
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(server.sockets.filter((socket) => socket.readyState === WebSocket.OPEN)).toHaveLength(0);
    expect(device.connected).toBe(false);
  });
});

describe("results the server could not take", () => {
  /** An HTTP-only server: the first `busyResults` action results get 503 with Retry-After; heartbeats carry `commands` once. */
  async function startBusyServer(busyResults: number, commands: DeviceCommand[]) {
    const results: Array<{ status: number; body: { requestId: string; status: string } }> = [];
    let busy = busyResults;
    let pending = commands;
    const server = http.createServer((req, res) => {
      let text = "";
      req.on("data", (chunk) => (text += chunk));
      req.on("end", () => {
        const send = (status: number, body: unknown, headers: Record<string, string> = {}) =>
          res.writeHead(status, { "Content-Type": "application/json", ...headers }).end(JSON.stringify(body));
        if (req.url === "/v1/heartbeat") {
          const answer = { serverTime: new Date().toISOString(), heartbeatIntervalSeconds: 60, commands: pending };
          pending = [];
          return send(200, answer);
        }
        const body = JSON.parse(text) as { requestId: string; status: string };
        if (busy > 0) {
          busy--;
          results.push({ status: 503, body });
          return send(503, { error: { code: "service_unavailable", message: "busy" } }, { "Retry-After": "1" });
        }
        results.push({ status: 200, body });
        return send(200, { requestId: body.requestId, status: body.status, changed: true });
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, results, close: () => new Promise((resolve) => server.close(resolve)) };
  }

  it("are sent again after the next answered heartbeat, so a command that ran is not lost to a busy moment", async () => {
    const command = await signed();
    const server = await startBusyServer(2, [command]);
    const device = new SimulatedDevice(
      server.url,
      { deviceId: DEVICE_ID, deviceToken: `${DEVICE_ID}.${"s".repeat(43)}`, commandKey: COMMAND_KEY, commandKeyId: "1", heartbeatIntervalSeconds: 60 },
      {
        random: seededRandom(3),
      },
    );
    const problems: string[] = [];
    device.on("problem", (problem) => problems.push(problem));
    try {
      await device.heartbeat(); // carries the command: its ack and its result both meet a 503
      expect(device.executions.get(command.requestId)).toBe(1);
      expect(server.results.map((entry) => [entry.status, entry.body.status])).toEqual([
        [503, "acknowledged"],
        [503, "succeeded"],
      ]);
      expect(problems.filter((problem) => problem.includes("held for retry"))).toHaveLength(2);

      await device.heartbeat(); // answered: the held result goes again, the ack it replaced does not
      const deadline = Date.now() + 3000;
      while (server.results.length < 3 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
      expect(server.results.slice(2).map((entry) => [entry.status, entry.body.status])).toEqual([[200, "succeeded"]]);
      expect(device.executions.get(command.requestId)).toBe(1);

      await device.heartbeat(); // nothing left to send
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(server.results).toHaveLength(3);
    } finally {
      await device.stop();
      await server.close();
    }
  });
});

describe("reconnectDelayMs", () => {
  it("doubles up to the ceiling, with jitter in the upper half", () => {
    const random = seededRandom(2);
    for (let attempt = 0; attempt < 20; attempt++) {
      const ceiling = Math.min(30_000, 500 * 2 ** attempt);
      const delay = reconnectDelayMs(attempt, 500, 30_000, random);
      expect(delay).toBeGreaterThanOrEqual(ceiling / 2);
      expect(delay).toBeLessThanOrEqual(ceiling);
    }
  });
});

describe("a simulated device told to wipe itself", () => {
  it("reports the result over HTTP, forgets its enrollment and state, and comes back only by enrolling again", async () => {
    const posted: Array<{ path: string; body: Record<string, unknown> }> = [];
    const newId = randomUUID();
    const server = http.createServer((req, res) => {
      let raw = "";
      req.on("data", (chunk) => (raw += chunk));
      req.on("end", () => {
        posted.push({ path: req.url ?? "", body: JSON.parse(raw || "{}") });
        res.setHeader("content-type", "application/json");
        if (req.url === "/v1/register") {
          res.writeHead(201).end(
            JSON.stringify({
              deviceId: newId,
              deviceToken: `${newId}.${"t".repeat(43)}`,
              commandKey: "c".repeat(64),
              commandKeyId: "1",
              heartbeatIntervalSeconds: 60,
            }),
          );
          return;
        }
        const requestId = (posted.at(-1)!.body as { requestId: string }).requestId;
        res.writeHead(200).end(JSON.stringify({ requestId, status: "succeeded", changed: true }));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const device = new SimulatedDevice(url, {
      deviceId: DEVICE_ID,
      deviceToken: `${DEVICE_ID}.${"s".repeat(43)}`,
      commandKey: COMMAND_KEY,
      commandKeyId: "1",
      heartbeatIntervalSeconds: 60,
    });
    try {
      const wipe = await signed({ type: "wipe" });
      const result = new Promise((resolve) => device.once("result", resolve));
      await (device as unknown as { receive(command: DeviceCommand, channel: "http"): Promise<void> }).receive(wipe, "http");
      expect(await result).toMatchObject({ requestId: wipe.requestId, status: "succeeded", result: { wiped: true } });
      expect(posted.map((call) => call.path)).toEqual(["/v1/action-result", "/v1/action-result"]);
      expect(device.wiped).toBe(true);
      await expect(device.heartbeat()).rejects.toThrow(/wiped/);

      await device.reenroll("new-enrollment-token");
      expect(posted.at(-1)).toMatchObject({ path: "/v1/register", body: { enrollmentToken: "new-enrollment-token" } });
      expect(device.deviceId).toBe(newId);
      expect(device.wiped).toBe(false);
    } finally {
      await device.stop();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
