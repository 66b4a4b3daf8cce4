import { withDatabase } from "./test-db";

describe("withDatabase", () => {
  it.each([
    ["postgresql://postgres@127.0.0.1:5432/postgres", "postgresql://postgres@127.0.0.1:5432/mdm_x"],
    ["postgresql://postgres@127.0.0.1:5432", "postgresql://postgres@127.0.0.1:5432/mdm_x"],
    ["postgres://user:p%40ss@db.internal/app?sslmode=require", "postgres://user:p%40ss@db.internal/mdm_x?sslmode=require"],
    // A Unix-socket host: empty authority host, the socket folder in the query string.
    ["postgresql://postgres@/postgres?host=/var/run/postgresql", "postgresql://postgres@/mdm_x?host=/var/run/postgresql"],
  ])("points %s at another database", (url, expected) => {
    expect(withDatabase(url, "mdm_x")).toBe(expected);
  });
});
