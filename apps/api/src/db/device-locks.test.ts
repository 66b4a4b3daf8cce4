import { HeartbeatRequest } from "@mdm/contracts";
import { Client } from "pg";
import { recordHeartbeat } from "../modules/devices/devices.service";
import { renewSocketLeases, takeSocketLeases } from "../realtime/presence";
import { type TestApp, type TestDatabase, createTestApp, createTestDatabase, describeWithPostgres, enrollDevice, heartbeatBody, resetTables } from "../test";

// Statements updating several Device rows lock them in id order (db/device-locks.ts): the
// device with the higher id is held by another transaction, each statement is handed the
// devices higher id first, and while it waits for that one it already holds the lower.

let database: TestDatabase;
let t: TestApp;

beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(() => database.close());
beforeEach(() => resetTables(database.db));

/**
 * Two enrolled devices, the lower id first. The lower one's row is rewritten, so it lies after
 * the higher one in the table: a statement reading the table in its order meets the higher first.
 */
async function twoDevices(): Promise<[string, string]> {
  const [lower, higher] = [(await enrollDevice(t.app)).deviceId, (await enrollDevice(t.app)).deviceId].sort() as [string, string];
  await database.db.$executeRaw`UPDATE "Device" SET notes = 'moved' WHERE id = ${lower}::uuid`;
  const [order] = await database.db.$queryRaw<[{ lowerAfter: boolean }]>`
    SELECT (SELECT ctid FROM "Device" WHERE id = ${lower}::uuid) > (SELECT ctid FROM "Device" WHERE id = ${higher}::uuid) AS "lowerAfter"`;
  expect(order.lowerAfter).toBe(true);
  return [lower, higher];
}

/**
 * Runs `statement` while another transaction holds the `held` device's row, and returns
 * whether, once the statement waits for that row, the `lower` device's row is locked too.
 */
async function holdsLowerWhileWaiting(held: string, lower: string, statement: () => Promise<unknown>): Promise<boolean> {
  const holder = new Client({ connectionString: database.url });
  const prober = new Client({ connectionString: database.url });
  await Promise.all([holder.connect(), prober.connect()]);
  try {
    await holder.query("BEGIN");
    await holder.query(`SELECT id FROM "Device" WHERE id = $1 FOR NO KEY UPDATE`, [held]);
    const done = statement();
    let waiting = false;
    for (let i = 0; i < 200 && !waiting; i++) {
      const { rows } = await prober.query<{ waiting: number }>(
        `SELECT count(*)::int AS waiting FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND pid <> $1`,
        [(await holder.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")).rows[0]!.pid],
      );
      waiting = rows[0]!.waiting > 0;
      if (!waiting) await new Promise((resolve) => setTimeout(resolve, 10));
    }
    expect(waiting).toBe(true);
    const lowerLocked = await prober.query(`SELECT id FROM "Device" WHERE id = $1 FOR NO KEY UPDATE NOWAIT`, [lower]).then(
      () => false,
      (error: { code?: string }) => error.code === "55P03",
    );
    await holder.query("COMMIT");
    await done;
    return lowerLocked;
  } finally {
    await Promise.all([holder.end(), prober.end()]);
  }
}

describeWithPostgres("statements updating several devices lock them in id order", () => {
  it("a heartbeat batch, whatever order its heartbeats arrived in", async () => {
    t = createTestApp(database.db, { env: { HEARTBEAT_BATCH_MAX: "2", HEARTBEAT_BATCH_WAIT_MS: "1000" } });
    const [lower, higher] = await twoDevices();
    const heartbeat = HeartbeatRequest.parse(heartbeatBody());
    const lowerLocked = await holdsLowerWhileWaiting(higher, lower, () =>
      Promise.all([recordHeartbeat(t.deps, higher, heartbeat), recordHeartbeat(t.deps, lower, heartbeat)]),
    );
    expect(lowerLocked).toBe(true);
    expect(await database.db.telemetryEvent.count()).toBe(2);
  });

  it("the socket leases' take and renewal", async () => {
    t = createTestApp(database.db);
    const [lower, higher] = await twoDevices();
    expect(await holdsLowerWhileWaiting(higher, lower, () => takeSocketLeases(t.deps, [higher, lower]))).toBe(true);
    expect(await holdsLowerWhileWaiting(higher, lower, () => renewSocketLeases(t.deps, [higher, lower]))).toBe(true);
    const leased = await database.db.device.findMany({ where: { socketInstanceId: t.deps.instanceId } });
    expect(leased).toHaveLength(2);
  });
});
