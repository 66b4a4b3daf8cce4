import net from "node:net";
import { parseEnv } from "../config/env";
import { type RunningServer, startServer } from "../server";
import { type TestDatabase, createTestDatabase, settledWithin } from "../test";

// The limits of the real server (server.ts), over raw sockets: what a slow or greedy
// client, and the dashboard's keep-alive proxy, actually see.

let database: TestDatabase;
const running: RunningServer[] = [];

beforeAll(async () => {
  database = await createTestDatabase();
});
afterEach(async () => {
  await Promise.all(running.splice(0).map((server) => server.close()));
});
afterAll(() => database.close());

async function start(env: Record<string, string> = {}): Promise<{ port: number }> {
  const server = await startServer(
    parseEnv({ NODE_ENV: "test", HOST: "127.0.0.1", PORT: "0", DATABASE_URL: database.url, ADMISSION_MAX_EVENT_LOOP_LAG_MS: "0", ...env }),
  );
  running.push(server);
  return { port: Number(new URL(server.url).port) };
}

type Connection = { socket: net.Socket; received: () => string; closed: Promise<number> };

function connect(port: number): Promise<Connection> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, "127.0.0.1");
    let data = "";
    const opened = Date.now();
    socket.on("data", (chunk) => (data += chunk.toString()));
    socket.on("error", () => {});
    const closed = new Promise<number>((done) => socket.on("close", () => done(Date.now() - opened)));
    socket.once("connect", () => resolve({ socket, received: () => data, closed }));
    socket.once("error", reject);
  });
}

const HEALTH = "GET /api/health HTTP/1.1\r\nHost: api\r\n\r\n";

async function responses(connection: Connection, count: number): Promise<void> {
  const deadline = Date.now() + 5000;
  while ((connection.received().match(/HTTP\/1\.1 \d{3} /g) ?? []).length < count) {
    if (Date.now() > deadline) throw new Error(`expected ${count} responses, got: ${connection.received()}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

it("cuts off a client that trickles its headers byte by byte", async () => {
  const { port } = await start({ HTTP_HEADERS_TIMEOUT_SECONDS: "1", HTTP_REQUEST_TIMEOUT_SECONDS: "2" });
  const connection = await connect(port);
  const endless = `GET /api/health HTTP/1.1\r\nHost: api\r\nX-Padding: ${"a".repeat(10_000)}`;
  let sent = 0;
  const trickle = setInterval(() => {
    if (!connection.socket.destroyed) connection.socket.write(endless[sent++]!);
  }, 50);
  try {
    const closedAfterMs = await settledWithin(connection.closed, 8000, -1);
    expect(closedAfterMs).toBeGreaterThanOrEqual(900);
    expect(closedAfterMs).toBeLessThan(4000);
    expect(sent).toBeLessThan(endless.length);
  } finally {
    clearInterval(trickle);
  }
});

it("answers the cut-off client 408 request_timeout, with the headers every answer carries", async () => {
  const { port } = await start({ HTTP_HEADERS_TIMEOUT_SECONDS: "1", HTTP_REQUEST_TIMEOUT_SECONDS: "2" });
  const connection = await connect(port);
  connection.socket.write("GET /api/health HTTP/1.1\r\nHost: api\r\nX-Padding: aaaa");
  await connection.closed;
  expect(connection.received()).toMatch(/^HTTP\/1\.1 408 Request Timeout\r\n/);
  expect(connection.received()).toMatch(/^X-Content-Type-Options: nosniff$/im);
  expect(connection.received()).toMatch(/^Cache-Control: no-store$/im);
  expect(JSON.parse(connection.received().split("\r\n\r\n")[1]!)).toMatchObject({ error: { code: "request_timeout" } });
});

it("keeps an idle keep-alive connection past the headers timeout, and announces its keep-alive timeout", async () => {
  const { port } = await start({ HTTP_HEADERS_TIMEOUT_SECONDS: "1", HTTP_REQUEST_TIMEOUT_SECONDS: "2", HTTP_KEEP_ALIVE_TIMEOUT_SECONDS: "4" });
  const connection = await connect(port);
  connection.socket.write(HEALTH);
  await responses(connection, 1);
  expect(connection.received()).toMatch(/^Keep-Alive: timeout=4$/im);
  // Idle for twice the headers timeout: only the keep-alive timeout may close it.
  await new Promise((resolve) => setTimeout(resolve, 2000));
  expect(connection.socket.destroyed).toBe(false);
  connection.socket.write(HEALTH);
  await responses(connection, 2);
  expect(connection.received()).toMatch(/HTTP\/1\.1 200 OK[\s\S]*HTTP\/1\.1 200 OK/);
  connection.socket.destroy();
});

it("by default outlasts the idle sockets of the proxies in front (60 s for nginx and AWS ALB; Node's own 5 s did not)", async () => {
  const { port } = await start();
  const connection = await connect(port);
  connection.socket.write(HEALTH);
  await responses(connection, 1);
  // Node's HTTP agent (the dashboard's proxy) keeps an idle socket until this, less 1 s.
  expect(connection.received()).toMatch(/^Keep-Alive: timeout=65$/im);
  connection.socket.destroy();
});

it("refuses connections past HTTP_MAX_CONNECTIONS", async () => {
  const { port } = await start({ HTTP_MAX_CONNECTIONS: "2" });
  const held = [await connect(port), await connect(port)];
  for (const connection of held) {
    connection.socket.write(HEALTH);
    await responses(connection, 1);
  }
  const extra = await connect(port);
  extra.socket.write(HEALTH);
  await extra.closed;
  expect(extra.received()).toBe("");
  held[0]!.socket.destroy();
  await held[0]!.closed;
  const later = await connect(port);
  later.socket.write(HEALTH);
  await responses(later, 1);
  for (const connection of [held[1]!, later]) connection.socket.destroy();
});
