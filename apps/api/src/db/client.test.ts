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
