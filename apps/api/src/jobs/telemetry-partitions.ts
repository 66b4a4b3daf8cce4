import type { Db } from "../db/client";
import type { AppDeps } from "../deps";

// TelemetryEvent is range-partitioned by receivedAt, one partition per UTC day, plus a
// DEFAULT partition for rows no day partition takes (see migration
// 20261130130000_data_at_scale). This job creates the days ahead, drops the days past
// retention whole (no row-by-row DELETE), and keeps the DEFAULT partition empty.

const DAY_MS = 86_400_000;
const PARENT = "TelemetryEvent";
const DEFAULT_PARTITION = "TelemetryEvent_default";

/** Days after today that always have their partition, so a late job run loses nothing. */
export const PARTITION_DAYS_AHEAD = 2;

// Creating, attaching and dropping a partition lock the parent table: wait at most this
// long behind heartbeats' inserts (and keep new ones queued behind us at most this long),
// then give up until the next run.
const LOCK_TIMEOUT = "2s";

export type TelemetryPartition = { name: string; from: Date | null; to: Date | null; isDefault: boolean };

export type PartitionReport = {
  created: string[];
  dropped: string[];
  /** Rows found in the DEFAULT partition and moved into the partition of their day. */
  movedFromDefault: number;
  /** Rows found in the DEFAULT partition already past retention, deleted. */
  deletedFromDefault: number;
};

export function dayStart(at: Date): Date {
  return new Date(Math.floor(at.getTime() / DAY_MS) * DAY_MS);
}

export function partitionName(day: Date): string {
  return `${PARENT}_p${day.toISOString().slice(0, 10).replaceAll("-", "")}`;
}

/** The partitions of TelemetryEvent with their bounds (null: MINVALUE / MAXVALUE / DEFAULT). */
export async function listTelemetryPartitions(db: Db): Promise<TelemetryPartition[]> {
  // Bounds print as timestamptz literals in this session's time zone, so casting them back
  // in the same statement is exact.
  const rows = await db.$queryRaw<Array<{ name: string; bound: string; from: Date | null; to: Date | null }>>`
    SELECT c.relname AS name, b.bound,
      (regexp_match(b.bound, 'FROM \\(''([^'']+)''\\)'))[1]::timestamptz AS "from",
      (regexp_match(b.bound, 'TO \\(''([^'']+)''\\)'))[1]::timestamptz AS "to"
    FROM pg_inherits i
    JOIN pg_class c ON c.oid = i.inhrelid
    CROSS JOIN LATERAL (SELECT pg_get_expr(c.relpartbound, c.oid) AS bound) b
    WHERE i.inhparent = '"TelemetryEvent"'::regclass
    ORDER BY 4 NULLS LAST, 1`;
  return rows.map((row) => ({ name: row.name, from: row.from, to: row.to, isDefault: row.bound === "DEFAULT" }));
}

const covers = (partition: TelemetryPartition, day: Date) =>
  !partition.isDefault &&
  (partition.from === null || partition.from.getTime() < day.getTime() + DAY_MS) &&
  (partition.to === null || partition.to.getTime() > day.getTime());

/**
 * Creates the partition of one UTC day. Rows of that day waiting in the DEFAULT partition
 * would make `CREATE TABLE ... PARTITION OF` fail, so then they move into a new table
 * first, which is attached after: one transaction either way. Returns the rows moved.
 *
 * A partition made or attached takes the foreign key to Device with it, which locks Device
 * (SHARE ROW EXCLUSIVE, against concurrent deletes) after TelemetryEvent. A heartbeat's
 * statement locks Device, then TelemetryEvent: the other order deadlocked with heartbeats in
 * the benchmark. So Device is locked first, as late as it can be: Device's writes, the
 * heartbeats among them, wait from there to the commit.
 */
async function createDayPartition(db: Db, day: Date): Promise<number> {
  const name = partitionName(day);
  const from = day.toISOString();
  const to = new Date(day.getTime() + DAY_MS).toISOString();
  const lockDevice = `LOCK TABLE "Device" IN SHARE ROW EXCLUSIVE MODE`;
  const moveRows = `WITH moved AS (DELETE FROM "${DEFAULT_PARTITION}" WHERE "receivedAt" >= '${from}' AND "receivedAt" < '${to}' RETURNING *)
    INSERT INTO "${name}" SELECT * FROM moved`;
  return db.$transaction(async (tx) => {
    await tx.$executeRawUnsafe(`SET LOCAL lock_timeout = '${LOCK_TIMEOUT}'`);
    const [{ waiting }] = await tx.$queryRawUnsafe<[{ waiting: number }]>(
      `SELECT count(*)::int AS waiting FROM "${DEFAULT_PARTITION}" WHERE "receivedAt" >= $1::timestamptz AND "receivedAt" < $2::timestamptz`,
      from,
      to,
    );
    if (waiting === 0) {
      await tx.$executeRawUnsafe(lockDevice);
      await tx.$executeRawUnsafe(`CREATE TABLE "${name}" PARTITION OF "${PARENT}" FOR VALUES FROM ('${from}') TO ('${to}')`);
      return 0;
    }
    await tx.$executeRawUnsafe(`CREATE TABLE "${name}" (LIKE "${PARENT}" INCLUDING DEFAULTS)`);
    // The rows are moved while heartbeats go on, then those that arrived meanwhile once the
    // heartbeats wait (one left in DEFAULT would fail the ATTACH).
    let moved = await tx.$executeRawUnsafe(moveRows);
    await tx.$executeRawUnsafe(lockDevice);
    moved += await tx.$executeRawUnsafe(moveRows);
    await tx.$executeRawUnsafe(`ALTER TABLE "${PARENT}" ATTACH PARTITION "${name}" FOR VALUES FROM ('${from}') TO ('${to}')`);
    return moved;
  });
}

async function dropPartition(db: Db, name: string): Promise<void> {
  await db.$transaction(async (tx) => {
    await tx.$executeRawUnsafe(`SET LOCAL lock_timeout = '${LOCK_TIMEOUT}'`);
    await tx.$executeRawUnsafe(`DROP TABLE "${name}"`);
  });
}

/**
 * One run of telemetry housekeeping: partitions for today and PARTITION_DAYS_AHEAD days,
 * the DEFAULT partition emptied (rows moved to their day, or deleted when already past
 * retention), and every partition whose rows are all older than `retentionHours`
 * dropped. A day is dropped whole once its end is past the cutoff, so up to a day more
 * than the window is kept; nothing is deleted row by row outside the DEFAULT partition.
 */
export async function maintainTelemetryPartitions({ db, clock }: Pick<AppDeps, "db" | "clock">, retentionHours: number): Promise<PartitionReport> {
  const now = clock.now();
  const cutoff = new Date(now.getTime() - retentionHours * 3600_000);
  const report: PartitionReport = { created: [], dropped: [], movedFromDefault: 0, deletedFromDefault: 0 };

  report.deletedFromDefault = await db.$executeRawUnsafe(`DELETE FROM "${DEFAULT_PARTITION}" WHERE "receivedAt" < $1::timestamptz`, cutoff.toISOString());
  const stray = await db.$queryRawUnsafe<Array<{ day: Date }>>(
    `SELECT DISTINCT date_trunc('day', "receivedAt" AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS day FROM "${DEFAULT_PARTITION}"`,
  );
  const today = dayStart(now);
  const days = new Map<number, Date>();
  for (let ahead = 0; ahead <= PARTITION_DAYS_AHEAD; ahead++) days.set(today.getTime() + ahead * DAY_MS, new Date(today.getTime() + ahead * DAY_MS));
  for (const { day } of stray) days.set(day.getTime(), day);

  let partitions = await listTelemetryPartitions(db);
  for (const day of [...days.values()].sort((a, b) => a.getTime() - b.getTime())) {
    if (partitions.some((partition) => covers(partition, day))) continue;
    report.movedFromDefault += await createDayPartition(db, day);
    report.created.push(partitionName(day));
  }
  if (report.created.length > 0) partitions = await listTelemetryPartitions(db);

  for (const partition of partitions) {
    if (partition.isDefault || partition.to === null || partition.to.getTime() > cutoff.getTime()) continue;
    await dropPartition(db, partition.name);
    report.dropped.push(partition.name);
  }
  return report;
}
