import { createDb, poolOf, withSessionOptions } from "./client";
import { type TestDatabase, createTestDatabase, describeWithPostgres } from "../test";

let database: TestDatabase;

beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(() => database.close());

// The embedded database is one session whatever the connection: its settings are its own.
describeWithPostgres("createDb", () => {
  it("runs the API's sessions without parallel workers", async () => {
    const { rows } = await poolOf(database.db).query("SHOW max_parallel_workers_per_gather");
    expect(rows).toEqual([{ max_parallel_workers_per_gather: "0" }]);
  });

  it("keeps the session options DATABASE_URL sets", async () => {
    const url = new URL(database.url);
    url.searchParams.set("options", "-c statement_timeout=4321");
    const db = createDb(url.toString(), { maxConnections: 1 });
    try {
      const { rows } = await poolOf(db).query(
        "SELECT current_setting('statement_timeout') AS timeout, current_setting('max_parallel_workers_per_gather') AS workers",
      );
      expect(rows).toEqual([{ timeout: "4321ms", workers: "0" }]);
    } finally {
      await db.$disconnect();
    }
  });
});

describe("withSessionOptions", () => {
  it("appends ours to the URL's options, or sets ours alone", () => {
    const options = (url: string) => new URL(withSessionOptions(url)).searchParams.get("options");
    expect(options("postgresql://u@h/db?options=-c%20work_mem%3D8MB&sslmode=disable")).toBe("-c work_mem=8MB -c max_parallel_workers_per_gather=0");
    expect(new URL(withSessionOptions("postgresql://u@h/db?sslmode=disable")).searchParams.get("sslmode")).toBe("disable");
    expect(options("postgresql://u@h/db")).toBe("-c max_parallel_workers_per_gather=0");
    expect(withSessionOptions("not a url")).toBe("not a url");
  });
});
