import http from "node:http";
import type { AddressInfo } from "node:net";
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
  resetTables,
} from "../../test";
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
