import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Client } from "pg";
import { type TestDatabase, createTestDatabase, describeWithPostgres } from "../test";
import { parseEnv } from "../config/env";
import { startServer } from "../server";
import { TEST_SECRETS, createEmptyDatabase, testServerUrl } from "../test";
import { DEFAULT_MIGRATIONS_DIR, NON_TRANSACTIONAL_MARKER, migrate, readMigrations, splitStatements } from "./migrate";

let database: TestDatabase;

beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(() => database.close());

async function query<T extends object>(sql: string): Promise<T[]> {
  const client = new Client({ connectionString: database.url });
  await client.connect();
  try {
    return (await client.query<T>(sql)).rows;
  } finally {
    await client.end();
  }
}

describe("migrate", () => {
  it("records every migration in _prisma_migrations as Prisma does, with the file's sha256", async () => {
    const rows = await query<{ migration_name: string; checksum: string; finished_at: Date | null; applied_steps_count: number }>(
      `SELECT migration_name, checksum, finished_at, applied_steps_count FROM "_prisma_migrations" ORDER BY migration_name`,
    );
    const files = readMigrations(DEFAULT_MIGRATIONS_DIR);
    expect(files.length).toBeGreaterThan(0);
    expect(rows.map((row) => row.migration_name)).toEqual(files.map((file) => file.name));
    for (const [index, file] of files.entries()) {
      const sql = fs.readFileSync(path.join(DEFAULT_MIGRATIONS_DIR, file.name, "migration.sql"));
      expect(rows[index]!.checksum).toBe(createHash("sha256").update(sql).digest("hex"));
      expect(rows[index]!.finished_at).not.toBeNull();
      expect(rows[index]!.applied_steps_count).toBe(1);
    }
  });

  it("is idempotent: a second run applies nothing", async () => {
    const report = await migrate(database.url);
    expect(report.applied).toEqual([]);
    expect(report.alreadyApplied).toHaveLength(readMigrations(DEFAULT_MIGRATIONS_DIR).length);
  });

  it("refuses to continue when an applied migration was edited afterwards", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mdm-migrations-"));
    fs.cpSync(DEFAULT_MIGRATIONS_DIR, dir, { recursive: true });
    const first = readMigrations(dir)[0]!;
    fs.appendFileSync(path.join(dir, first.name, "migration.sql"), "\n-- edited\n");
    await expect(migrate(database.url, dir)).rejects.toThrow(/checksum/);
  });

  it("rolls back a failing migration completely and leaves Prisma's failed state, which blocks the next run with advice", async () => {
    const database = await createTestDatabase();
    try {
      const dir = copyMigrations();
      addMigration(dir, "29990101000000_broken", `CREATE TABLE "Half" (id INT);\nSELECT * FROM "NoSuchTable";\n`);
      await expect(migrate(database.url, dir)).rejects.toThrow(
        /29990101000000_broken failed \(nothing of it was applied\): relation "NoSuchTable" does not exist/,
      );
      expect(await queryOn(database.url, `SELECT to_regclass('"Half"') AS half`)).toEqual([{ half: null }]);
      const [row] = await queryOn<{ finished_at: Date | null; rolled_back_at: Date | null; logs: string }>(
        database.url,
        `SELECT finished_at, rolled_back_at, logs FROM "_prisma_migrations" WHERE migration_name = '29990101000000_broken'`,
      );
      expect(row).toEqual({ finished_at: null, rolled_back_at: null, logs: expect.stringContaining("NoSuchTable") });

      // Any later start refuses until a person resolves it, as `prisma migrate deploy` does.
      await expect(migrate(database.url)).rejects.toThrow(/29990101000000_broken failed earlier .*prisma migrate resolve --rolled-back 29990101000000_broken/);
      await queryOn(database.url, `UPDATE "_prisma_migrations" SET rolled_back_at = now() WHERE migration_name = '29990101000000_broken'`);
      expect((await migrate(database.url)).applied).toEqual([]);
    } finally {
      await database.close();
    }
  });

  it("runs a migration marked non-transactional statement by statement (CREATE INDEX CONCURRENTLY)", async () => {
    const database = await createTestDatabase();
    try {
      const dir = copyMigrations();
      addMigration(
        dir,
        "29990101000000_concurrent_index",
        `${NON_TRANSACTIONAL_MARKER}\n-- Built without blocking writes.\nCREATE INDEX CONCURRENTLY "Device_alias_idx" ON "Device"("alias");\nCREATE INDEX CONCURRENTLY "Device_model_idx" ON "Device"("model"); -- trailing comment\n`,
      );
      expect((await migrate(database.url, dir)).applied).toEqual(["29990101000000_concurrent_index"]);
      const indexes = await queryOn<{ indexname: string }>(
        database.url,
        `SELECT indexname FROM pg_indexes WHERE indexname IN ('Device_alias_idx', 'Device_model_idx') ORDER BY 1`,
      );
      expect(indexes.map((index) => index.indexname)).toEqual(["Device_alias_idx", "Device_model_idx"]);
      const [row] = await queryOn<{ finished_at: Date | null }>(
        database.url,
        `SELECT finished_at FROM "_prisma_migrations" WHERE migration_name = '29990101000000_concurrent_index'`,
      );
      expect(row!.finished_at).not.toBeNull();
    } finally {
      await database.close();
    }
  });

  // Sessions waiting on each other: the embedded database serves every connection in one session.
  describeWithPostgres("beside other sessions", () => {
    // A session waiting in pg_advisory_lock holds a snapshot, which CREATE INDEX CONCURRENTLY
    // waits out: the instances queued behind it deadlocked with it, and all but one failed.
    it("lets instances started together wait behind a CREATE INDEX CONCURRENTLY migration", async () => {
      const database = await createTestDatabase();
      try {
        const dir = copyMigrations();
        addMigration(
          dir,
          "29990101000000_concurrent_index",
          `${NON_TRANSACTIONAL_MARKER}\nCREATE INDEX CONCURRENTLY "Device_alias_idx" ON "Device"("alias");\n`,
        );
        const runs = await Promise.allSettled(Array.from({ length: 4 }, () => migrate(database.url, dir)));
        expect(runs.map((run) => run.status)).toEqual(Array(4).fill("fulfilled"));
        const applied = runs.flatMap((run) => (run.status === "fulfilled" ? run.value.applied : []));
        expect(applied).toEqual(["29990101000000_concurrent_index"]);
      } finally {
        await database.close();
      }
    });

    // A concurrent build waits for every older transaction through lock waits: under the
    // migration's lock_timeout, one long transaction anywhere failed it (and left an invalid index).
    it("lets a CREATE INDEX CONCURRENTLY wait for a transaction open longer than the lock timeout", async () => {
      const database = await createTestDatabase();
      const open = new Client({ connectionString: database.url });
      await open.connect();
      try {
        const dir = copyMigrations();
        addMigration(
          dir,
          "29990101000000_concurrent_index",
          `${NON_TRANSACTIONAL_MARKER}\nCREATE INDEX CONCURRENTLY "Device_alias_idx" ON "Device"("alias");\n`,
        );
        // A snapshot held to the end, as a long export's transaction holds one.
        await open.query("BEGIN ISOLATION LEVEL REPEATABLE READ");
        await open.query(`SELECT count(*) FROM "Device"`);
        let settled = false;
        const migrating = migrate(database.url, dir, 300).finally(() => {
          settled = true;
        });
        const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
        // The transaction ends only once the build has waited for it past the 300 ms timeout
        // (or the migration gave up meanwhile, as it did with the timeout in force).
        while (!settled) {
          const [waiting] = await queryOn<{ count: number }>(
            database.url,
            `SELECT count(*)::int AS count FROM pg_stat_activity
             WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE 'CREATE INDEX CONCURRENTLY%'`,
          );
          if (waiting!.count > 0) {
            await sleep(600);
            break;
          }
          await sleep(50);
        }
        await open.query("COMMIT");
        expect((await migrating).applied).toEqual(["29990101000000_concurrent_index"]);
        const [index] = await queryOn<{ valid: boolean }>(
          database.url,
          `SELECT indisvalid AS valid FROM pg_index WHERE indexrelid = '"Device_alias_idx"'::regclass`,
        );
        expect(index!.valid).toBe(true);
      } finally {
        await open.end();
        await database.close();
      }
    });
  });

  it("splits a non-transactional migration at statement ends only", () => {
    expect(splitStatements(`-- a comment; not a statement\nCREATE INDEX a ON t(x);\n\nCREATE INDEX b\n  ON t(y); -- why\n`)).toEqual([
      "CREATE INDEX a ON t(x)",
      "CREATE INDEX b\n  ON t(y)",
    ]);
  });

  (testServerUrl() ? it : it.skip)("lets eight API instances start at once on one empty database: each migration applied once", async () => {
    const database = await createEmptyDatabase();
    const env = parseEnv({ NODE_ENV: "test", PORT: "0", HOST: "127.0.0.1", DATABASE_URL: database.url, ...TEST_SECRETS });
    const started = await Promise.allSettled(Array.from({ length: 8 }, () => startServer(env)));
    try {
      expect(started.map((result) => result.status)).toEqual(Array(8).fill("fulfilled"));
      const rows = await queryOn<{ migration_name: string; count: string }>(
        database.url,
        `SELECT migration_name, count(*) FROM "_prisma_migrations" WHERE finished_at IS NOT NULL GROUP BY 1 ORDER BY 1`,
      );
      expect(rows).toEqual(readMigrations(DEFAULT_MIGRATIONS_DIR).map((migration) => ({ migration_name: migration.name, count: "1" })));
      for (const result of started) {
        if (result.status !== "fulfilled") continue;
        const health = await fetch(`${result.value.url}/api/health`);
        expect(health.status).toBe(200);
      }
    } finally {
      for (const result of started) if (result.status === "fulfilled") await result.value.close();
      await database.close();
    }
  });
});

function copyMigrations(): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mdm-migrations-"));
  fs.cpSync(DEFAULT_MIGRATIONS_DIR, dir, { recursive: true });
  return dir;
}

function addMigration(dir: string, name: string, sql: string): void {
  fs.mkdirSync(path.join(dir, name));
  fs.writeFileSync(path.join(dir, name, "migration.sql"), sql);
}

async function queryOn<T extends object>(url: string, sql: string): Promise<T[]> {
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(sql)).rows;
  } finally {
    await client.end();
  }
}
