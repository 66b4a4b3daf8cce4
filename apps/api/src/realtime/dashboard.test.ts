import {
  BEARER_PROTOCOL_PREFIX,
  DASHBOARD_WS_PROTOCOL,
  DEVICE_WS_PROTOCOL,
  DashboardServerFrame,
  RegisterResponse,
  SESSION_COOKIE,
  WS_TICKET_PROTOCOL_PREFIX,
  signAdminRequest,
} from "@mdm/contracts";
import { Client } from "pg";
import WebSocket from "ws";
import { parseEnv } from "../config/env";
import { createPasswordToken } from "../modules/auth/password-reset.service";
import { signAccessToken, signWsTicket } from "../modules/auth/tokens";
import { type RunningServer, startServer } from "../server";
import { TEST_ADMIN_KEY, TEST_BCRYPT_COST, TEST_HMAC_SECRET, TEST_SECRETS, type TestDatabase, createTestDatabase, heartbeatBody } from "../test";
import { TEST_PASSWORD, createUser } from "../test/sessions";

// The dashboard channel through a real listening server and real sockets.

let database: TestDatabase;
let server: RunningServer;
let sessionCookie: string;
let userId: string;

beforeAll(async () => {
  database = await createTestDatabase();
  server = await startServer(
    parseEnv({
      NODE_ENV: "test",
      PORT: "0",
      HOST: "127.0.0.1",
      DATABASE_URL: database.url,
      ...TEST_SECRETS,
      BCRYPT_COST: TEST_BCRYPT_COST,
      DASHBOARD_FLUSH_MS: "250",
      ADMISSION_MAX_EVENT_LOOP_LAG_MS: "0",
      WS_SESSION_CHECK_SECONDS: "0.2",
      WS_MAX_SOCKETS_PER_USER: "3",
      RATE_LIMIT_DEVICE_PER_MINUTE: "100000",
      RATE_LIMIT_ENROLLMENT_PER_MINUTE: "100000",
      RATE_LIMIT_ADMIN_PER_MINUTE: "100000",
      RATE_LIMIT_GENERAL_PER_MINUTE: "100000",
    }),
  );
  const user = await createUser(server.deps.db, { email: "ops@example.com", role: "viewer" });
  userId = user.id;
  const login = await fetch(`${server.url}/auth/login`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ email: "ops@example.com", password: TEST_PASSWORD }),
  });
  expect(login.status).toBe(200);
  sessionCookie = login.headers
    .getSetCookie()
    .map((cookie) => cookie.split(";")[0])
    .join("; ");
});

afterAll(async () => {
  await server.close();
  await database.close();
});

const wsUrl = () => `${server.url.replace("http", "ws")}/ws/dashboard`;

/** Opens a dashboard socket; resolves with it and the frames it receives, or with the refusal status. */
function connect(options: { protocols?: string[]; headers?: Record<string, string> }) {
  return new Promise<{ socket?: WebSocket; status?: number; frames: DashboardServerFrame[] }>((resolve) => {
    const frames: DashboardServerFrame[] = [];
    const socket = new WebSocket(wsUrl(), options.protocols ?? [DASHBOARD_WS_PROTOCOL], { headers: options.headers });
    socket.on("message", (data) => frames.push(DashboardServerFrame.parse(JSON.parse(data.toString()))));
    socket.on("unexpected-response", (_req, res) => resolve({ status: res.statusCode, frames }));
    socket.on("open", () => resolve({ socket, frames }));
  });
}

/** A new user of `role`, signed in: their cookies and CSRF token as a browser holds them. */
async function signedIn(role: "viewer" | "admin" = "viewer") {
  const user = await createUser(server.deps.db, { role });
  const login = await fetch(`${server.url}/auth/login`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ email: user.email, password: TEST_PASSWORD }),
  });
  expect(login.status).toBe(200);
  const { csrfToken } = (await login.json()) as { csrfToken: string };
  return {
    userId: user.id,
    cookie: login.headers
      .getSetCookie()
      .map((cookie) => cookie.split(";")[0])
      .join("; "),
    csrf: csrfToken,
  };
}

async function ticketFor(cookie: string): Promise<string> {
  const res = await fetch(`${server.url}/auth/ws-ticket`, { headers: { Cookie: cookie } });
  expect(res.status).toBe(200);
  return ((await res.json()) as { ticket: string }).ticket;
}

const withTicket = (ticket: string) => ({
  protocols: [DASHBOARD_WS_PROTOCOL, `${WS_TICKET_PROTOCOL_PREFIX}${ticket}`],
  headers: { Origin: "https://dashboard.example" },
});

function closeCode(socket: WebSocket): Promise<number> {
  return new Promise((resolve) => socket.once("close", (code) => resolve(code)));
}

/** Enrolls `count` devices through the API. */
async function enrollDevices(count: number): Promise<RegisterResponse[]> {
  const body = JSON.stringify({ maxUses: count });
  const headers = await signAdminRequest({
    adminKey: TEST_ADMIN_KEY,
    hmacSecret: TEST_HMAC_SECRET,
    method: "POST",
    host: new URL(server.url).host,
    pathWithQuery: "/admin/enrollment-tokens",
    body,
  });
  const { token } = (await (
    await fetch(`${server.url}/admin/enrollment-tokens`, { method: "POST", headers: { ...headers, "Content-Type": "application/json" }, body })
  ).json()) as { token: string };
  const devices = [];
  for (let i = 0; i < count; i++) {
    const registered = await fetch(`${server.url}/v1/register`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ enrollmentToken: token }),
    });
    devices.push(RegisterResponse.parse(await registered.json()));
  }
  return devices;
}

async function until(condition: () => boolean | Promise<boolean>, what: string) {
  for (let i = 0; i < 400 && !(await condition()); i++) await new Promise((resolve) => setTimeout(resolve, 25));
  if (!(await condition())) throw new Error(`timed out waiting for ${what}`);
}

describe("dashboard channel authentication", () => {
  it("refuses a connection without a session before the upgrade", async () => {
    expect((await connect({})).status).toBe(401);
  });

  it("refuses an expired session and an expired ticket", async () => {
    const longAgo = new Date(Date.now() - 3600_000);
    const sessionId = (await server.deps.db.session.findFirstOrThrow({ where: { userId } })).id;
    const expired = signAccessToken(server.deps.env, longAgo, { userId, role: "viewer", sessionId }).token;
    expect((await connect({ headers: { Cookie: `${SESSION_COOKIE}=${expired}` } })).status).toBe(401);
    const staleTicket = signWsTicket(server.deps.env, longAgo, { userId, role: "viewer", sessionId }).token;
    expect((await connect({ protocols: [DASHBOARD_WS_PROTOCOL, `${WS_TICKET_PROTOCOL_PREFIX}${staleTicket}`] })).status).toBe(401);
    // The same tokens, freshly signed, are accepted: the refusals above are about expiry.
    const fresh = signAccessToken(server.deps.env, new Date(), { userId, role: "viewer", sessionId }).token;
    const accepted = await connect({ headers: { Cookie: `${SESSION_COOKIE}=${fresh}` } });
    expect(accepted.socket).toBeDefined();
    accepted.socket!.close();
    const freshTicket = signWsTicket(server.deps.env, new Date(), { userId, role: "viewer", sessionId }).token;
    const byTicket = await connect({ protocols: [DASHBOARD_WS_PROTOCOL, `${WS_TICKET_PROTOCOL_PREFIX}${freshTicket}`] });
    expect(byTicket.socket).toBeDefined();
    byTicket.socket!.close();
  });

  it("accepts the session cookie, and a ticket from another origin", async () => {
    const byCookie = await connect({ headers: { Cookie: sessionCookie } });
    expect(byCookie.socket).toBeDefined();
    await until(() => byCookie.frames.length > 0, "hello");
    expect(byCookie.frames[0]).toMatchObject({ type: "hello", flushIntervalMs: 250 });
    byCookie.socket!.close();

    // A foreign page cannot ride the cookie...
    expect((await connect({ headers: { Cookie: sessionCookie, Origin: "https://evil.example" } })).status).toBe(401);
    // ...but the dashboard on its own origin gets a ticket and offers it.
    const ticket = (await (await fetch(`${server.url}/auth/ws-ticket`, { headers: { Cookie: sessionCookie } })).json()) as { ticket: string };
    const byTicket = await connect({
      protocols: [DASHBOARD_WS_PROTOCOL, `${WS_TICKET_PROTOCOL_PREFIX}${ticket.ticket}`],
      headers: { Origin: "https://dashboard.example" },
    });
    expect(byTicket.socket?.protocol).toBe(DASHBOARD_WS_PROTOCOL);
    byTicket.socket!.close();
  });

  it("closes with 1008 on a frame outside the protocol", async () => {
    const { socket } = await connect({ headers: { Cookie: sessionCookie } });
    const closed = new Promise<number>((resolve) => socket!.on("close", (code) => resolve(code)));
    socket!.send(JSON.stringify({ type: "subscribe", everything: true }));
    expect(await closed).toBe(1008);
  });
});

describe("dashboard sockets end with their session", () => {
  it("a ticket opens one socket, once", async () => {
    const user = await signedIn();
    const ticket = await ticketFor(user.cookie);
    const first = await connect(withTicket(ticket));
    expect(first.socket).toBeDefined();
    expect((await connect(withTicket(ticket))).status).toBe(401);
    first.socket!.close();
  });

  it("a ticket works only while its session is live", async () => {
    const user = await signedIn();
    const ticket = await ticketFor(user.cookie);
    const logout = await fetch(`${server.url}/auth/logout`, { method: "POST", headers: { Cookie: user.cookie, "X-CSRF-Token": user.csrf } });
    expect(logout.status).toBe(204);
    expect((await connect(withTicket(ticket))).status).toBe(401);
  });

  it("closes the socket with 4003 after sign-out", async () => {
    const user = await signedIn();
    const { socket } = await connect(withTicket(await ticketFor(user.cookie)));
    const closed = closeCode(socket!);
    await fetch(`${server.url}/auth/logout`, { method: "POST", headers: { Cookie: user.cookie, "X-CSRF-Token": user.csrf } });
    expect(await closed).toBe(4003);
  });

  it("closes the socket with 4003 when the user is disabled", async () => {
    const user = await signedIn();
    const { socket } = await connect({ headers: { Cookie: user.cookie } });
    const closed = closeCode(socket!);
    await server.deps.db.user.update({ where: { id: user.userId }, data: { disabledAt: new Date() } });
    expect(await closed).toBe(4003);
  });

  it("closes the socket with 4003 when the password is reset", async () => {
    const user = await signedIn();
    const { socket } = await connect({ headers: { Cookie: user.cookie } });
    const closed = closeCode(socket!);
    const { link } = await createPasswordToken(server.deps, server.deps.db, user.userId, 600);
    const token = new URL(link).searchParams.get("token")!;
    const reset = await fetch(`${server.url}/auth/password-reset/confirm`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ token, password: "another long passphrase" }),
    });
    expect(reset.status).toBe(204);
    expect(await closed).toBe(4003);
  });

  it("keeps a live session's socket open", async () => {
    const user = await signedIn();
    const { socket } = await connect({ headers: { Cookie: user.cookie } });
    let closed = false;
    socket!.on("close", () => (closed = true));
    await new Promise((resolve) => setTimeout(resolve, 1000));
    expect(closed).toBe(false);
    socket!.close();
  });

  it("caps the sockets of one user (WS_MAX_SOCKETS_PER_USER) with 429", async () => {
    const user = await signedIn();
    const open: WebSocket[] = [];
    for (let i = 0; i < 3; i++) open.push((await connect(withTicket(await ticketFor(user.cookie)))).socket!);
    expect(open.every(Boolean)).toBe(true);
    expect((await connect(withTicket(await ticketFor(user.cookie)))).status).toBe(429);
    expect((await connect({ headers: { Cookie: user.cookie } })).status).toBe(429);
    // Other users are not affected, and a closed socket frees its place.
    const other = await connect({ headers: { Cookie: sessionCookie } });
    expect(other.socket).toBeDefined();
    other.socket!.close();
    const freed = closeCode(open[0]!);
    open[0]!.close();
    await freed;
    await until(() => server.realtime.dashboards.socketsOf(user.userId) === 2, "the server to count the closed socket");
    const again = await connect(withTicket(await ticketFor(user.cookie)));
    expect(again.socket).toBeDefined();
    for (const socket of [...open.slice(1), again.socket!]) socket.close();
  });
});

describe("dashboard channel updates", () => {
  it("coalesces 1,000 heartbeats into at most one frame per flush interval, the latest state of each device winning", async () => {
    const devices = await enrollDevices(50);

    const dashboard = await connect({ headers: { Cookie: sessionCookie } });
    await until(() => dashboard.frames.length === 1, "hello");
    const heartbeat = (device: RegisterResponse, level: number) =>
      fetch(`${server.url}/v1/heartbeat`, {
        method: "POST",
        headers: { "Content-Type": "application/json", Authorization: `Bearer ${device.deviceToken}` },
        body: JSON.stringify(heartbeatBody({ battery: { level, charging: false } })),
      }).then((res) => expect(res.status).toBe(200));

    // 20 rounds of one heartbeat per device: 1,000 heartbeats, levels 80, 79, ... 61.
    const started = Date.now();
    for (let round = 0; round < 20; round++) await Promise.all(devices.map((device) => heartbeat(device, 80 - round)));
    const elapsedMs = Date.now() - started;

    const latest = new Map<string, number | null>();
    await until(() => {
      for (const frame of dashboard.frames) if (frame.type === "update") for (const state of frame.devices) latest.set(state.deviceId, state.batteryLevel);
      return latest.size === 50 && [...latest.values()].every((level) => level === 61);
    }, "every device's last state");
    const updates = dashboard.frames.filter((frame) => frame.type === "update");
    // At most one frame per 250 ms flush while the heartbeats ran, plus the final flush.
    expect(updates.length).toBeLessThanOrEqual(Math.ceil(elapsedMs / 250) + 2);
    expect(updates.length).toBeLessThan(1000 / 10);
    for (const frame of updates) {
      const ids = frame.devices.map((state) => state.deviceId);
      expect(new Set(ids).size).toBe(ids.length); // one entry per device per frame
    }
    dashboard.socket!.close();
  });

  it("streams command status changes", async () => {
    const dashboard = await connect({ headers: { Cookie: sessionCookie } });
    await until(() => dashboard.frames.length === 1, "hello");
    const device = await server.deps.db.device.findFirstOrThrow();
    const body = JSON.stringify({ deviceId: device.id, type: "ping" });
    const headers = await signAdminRequest({
      adminKey: TEST_ADMIN_KEY,
      hmacSecret: TEST_HMAC_SECRET,
      method: "POST",
      host: new URL(server.url).host,
      pathWithQuery: "/admin/command",
      body,
    });
    const created = (await (
      await fetch(`${server.url}/admin/command`, { method: "POST", headers: { ...headers, "Content-Type": "application/json" }, body })
    ).json()) as { requestId: string };
    await until(
      () =>
        dashboard.frames.some(
          (frame) => frame.type === "update" && frame.commands.some((change) => change.requestId === created.requestId && change.status === "queued"),
        ),
      "the queued status",
    );
    dashboard.socket!.close();
  });

  it("streams a device's socket opening and closing, apart from its heartbeat status", async () => {
    const device = (await enrollDevices(1))[0]!;

    const dashboard = await connect({ headers: { Cookie: sessionCookie } });
    await until(() => dashboard.frames.length === 1, "hello");
    const states = () =>
      dashboard.frames.flatMap((frame) => (frame.type === "update" ? frame.devices.filter((state) => state.deviceId === device.deviceId) : []));

    const socket = new WebSocket(`${server.url.replace(/^http/, "ws")}/ws/devices`, [DEVICE_WS_PROTOCOL, `${BEARER_PROTOCOL_PREFIX}${device.deviceToken}`]);
    await until(() => states().some((state) => state.connected), "the connected state");
    const connected = states().find((state) => state.connected)!;
    expect(connected.connectedSince).not.toBeNull();
    expect(connected.disconnectedSince).toBeNull();

    socket.close();
    await until(() => states().at(-1)?.connected === false, "the disconnected state");
    const closed = states().at(-1)!;
    expect(closed.disconnectedSince).not.toBeNull();
    expect(closed.connectedSince).toBeNull();
    const view = await server.deps.db.device.findUniqueOrThrow({ where: { id: device.deviceId } });
    expect(view.socketDisconnectedAt?.toISOString()).toBe(closed.disconnectedSince);
    dashboard.socket!.close();
  });

  it("takes and releases the leases of sockets opening and closing together in a few statements, and streams every one's disconnection", async () => {
    const count = 40;
    const devices = await enrollDevices(count);
    const ids = devices.map((device) => device.deviceId);
    const hub = server.realtime.devices;
    // The devices' rows are held, as a long update would hold them: the first lease (or
    // release) statements wait on them while every other socket's joins the queue. How many
    // statements carry the 40 then depends on the grouping alone, not on how fast the machine
    // happens to be.
    const holder = new Client({ connectionString: database.url });
    await holder.connect();
    const holdRows = async () => {
      await holder.query("BEGIN");
      await holder.query(`SELECT 1 FROM "Device" WHERE id = ANY($1::uuid[]) FOR NO KEY UPDATE`, [ids]);
    };
    try {
      await holdRows();
      const leaseStatements = jest.spyOn(server.deps.db, "$queryRaw");
      const hellos: string[] = [];
      const sockets = devices.map((device) => {
        const socket = new WebSocket(`${server.url.replace(/^http/, "ws")}/ws/devices`, [DEVICE_WS_PROTOCOL, `${BEARER_PROTOCOL_PREFIX}${device.deviceToken}`]);
        socket.on("message", (data) => {
          if (JSON.parse(data.toString()).type === "hello") hellos.push(device.deviceId);
        });
        return socket;
      });
      // A socket counts as connected from the moment its lease is queued.
      await until(() => ids.every((id) => hub.isConnected(id)), "every lease queued");
      await holder.query("COMMIT");
      const held = () => server.deps.db.device.count({ where: { id: { in: ids }, socketInstanceId: { not: null } } });
      await until(async () => hellos.length === count && (await held()) === count, "every lease taken and hello sent");
      const leases = leaseStatements.mock.calls.filter((call) => String(call[0]).includes('"socketConnectedAt" =')).length;
      leaseStatements.mockRestore();
      // Four queries per socket before (lease, a read for dashboards, due commands, policy). Now
      // at most two statements wait on the held rows (two run at once) and one carries the rest.
      expect(leases).toBeGreaterThanOrEqual(1);
      expect(leases).toBeLessThanOrEqual(3);

      const dashboard = await connect({ headers: { Cookie: sessionCookie } });
      await until(() => dashboard.frames.length === 1, "hello");
      await holdRows();
      const statements = jest.spyOn(server.deps.db, "$queryRaw");
      for (const socket of sockets) socket.close();
      // A socket stops counting as connected as its release is queued.
      await until(() => ids.every((id) => !hub.isConnected(id)), "every release queued");
      await holder.query("COMMIT");
      await until(async () => (await held()) === 0, "every lease released");
      const releases = statements.mock.calls.filter((call) => String(call[0]).includes('"socketDisconnectedAt" =')).length;
      statements.mockRestore();
      // One statement per socket before (and a read after each to tell dashboards). Now one
      // waits on the held rows (one runs at a time) and one carries the rest.
      expect(releases).toBeGreaterThanOrEqual(1);
      expect(releases).toBeLessThanOrEqual(2);
      const disconnected = () =>
        new Set(
          dashboard.frames.flatMap((frame) =>
            frame.type === "update" ? frame.devices.filter((state) => ids.includes(state.deviceId) && !state.connected).map((state) => state.deviceId) : [],
          ),
        );
      await until(() => disconnected().size === count, "every disconnection streamed");
      const rows = await server.deps.db.device.findMany({ where: { id: { in: ids } } });
      expect(rows.every((row) => row.socketDisconnectedAt !== null && row.socketLeaseExpiresAt === null)).toBe(true);
      dashboard.socket!.close();
    } finally {
      await holder.end();
    }
  });

  it("takes the other leases of a batch one by one when its statement fails: one device's failure closes its socket alone", async () => {
    const devices = await enrollDevices(6);
    const failing = devices[0]!.deviceId;
    // A real failure inside the batch's statement, for one device only.
    await database.db.$executeRawUnsafe(`
      CREATE FUNCTION refuse_lease() RETURNS trigger AS $$
      BEGIN
        IF NEW.id = '${failing}'::uuid AND NEW."socketInstanceId" IS NOT NULL THEN RAISE EXCEPTION 'lease refused'; END IF;
        RETURN NEW;
      END $$ LANGUAGE plpgsql`);
    await database.db.$executeRawUnsafe(`CREATE TRIGGER refuse_lease BEFORE UPDATE ON "Device" FOR EACH ROW EXECUTE FUNCTION refuse_lease()`);
    try {
      const outcomes = await Promise.all(
        devices.map(
          (device) =>
            new Promise<string>((resolve) => {
              const socket = new WebSocket(`${server.url.replace(/^http/, "ws")}/ws/devices`, [
                DEVICE_WS_PROTOCOL,
                `${BEARER_PROTOCOL_PREFIX}${device.deviceToken}`,
              ]);
              socket.on("message", (data) => {
                if (JSON.parse(data.toString()).type === "hello") {
                  resolve("hello");
                  socket.close();
                }
              });
              socket.on("close", () => resolve("closed"));
            }),
        ),
      );
      expect(outcomes).toEqual(["closed", "hello", "hello", "hello", "hello", "hello"]);
    } finally {
      await database.db.$executeRawUnsafe(`DROP TRIGGER refuse_lease ON "Device"`);
      await database.db.$executeRawUnsafe("DROP FUNCTION refuse_lease()");
    }
  });
});
