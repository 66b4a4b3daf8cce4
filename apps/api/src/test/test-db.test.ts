import request from "supertest";
import { createTestApp, enrollDevice, heartbeatBody } from "./test-app";
import { createTestDatabase, describeWithPostgres, resetTables, withDatabase } from "./test-db";

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

describeWithPostgres("resetTables", () => {
  it("leaves every table empty and every sequence restarted, whichever tables a test wrote to", async () => {
    const database = await createTestDatabase();
    try {
      const { db } = database;
      const tables = await db.$queryRaw<Array<{ name: string }>>`
        SELECT tablename AS name FROM pg_tables WHERE schemaname = 'public' AND tablename <> '_prisma_migrations'`;
      const rowCounts = async () => {
        let rows = 0;
        for (const { name } of tables) rows += (await db.$queryRawUnsafe<Array<{ rows: number }>>(`SELECT count(*)::int AS rows FROM "${name}"`))[0]!.rows;
        return rows;
      };
      const queueMail = () => db.outboxMail.create({ data: { kind: "invite", to: ["a@example.com"], subject: "Hello" } });

      // Rows in tables tied by foreign keys (devices, their telemetry, listing and audit),
      // partitions included, and a sequence moved on.
      const t = createTestApp(db);
      const device = await enrollDevice(t.app);
      expect((await request(t.app).post("/v1/heartbeat").auth(device.deviceToken, { type: "bearer" }).send(heartbeatBody())).status).toBe(200);
      expect((await queueMail()).id).toBe(1n);
      expect(await rowCounts()).toBeGreaterThan(4);

      await resetTables(db);
      expect(await rowCounts()).toBe(0);
      expect((await queueMail()).id).toBe(1n);

      // A sequence moved on whose table was emptied by hand restarts too.
      await db.outboxMail.deleteMany();
      await resetTables(db);
      expect((await queueMail()).id).toBe(1n);
      await resetTables(db);
      expect(await rowCounts()).toBe(0);
    } finally {
      await database.close();
    }
  });
});
