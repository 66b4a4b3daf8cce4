import http from "node:http";
import net, { type AddressInfo } from "node:net";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { signAdminRequest } from "@mdm/contracts";
import {
  TEST_ADMIN_KEY,
  TEST_HMAC_SECRET,
  type TestApp,
  type TestDatabase,
  adminRequest,
  createTestApp,
  createTestDatabase,
  enrollDevice,
  heartbeatBody,
  resetTables,
} from "../../test";
import request from "supertest";
import { csvCell, csvLine } from "./csv";

// A collection on demand, so the memory bound is measured on what is retained, not on garbage.
setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

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

describe("CSV cells", () => {
  it("quotes separators, quotes and line breaks, and defuses formulas", () => {
    expect(csvCell('say "hi", then\nleave')).toBe('"say ""hi"", then\nleave"');
    expect(csvCell('=HYPERLINK("http://x")')).toBe('"\'=HYPERLINK(""http://x"")"');
    expect(csvCell("+1")).toBe("'+1");
    expect(csvCell("-cmd")).toBe("'-cmd");
    expect(csvCell("@SUM(A1)")).toBe("'@SUM(A1)");
    expect(csvCell(-55)).toBe("-55");
    expect(csvCell(null)).toBe("");
    expect(csvCell(true)).toBe("true");
    expect(csvLine(["a", 1, null])).toBe("a,1,\r\n");
  });
});

describe("exports", () => {
  it("exports the device list with the list's filters, as CSV and JSON lines", async () => {
    const kiosk = await enrollDevice(t.app, { model: "=cmd|' /C calc'!A0" });
    await enrollDevice(t.app, { model: "Pixel 8" });
    await adminRequest(t.app, "PATCH", `/admin/devices/${kiosk.deviceId}`, { groups: ["store-1"], alias: 'Till "A", front' });

    const csv = await adminRequest(t.app, "GET", "/admin/devices/export?format=csv&group=store-1");
    expect(csv.status).toBe(200);
    expect(csv.headers["content-type"]).toMatch(/^text\/csv/);
    expect(csv.headers["content-disposition"]).toMatch(/^attachment; filename="devices-.*\.csv"$/);
    const lines = csv.text.trimEnd().split("\r\n");
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^id,alias,model,/);
    expect(lines[1]).toContain(`${kiosk.deviceId},"Till ""A"", front",'=cmd|' /C calc'!A0,`);

    const jsonl = await adminRequest(t.app, "GET", "/admin/devices/export?format=jsonl&sort=model&order=asc");
    expect(jsonl.headers["content-type"]).toMatch(/^application\/x-ndjson/);
    const rows = jsonl.text
      .trimEnd()
      .split("\n")
      .map((line) => JSON.parse(line));
    expect(rows.map((row) => row.model)).toEqual(["=cmd|' /C calc'!A0", "Pixel 8"]);
    expect((await adminRequest(t.app, "GET", "/admin/devices/export?format=xml")).status).toBe(400);
  });

  it("exports the command history and the audit log", async () => {
    const device = await enrollDevice(t.app);
    await adminRequest(t.app, "POST", "/admin/command", { deviceId: device.deviceId, type: "ping" });
    const commands = await adminRequest(t.app, "GET", `/admin/commands/export?format=jsonl&deviceId=${device.deviceId}`);
    expect(commands.status).toBe(200);
    const [command] = commands.text
      .trimEnd()
      .split("\n")
      .map((line) => JSON.parse(line));
    expect(command).toMatchObject({ deviceId: device.deviceId, type: "ping", status: "queued" });

    const audit = await adminRequest(t.app, "GET", "/admin/audit-log/export?format=csv&action=command.create");
    expect(audit.status).toBe(200);
    const lines = audit.text.trimEnd().split("\r\n");
    expect(lines[0]).toBe("id,at,actor,action,targetType,targetId,ip,details");
    expect(lines).toHaveLength(2);
    expect(lines[1]).toContain(",command.create,device,");
  });

  it("streams a CSV of 100,000 devices with flat memory: every device once", async () => {
    const total = 100_000;
    await database.db.$executeRaw`
      INSERT INTO "Device" (id, "tokenHash", model, alias, "serialNumber", groups, "batteryLevel", "enrolledAt", "updatedAt")
      SELECT gen_random_uuid(), repeat('0', 64), 'Model ' || (i % 17), 'Device number ' || i || ', "bulk"', 'SN' || lpad(i::text, 10, '0'),
        ARRAY['bulk', 'shard-' || (i % 10)], i % 100, now() - make_interval(secs => i), now()
      FROM generate_series(1, ${total}) AS i`;

    const server = http.createServer(t.app);
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    try {
      const port = (server.address() as AddressInfo).port;
      const path = "/admin/devices/export?format=csv";
      const headers = await signAdminRequest({
        adminKey: TEST_ADMIN_KEY,
        hmacSecret: TEST_HMAC_SECRET,
        method: "GET",
        host: `127.0.0.1:${port}`,
        pathWithQuery: path,
      });
      gc();
      const baseline = process.memoryUsage().heapUsed;
      let peakGrowth = 0;
      let bytes = 0;
      let newlines = 0;
      let chunks = 0;
      await new Promise<void>((resolve, reject) => {
        http
          .get({ host: "127.0.0.1", port, path, headers }, (res) => {
            if (res.statusCode !== 200) reject(new Error(`status ${res.statusCode}`));
            res.on("data", (chunk: Buffer) => {
              bytes += chunk.length;
              for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) newlines++;
              // Sample what stays allocated every so often while the export runs.
              if (++chunks % 200 === 0) {
                gc();
                peakGrowth = Math.max(peakGrowth, process.memoryUsage().heapUsed - baseline);
              }
            });
            res.on("end", resolve);
            res.on("error", reject);
          })
          .on("error", reject);
      });
      // Header plus one line per device (no cell holds a line break here).
      expect(newlines).toBe(total + 1);
      expect(bytes).toBeGreaterThan(total * 80);
      // The whole export is over 10 MB of text and, as objects, several times that: what
      // the server holds at any time must stay far below it.
      expect(chunks).toBeGreaterThan(200);
      expect(peakGrowth).toBeLessThan(24 * 1024 * 1024);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  }, 240_000);
});

type OpenedExport = { socket: net.Socket; status: number; head: string; body: string; received: () => number };

/**
 * Sends a signed export request on a raw socket. A 200 is paused as soon as its first bytes
 * arrive: the client stops reading, as a stalled download does. Other answers are read whole.
 */
async function openPausedExport(port: number, path: string): Promise<OpenedExport> {
  const headers = await signAdminRequest({
    adminKey: TEST_ADMIN_KEY,
    hmacSecret: TEST_HMAC_SECRET,
    method: "GET",
    host: `127.0.0.1:${port}`,
    pathWithQuery: path,
  });
  const socket = net.connect(port, "127.0.0.1");
  let received = 0;
  let text = "";
  let settled = false;
  return new Promise<OpenedExport>((resolve, reject) => {
    socket.on("error", reject);
    socket.on("data", (chunk: Buffer) => {
      received += chunk.length;
      if (settled) return;
      text += chunk.toString("latin1");
      const end = text.indexOf("\r\n\r\n");
      if (end === -1) return;
      const head = text.slice(0, end);
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1]);
      const body = text.slice(end + 4);
      const opened = { socket, status, head, body, received: () => received };
      if (status === 200) socket.pause();
      else if (Buffer.byteLength(body, "latin1") < Number(/content-length: (\d+)/i.exec(head)?.[1] ?? 0)) return;
      settled = true;
      resolve(opened);
    });
    socket.write(
      `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n${Object.entries(headers)
        .map(([name, value]) => `${name}: ${value}\r\n`)
        .join("")}\r\n`,
    );
  });
}

/**
 * Connections inside an export's transaction: fetching from its cursor, or idle in it while the
 * export waits for the client to read.
 */
const exportTransactions = async (db: TestDatabase["db"]) =>
  (
    await db.$queryRaw<Array<{ count: number }>>`
      SELECT count(*)::int AS count FROM pg_stat_activity
      WHERE datname = current_database() AND pid <> pg_backend_pid() AND xact_start IS NOT NULL AND query LIKE '%export_rows%'`
  )[0]!.count;

describe("exports and the database pool", () => {
  it("runs at most EXPORT_MAX_CONCURRENT at once, cuts a stalled download and frees its connection, and device traffic keeps answering", async () => {
    // Long enough that a loaded CI machine serves the traffic below well before the cut.
    const stallSeconds = 20;
    const app = createTestApp(database.db, { env: { EXPORT_MAX_CONCURRENT: "2", EXPORT_STALL_TIMEOUT_SECONDS: String(stallSeconds) } });
    const device = await enrollDevice(app.app);
    // 20,000 devices of over 2 KB each: 40 MB of CSV, far more than socket buffers hold, so a
    // client that stops reading stalls its export.
    await database.db.$executeRaw`
      INSERT INTO "Device" (id, "tokenHash", model, alias, groups, "enrolledAt", "updatedAt")
      SELECT gen_random_uuid(), repeat('0', 64), 'Bulk', repeat('x', 2000) || i, ARRAY['bulk'], now(), now()
      FROM generate_series(1, 20000) AS i`;

    const server = http.createServer(app.app);
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const opened: OpenedExport[] = [];
    try {
      const port = (server.address() as AddressInfo).port;
      // As many stalled downloads as the test database's pool has connections (5).
      const started = Date.now();
      opened.push(...(await Promise.all(Array.from({ length: 5 }, () => openPausedExport(port, "/admin/devices/export?format=csv")))));
      const running = opened.filter((entry) => entry.status === 200);
      const refused = opened.filter((entry) => entry.status !== 200);
      expect(running).toHaveLength(2);
      expect(refused).toHaveLength(3);
      for (const entry of refused) {
        expect(entry.status).toBe(503);
        expect(entry.head).toMatch(/\r\nretry-after: 10\r\n/i);
        expect(JSON.parse(entry.body).error).toMatchObject({ code: "service_unavailable", message: expect.stringMatching(/exports are already running/) });
        entry.socket.destroy();
      }

      // While both downloads hold their connections (streaming until the socket buffers are full,
      // then waiting for them to drain), the rest of the pool serves heartbeats and admin reads.
      expect(await exportTransactions(database.db)).toBe(2);
      for (let round = 0; round < 5; round++) {
        const heartbeat = await request(app.app).post("/v1/heartbeat").auth(device.deviceToken, { type: "bearer" }).send(heartbeatBody());
        expect(heartbeat.status).toBe(200);
        const list = await adminRequest(app.app, "GET", "/admin/devices?limit=5");
        expect(list.status).toBe(200);
        expect(list.body.total).toBe(20_001);
      }
      // Both downloads still held their connections while that traffic was served beside them.
      expect(await exportTransactions(database.db)).toBe(2);

      // Past the stall bound both downloads are cut: their transactions end and the connections go back.
      while ((await exportTransactions(database.db)) > 0 && Date.now() - started < (stallSeconds + 30) * 1000)
        await new Promise((resolve) => setTimeout(resolve, 250));
      expect(await exportTransactions(database.db)).toBe(0);
      expect(Date.now() - started).toBeGreaterThanOrEqual(stallSeconds * 1000 - 500);
      // What the clients get when they read again is the start of the file, then the end of the connection.
      for (const entry of running) {
        entry.socket.resume();
        await new Promise((resolve) => entry.socket.once("close", resolve));
        expect(entry.received()).toBeGreaterThan(65_536);
        expect(entry.received()).toBeLessThan(20_000 * 2000);
      }
      // The slots are free again: a new export runs whole.
      const again = await adminRequest(app.app, "GET", `/admin/devices/export?format=csv&search=${device.deviceId}`);
      expect(again.status).toBe(200);
      expect(again.text.trimEnd().split("\r\n")).toHaveLength(2);
    } finally {
      for (const entry of opened) entry.socket.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  }, 120_000);
});
