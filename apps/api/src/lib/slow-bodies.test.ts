import net from "node:net";
import { AdminClient, SimulatedDevice } from "@mdm/simulator";
import { type RunningServer, startServer } from "../server";
import { TEST_ADMIN_KEY, TEST_HMAC_SECRET, type TestDatabase, createTestDatabase, describeWithPostgres, heartbeatBody, testServerEnv } from "../test";

// One client trickling request bodies over many sockets (each announces 5000 bytes and
// sends one byte at a time) against the real server: it must not take the instance from
// everyone else, and its uploads must be cut once the body timeout passes.

const ATTACKER = "127.0.0.2";
const SLOW_SOCKETS = 12;
const PER_CLIENT = 8;

type SlowClient = { socket: net.Socket; statuses: () => number[]; received: () => string; closed: Promise<void> };

/** POST /v1/heartbeat from ATTACKER announcing a body it never finishes. `Expect: 100-continue`
 * makes the server say when it has taken the request in (it answers 100 as it dispatches it). */
function slowBody(port: number): SlowClient {
  const socket = net.connect({ port, host: "127.0.0.1", localAddress: ATTACKER });
  let data = "";
  socket.on("data", (chunk) => (data += chunk.toString()));
  socket.on("error", () => undefined);
  const closed = new Promise<void>((resolve) => socket.on("close", () => resolve()));
  socket.once("connect", () => {
    socket.write(
      "POST /v1/heartbeat HTTP/1.1\r\nHost: api\r\nAuthorization: Bearer x\r\nContent-Type: application/json\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n{",
    );
  });
  const trickle = setInterval(() => {
    if (socket.writable) socket.write(" ");
  }, 300);
  socket.on("close", () => clearInterval(trickle));
  return {
    socket,
    received: () => data,
    statuses: () => [...data.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((match) => Number(match[1])),
    closed,
  };
}

async function until(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`${what}: not reached within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Final statuses so far (100 Continue is not one), in order. */
const finalStatuses = (clients: SlowClient[]) =>
  clients.map(
    (client) =>
      client
        .statuses()
        .filter((status) => status !== 100)
        .at(-1) ?? 0,
  );

describeWithPostgres("slow request bodies", () => {
  let database: TestDatabase;
  let server: RunningServer | undefined;
  const clients: SlowClient[] = [];

  beforeAll(async () => {
    database = await createTestDatabase();
  });
  afterEach(async () => {
    for (const client of clients.splice(0)) client.socket.destroy();
    await server?.close();
  });
  afterAll(() => database.close());

  it("from one address neither shed other clients nor hold the instance: past its share it gets 429, its uploads get 408 at the body timeout", async () => {
    server = await startServer(
      testServerEnv({
        DATABASE_URL: database.url,
        // Fewer slots than the attacker's uploads: had they counted as work in progress, the
        // instance would shed everyone else.
        ADMISSION_MAX_IN_FLIGHT: "4",
        HTTP_MAX_REQUESTS_PER_CLIENT: String(PER_CLIENT),
        HTTP_BODY_TIMEOUT_SECONDS: "5",
      }),
    );
    const port = Number(new URL(server.url).port);
    const admin = new AdminClient(server.url, { adminKey: TEST_ADMIN_KEY, hmacSecret: TEST_HMAC_SECRET });
    const { token } = await admin.createEnrollmentToken({ maxUses: 1 });
    const device = await SimulatedDevice.enroll(server.url, token);

    for (let i = 0; i < SLOW_SOCKETS; i++) clients.push(slowBody(port));
    // Every request was taken in: 100 Continue for those let upload, a refusal for the others.
    await until(
      () => clients.every((client) => client.statuses().length > 0) && finalStatuses(clients).filter(Boolean).length >= SLOW_SOCKETS - PER_CLIENT,
      "every slow request taken in",
    );
    const refused = clients.filter((client) => client.statuses().some((status) => status !== 100));
    expect(refused.map((client) => client.statuses().at(-1))).toEqual(Array(SLOW_SOCKETS - PER_CLIENT).fill(429));
    for (const client of refused) expect(client.received()).toMatch(/^Retry-After: \d+$/im);
    await Promise.all(refused.map((client) => client.closed));

    // Another client is served while they upload: an HTTP heartbeat, and a device WebSocket.
    const heartbeat = await fetch(`${server.url}/v1/heartbeat`, {
      method: "POST",
      headers: { authorization: `Bearer ${device.registration.deviceToken}`, "content-type": "application/json" },
      body: JSON.stringify(heartbeatBody()),
    });
    expect(heartbeat.status).toBe(200);
    await device.connect();
    await device.stop();
    // Once the body timeout passes, each upload is answered 408 request_timeout and closed.
    const uploading = clients.filter((client) => !refused.includes(client));
    await Promise.all(uploading.map((client) => client.closed));
    for (const client of uploading) {
      expect(client.statuses().at(-1)).toBe(408);
      expect(JSON.parse(client.received().split("\r\n\r\n").at(-1)!)).toMatchObject({ error: { code: "request_timeout" } });
    }
  }, 30_000);
});
