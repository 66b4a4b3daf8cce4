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
