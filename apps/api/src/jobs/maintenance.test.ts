import { Client } from "pg";
import { type TestApp, type TestDatabase, adminRequest, createTestApp, createTestDatabase, describeWithPostgres, enrollDevice, resetTables } from "../test";
import { expireCommands, pruneAccounts, pruneNonces } from "./maintenance";
import { PARTITION_DAYS_AHEAD, dayStart, listTelemetryPartitions, maintainTelemetryPartitions, partitionName } from "./telemetry-partitions";

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

describe("telemetry partitions", () => {
  const DAY = 86_400_000;
  const names = async () => (await listTelemetryPartitions(database.db)).map((partition) => partition.name);
  const tableExists = async (name: string) =>
    (await database.db.$queryRaw<Array<{ n: number }>>`SELECT count(*)::int AS n FROM pg_class WHERE relname = ${name}`)[0]!.n === 1;

  it("creates the days ahead, and drops a day past retention whole while the current one stays", async () => {
    const device = await enrollDevice(t.app);
    await maintainTelemetryPartitions(t.deps, 48);
    const today = dayStart(t.clock.now());
    for (let ahead = 0; ahead <= PARTITION_DAYS_AHEAD; ahead++) expect(await names()).toContain(partitionName(new Date(today.getTime() + ahead * DAY)));

    const row = (at: Date) => ({ deviceId: device.deviceId, receivedAt: at, batteryLevel: 50 });
    await database.db.telemetryEvent.createMany({ data: [row(t.clock.now()), row(new Date(today.getTime() + 1))] });
    const oldDay = partitionName(today);
    // Three days on, today's partition holds only rows older than 48 hours.
    t.clock.advance(3 * 86_400);
    const later = dayStart(t.clock.now());
    await database.db.telemetryEvent.create({ data: row(t.clock.now()) });
    const report = await maintainTelemetryPartitions(t.deps, 48);

    expect(report.dropped).toContain(oldDay);
    expect(await tableExists(oldDay)).toBe(false);
    // Its rows went with it; nothing was deleted row by row, so the newer row stays.
    expect(await database.db.telemetryEvent.count()).toBe(1);
    expect(report.deletedFromDefault).toBe(0);
    expect(await names()).toEqual(expect.arrayContaining([partitionName(later), partitionName(new Date(later.getTime() + PARTITION_DAYS_AHEAD * DAY))]));
    expect(await maintainTelemetryPartitions(t.deps, 48)).toEqual({ created: [], dropped: [], movedFromDefault: 0, deletedFromDefault: 0 });
  });

  it("moves rows the DEFAULT partition caught into their day's partition, and reports them", async () => {
    const device = await enrollDevice(t.app);
    await maintainTelemetryPartitions(t.deps, 48);
    const farDay = new Date(dayStart(t.clock.now()).getTime() + 10 * DAY);
    await database.db.telemetryEvent.createMany({
      data: [1, 2, 3].map((i) => ({ deviceId: device.deviceId, receivedAt: new Date(farDay.getTime() + i * 1000), batteryLevel: i })),
    });
    const caught = await database.db.$queryRaw<Array<{ n: number }>>`SELECT count(*)::int AS n FROM "TelemetryEvent_default"`;
    expect(caught[0]!.n).toBe(3);

    const report = await maintainTelemetryPartitions(t.deps, 48);
    expect(report).toMatchObject({ created: [partitionName(farDay)], movedFromDefault: 3 });
    const left = await database.db.$queryRaw<Array<{ n: number }>>`SELECT count(*)::int AS n FROM "TelemetryEvent_default"`;
    expect(left[0]!.n).toBe(0);
    const moved = await database.db.$queryRawUnsafe<Array<{ n: number }>>(`SELECT count(*)::int AS n FROM "${partitionName(farDay)}"`);
    expect(moved[0]!.n).toBe(3);
    expect(await database.db.telemetryEvent.count()).toBe(3);
  });
});

describeWithPostgres("telemetry partitions beside live heartbeats", () => {
  it("creates a day's partition while a heartbeat holds its device row and then writes its telemetry, without a deadlock", async () => {
    const device = await enrollDevice(t.app);
    await maintainTelemetryPartitions(t.deps, 48);
    const dayAhead = partitionName(new Date(dayStart(t.clock.now()).getTime() + PARTITION_DAYS_AHEAD * 86_400_000));
    await database.db.$executeRawUnsafe(`DROP TABLE "${dayAhead}"`);
    // A heartbeat's statement updates Device, then inserts into TelemetryEvent. Creating a
    // partition locked TelemetryEvent, then Device (cloning the foreign key to it).
    const heartbeat = new Client({ connectionString: database.url });
    await heartbeat.connect();
    try {
      await heartbeat.query("BEGIN");
      await heartbeat.query(`UPDATE "Device" SET "lastSeenAt" = now() WHERE id = $1`, [device.deviceId]);
      const created = maintainTelemetryPartitions(t.deps, 48).then(
        (report) => report.created,
        (error: unknown) => error,
      );
      // Until the housekeeping waits for a lock the heartbeat holds (lock_timeout: 2 s).
      let waited = false;
      for (let i = 0; i < 100 && !waited; i++) {
        const [{ waiting }] = await database.db.$queryRaw<[{ waiting: number }]>`
          SELECT count(*)::int AS waiting FROM pg_locks
          WHERE NOT granted AND locktype = 'relation' AND relation IN ('"Device"'::regclass, '"TelemetryEvent"'::regclass)
            AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`;
        waited = waiting > 0;
        if (!waited) await new Promise((resolve) => setTimeout(resolve, 10));
      }
      expect(waited).toBe(true);
      await heartbeat.query(`INSERT INTO "TelemetryEvent" ("deviceId", "receivedAt", "batteryLevel") VALUES ($1, now(), 50)`, [device.deviceId]);
      await heartbeat.query("COMMIT");
      expect(await created).toEqual([dayAhead]);
    } finally {
      await heartbeat.end();
    }
    expect(await database.db.telemetryEvent.count()).toBe(1);
  });
});

it("expires commands whose TTL elapsed before delivery, with an event, and leaves the others", async () => {
  const device = await enrollDevice(t.app);
  const short = await adminRequest(t.app, "POST", "/admin/command", { deviceId: device.deviceId, type: "ping", ttlSeconds: 10 });
  const long = await adminRequest(t.app, "POST", "/admin/command", { deviceId: device.deviceId, type: "ping", ttlSeconds: 3600 });
  t.clock.advance(11);
  expect(await expireCommands(t.deps)).toBe(1);
  const expired = await adminRequest(t.app, "GET", `/admin/commands/${short.body.requestId}`);
  expect(expired.body.status).toBe("expired");
  expect(expired.body.events.map((event: { status: string }) => event.status)).toEqual(["queued", "expired"]);
  expect((await adminRequest(t.app, "GET", `/admin/commands/${long.body.requestId}`)).body.status).toBe("queued");
});

it("forgets admin nonces once they can no longer be replayed", async () => {
  await adminRequest(t.app, "GET", "/admin/devices");
  expect(await database.db.usedNonce.count()).toBe(1);
  expect(await pruneNonces(t.deps)).toBe(0);
  t.clock.advance(601);
  expect(await pruneNonces(t.deps)).toBe(1);
});

it("forgets long-ended sessions and expired password tokens, and keeps live ones", async () => {
  const { randomUUID } = await import("node:crypto");
  const user = await database.db.user.create({ data: { id: randomUUID(), email: "a@example.com", passwordHash: "x" } });
  const now = Date.now();
  const session = (expiresInDays: number, revokedDaysAgo?: number) => ({
    id: randomUUID(),
    userId: user.id,
    refreshHash: "a".repeat(64),
    expiresAt: new Date(now + expiresInDays * 86_400_000),
    revokedAt: revokedDaysAgo === undefined ? null : new Date(now - revokedDaysAgo * 86_400_000),
  });
  const live = session(7);
  await database.db.session.createMany({ data: [live, session(-31), session(7, 31), session(7, 1)] });
  const token = (expiresInMinutes: number) => ({
    id: randomUUID(),
    userId: user.id,
    tokenHash: "b".repeat(64),
    expiresAt: new Date(now + expiresInMinutes * 60_000),
  });
  const valid = token(30);
  await database.db.passwordResetToken.createMany({ data: [valid, token(-1)] });

  expect(await pruneAccounts(t.deps)).toEqual({ sessions: 2, passwordTokens: 1 });
  expect((await database.db.session.findMany()).map((row) => row.id)).toContain(live.id);
  expect(await database.db.session.count()).toBe(2);
  expect((await database.db.passwordResetToken.findMany()).map((row) => row.id)).toEqual([valid.id]);
});
