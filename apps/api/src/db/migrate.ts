import { createHash, randomUUID } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { Client } from "pg";

// Applies prisma/migrations the way `prisma migrate deploy` does and records them in the
// same `_prisma_migrations` table, so either tool can take over from the other. Ours
// needs no native engine, which is what lets the API migrate itself at start offline.

export const DEFAULT_MIGRATIONS_DIR = path.resolve(__dirname, "../../../../prisma/migrations");

const CREATE_MIGRATIONS_TABLE = `
CREATE TABLE IF NOT EXISTS "_prisma_migrations" (
    "id"                    VARCHAR(36) PRIMARY KEY NOT NULL,
    "checksum"              VARCHAR(64) NOT NULL,
    "finished_at"           TIMESTAMPTZ,
    "migration_name"        VARCHAR(255) NOT NULL,
    "logs"                  TEXT,
    "rolled_back_at"        TIMESTAMPTZ,
    "started_at"            TIMESTAMPTZ NOT NULL DEFAULT now(),
    "applied_steps_count"   INTEGER NOT NULL DEFAULT 0
)`;

// Any constant: concurrent API instances starting together take turns.
const MIGRATION_LOCK_ID = 72_707_369;

// A migration waits at most this long for a lock held by live traffic, then fails instead
// of queueing every request behind its ALTER TABLE.
const LOCK_TIMEOUT_MS = 10_000;

/**
 * A migration whose first line is this marker runs outside a transaction, one statement at
 * a time and without lock_timeout (what `CREATE INDEX CONCURRENTLY` needs). Its statements
 * end with `;` at the end of a line and contain no function bodies.
 */
export const NON_TRANSACTIONAL_MARKER = "-- mdm:non-transactional";

export type Migration = { name: string; sql: string; checksum: string; transactional: boolean };

export function readMigrations(dir: string): Migration[] {
  return fs
    .readdirSync(dir, { withFileTypes: true })
    .filter((entry) => entry.isDirectory() && fs.existsSync(path.join(dir, entry.name, "migration.sql")))
    .map((entry) => entry.name)
    .sort()
    .map((name) => {
      const sql = fs.readFileSync(path.join(dir, name, "migration.sql"), "utf8");
      return {
        name,
        sql,
        checksum: createHash("sha256").update(sql).digest("hex"),
        transactional: !sql.trimStart().startsWith(NON_TRANSACTIONAL_MARKER),
      };
    });
}

export type MigrationReport = { applied: string[]; alreadyApplied: string[] };

type MigrationRow = { migration_name: string; checksum: string; finished_at: Date | null; rolled_back_at: Date | null; logs: string | null };

export async function migrate(databaseUrl: string, dir = DEFAULT_MIGRATIONS_DIR, lockTimeoutMs = LOCK_TIMEOUT_MS): Promise<MigrationReport> {
  const migrations = readMigrations(dir);
  const client = new Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    await takeMigrationLock(client);
    await client.query(CREATE_MIGRATIONS_TABLE);
    await client.query(`SET lock_timeout = ${Number(lockTimeoutMs)}`);
    const { rows } = await client.query<MigrationRow>(`SELECT migration_name, checksum, finished_at, rolled_back_at, logs FROM "_prisma_migrations"`);
    // Prisma's failed state: started, neither finished nor rolled back. A person decides.
    const failed = rows.find((row) => !row.finished_at && !row.rolled_back_at);
    if (failed) {
      throw new Error(
        `Migration ${failed.migration_name} failed earlier (${failed.logs ?? "no log"}). Fix the cause, then run ` +
          `\`prisma migrate resolve --rolled-back ${failed.migration_name}\` (or set rolled_back_at on its row in _prisma_migrations) and start again.`,
      );
    }
    const done = new Map(rows.filter((row) => row.finished_at).map((row) => [row.migration_name, row.checksum]));
    const report: MigrationReport = { applied: [], alreadyApplied: [] };
    for (const migration of migrations) {
      const recordedChecksum = done.get(migration.name);
      if (recordedChecksum !== undefined) {
        if (recordedChecksum !== migration.checksum) {
          throw new Error(`Migration ${migration.name} was changed after it was applied (checksum mismatch).`);
        }
        report.alreadyApplied.push(migration.name);
        continue;
      }
      await (migration.transactional ? applyInTransaction(client, migration) : applyStatementByStatement(client, migration, lockTimeoutMs));
      report.applied.push(migration.name);
    }
    return report;
  } finally {
    await client.query("SELECT pg_advisory_unlock($1)", [MIGRATION_LOCK_ID]).catch(() => undefined);
    await client.end();
  }
}

const LOCK_POLL_MS = 100;

/**
 * Waits for the migration lock by polling, not in `pg_advisory_lock`: a statement waiting
 * for a lock holds a snapshot, and `CREATE INDEX CONCURRENTLY` waits for every older
 * snapshot to end, so the instances queued behind a non-transactional migration would
 * deadlock with it (PostgreSQL cancels one side: instances failed to start). Between polls
 * a waiting session holds nothing.
 */
async function takeMigrationLock(client: Client): Promise<void> {
  for (;;) {
    const { rows } = await client.query<{ locked: boolean }>("SELECT pg_try_advisory_lock($1) AS locked", [MIGRATION_LOCK_ID]);
    if (rows[0]?.locked) return;
    await new Promise((resolve) => setTimeout(resolve, LOCK_POLL_MS));
  }
}

const RECORD_FINISHED = `INSERT INTO "_prisma_migrations" (id, checksum, migration_name, started_at, finished_at, applied_steps_count)
  VALUES ($1, $2, $3, now(), now(), 1)`;

/**
 * The SQL and its record commit together: a crash anywhere leaves either both or neither,
 * so a half-applied migration can never be taken for a finished one.
 */
async function applyInTransaction(client: Client, migration: Migration): Promise<void> {
  try {
    await client.query("BEGIN");
    await client.query(migration.sql);
    await client.query(RECORD_FINISHED, [randomUUID(), migration.checksum, migration.name]);
    await client.query("COMMIT");
  } catch (error) {
    await client.query("ROLLBACK").catch(() => undefined);
    throw await recordFailure(client, migration, error);
  }
}

/**
 * For statements PostgreSQL refuses to run in a transaction; each one commits by itself.
 * Without lock_timeout: a concurrent index build waits, through lock waits, for every
 * transaction older than it to end (blocking no traffic meanwhile), so a transaction open
 * longer than the timeout would fail the migration.
 */
async function applyStatementByStatement(client: Client, migration: Migration, lockTimeoutMs: number): Promise<void> {
  const id = randomUUID();
  await client.query(`INSERT INTO "_prisma_migrations" (id, checksum, migration_name) VALUES ($1, $2, $3)`, [id, migration.checksum, migration.name]);
  await client.query("SET lock_timeout = 0");
  try {
    for (const statement of splitStatements(migration.sql)) await client.query(statement);
  } catch (error) {
    throw await recordFailure(client, migration, error, id);
  } finally {
    await client.query(`SET lock_timeout = ${Number(lockTimeoutMs)}`).catch(() => undefined);
  }
  await client.query(`UPDATE "_prisma_migrations" SET finished_at = now(), applied_steps_count = 1 WHERE id = $1`, [id]);
}

/** Leaves Prisma's failed state (finished_at and rolled_back_at unset, the error in logs). */
async function recordFailure(client: Client, migration: Migration, error: unknown, id?: string): Promise<Error> {
  const message = error instanceof Error ? error.message : String(error);
  if (id) await client.query(`UPDATE "_prisma_migrations" SET logs = $2 WHERE id = $1`, [id, message]);
  else {
    await client.query(`INSERT INTO "_prisma_migrations" (id, checksum, migration_name, logs) VALUES ($1, $2, $3, $4)`, [
      randomUUID(),
      migration.checksum,
      migration.name,
      message,
    ]);
  }
  const partly = migration.transactional ? "nothing of it was applied" : "statements before the failing one stay applied";
  return new Error(`Migration ${migration.name} failed (${partly}): ${message}`);
}

export function splitStatements(sql: string): string[] {
  return sql
    .split(/;[ \t]*(?:--[^\n]*)?$/m)
    .map((statement) => statement.replace(/^\s*(--[^\n]*\n\s*)*/g, "").trim())
    .filter((statement) => statement.length > 0);
}
