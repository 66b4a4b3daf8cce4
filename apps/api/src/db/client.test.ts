import { type TestDatabase, createTestDatabase, describeWithPostgres } from "../test";
import { createDb, poolOf } from "./client";

let database: TestDatabase;

beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(() => database.close());

// The embedded database is one session behind a pool of its own size: a server's sessions are each set up.
describeWithPostgres("createDb", () => {
  it("runs the API's sessions without parallel workers, on every connection of the pool", async () => {
    const pool = poolOf(database.db);
    // Several connections at once: each new one is set up before its first query.
    const clients = await Promise.all([pool.connect(), pool.connect(), pool.connect()]);
    try {
      for (const client of clients) {
        const { rows } = await client.query("SHOW max_parallel_workers_per_gather");
        expect(rows).toEqual([{ max_parallel_workers_per_gather: "0" }]);
      }
    } finally {
      for (const client of clients) client.release();
    }
  });

  it("keeps idle connections open for minutes: the next burst runs on the connections of the last one", async () => {
    const db = createDb(database.url, { maxConnections: 3 });
    try {
      const pool = poolOf(db);
      const burst = async () => {
        const rows = await Promise.all([1, 2, 3].map(() => pool.query<{ pid: number }>("SELECT pg_backend_pid() AS pid, pg_sleep(0.1)")));
        return new Set(rows.map((result) => result.rows[0]!.pid));
      };
      const first = await burst();
      expect(first.size).toBe(3);
      // Past pg-pool's default idle timeout (10 s), which closed them.
      await new Promise((resolve) => setTimeout(resolve, 11_000));
      expect(pool.totalCount).toBe(3);
      expect(await burst()).toEqual(first);
    } finally {
      await db.$disconnect();
    }
  }, 30_000);

  it("keeps a value the operator chose (here in DATABASE_URL's options)", async () => {
    const url = new URL(database.url);
    url.searchParams.set("options", "-c max_parallel_workers_per_gather=3");
    const db = createDb(url.toString(), { maxConnections: 1 });
    try {
      const { rows } = await poolOf(db).query("SHOW max_parallel_workers_per_gather");
      expect(rows).toEqual([{ max_parallel_workers_per_gather: "3" }]);
    } finally {
      await db.$disconnect();
    }
  });
});
