import { randomUUID } from "node:crypto";
import { type TestDatabase, createTestDatabase, resetTables } from "../test";
import { toHttpError } from "./error-handler";

// A write whose foreign key points at a row deleted a moment before (two admins racing: a
// release created as its version is deleted) is the client's conflict, not our 500.

let database: TestDatabase;

beforeAll(async () => {
  database = await createTestDatabase();
  await resetTables(database.db);
});
afterAll(() => database.close());

async function refusal(write: () => Promise<unknown>): Promise<unknown> {
  try {
    await write();
  } catch (error) {
    return error;
  }
  throw new Error("the write went through");
}

it("answers 409 conflict for a foreign key refused through a model, a raw query or pg", async () => {
  const { db } = database;
  const version = { id: randomUUID(), packageName: "com.example.gone", versionCode: 1, sha256: "a".repeat(64), sizeBytes: 1, certSha256: "b".repeat(64) };
  const throughModel = await refusal(() => db.appVersion.create({ data: version }));
  const throughRaw = await refusal(
    () =>
      db.$executeRaw`INSERT INTO "AppVersion" (id, "packageName", "versionCode", sha256, "sizeBytes", "certSha256") VALUES (${randomUUID()}::uuid, 'com.example.gone', 1, ${"a".repeat(64)}, 1, ${"b".repeat(64)})`,
  );
  for (const error of [throughModel, throughRaw, Object.assign(new Error("insert violates foreign key"), { code: "23503" })]) {
    expect(toHttpError(error)).toMatchObject({ status: 409, code: "conflict" });
  }
});

// Two transactions taking the same rows in opposite orders: PostgreSQL aborts one of them.
// Nothing of it was kept, so the client may send it again: a 409, not a 500.
it("answers 409 conflict for a transaction PostgreSQL aborted in a deadlock, through a model or a raw query", async () => {
  const { db } = database;
  const apps = ["com.example.first", "com.example.second"];
  await db.catalogueApp.createMany({ data: apps.map((packageName) => ({ packageName, certSha256: "c".repeat(64) })) });
  const pause = () => new Promise((resolve) => setTimeout(resolve, 300));
  const both = (lock: (tx: Parameters<Parameters<typeof db.$transaction>[0]>[0], packageName: string) => Promise<unknown>) =>
    Promise.allSettled(
      [apps, [...apps].reverse()].map((order) =>
        db.$transaction(async (tx) => {
          await lock(tx, order[0] as string);
          await pause();
          await lock(tx, order[1] as string);
        }),
      ),
    );
  const throughModel = await both((tx, packageName) => tx.catalogueApp.update({ where: { packageName }, data: { certSha256: "d".repeat(64) } }));
  const throughRaw = await both((tx, packageName) => tx.$queryRaw`SELECT 1 FROM "CatalogueApp" WHERE "packageName" = ${packageName} FOR UPDATE`);
  for (const outcomes of [throughModel, throughRaw]) {
    const refused = outcomes.flatMap((outcome) => (outcome.status === "rejected" ? [outcome.reason] : []));
    expect(refused).toHaveLength(1);
    expect(toHttpError(refused[0])).toMatchObject({ status: 409, code: "conflict" });
  }
});
