import { createHash } from "node:crypto";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { Client } from "pg";
import { type TestDatabase, createTestDatabase } from "../test";
import { DEFAULT_MIGRATIONS_DIR, migrate, readMigrations } from "./migrate";

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

  it("rolls back a failing migration completely and records the failure", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mdm-migrations-"));
    fs.cpSync(DEFAULT_MIGRATIONS_DIR, dir, { recursive: true });
    fs.mkdirSync(path.join(dir, "29990101000000_broken"));
    fs.writeFileSync(path.join(dir, "29990101000000_broken", "migration.sql"), `CREATE TABLE "Half" (id INT);\nSELECT * FROM "NoSuchTable";\n`);
    await expect(migrate(database.url, dir)).rejects.toThrow(/29990101000000_broken failed/);
    expect(await query(`SELECT to_regclass('"Half"') AS half`)).toEqual([{ half: null }]);
    const [row] = await query<{ rolled_back_at: Date | null }>(`SELECT rolled_back_at FROM "_prisma_migrations" WHERE migration_name = '29990101000000_broken'`);
    expect(row!.rolled_back_at).not.toBeNull();
    // A rolled-back attempt does not block the next run.
    expect((await migrate(database.url)).applied).toEqual([]);
  });
});
