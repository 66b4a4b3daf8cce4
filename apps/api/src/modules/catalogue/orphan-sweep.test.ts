import { createHash } from "node:crypto";
import { copyFile, mkdir, mkdtemp, readFile, readdir, rm, stat, utimes, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { signAdminRequest } from "@mdm/contracts";
import request from "supertest";
import { TEST_ADMIN_KEY, TEST_HMAC_SECRET, TEST_HOST, type TestApp, type TestDatabase, createTestApp, createTestDatabase, resetTables } from "../../test";
import { type ApkStore, localApkStore } from "./apk-store";
import { ORPHAN_FILE_GRACE_MS, lockStoredFile, sweepAbandonedUploads, sweepOrphanFiles } from "./catalogue.service";
import { signedAppFilePath } from "./download-url";

// Catalogue files no version names (a crash between a deletion's commit and its file
// removal, an upload refused after its file was stored) are removed by the maintenance
// job's sweep once past their grace period; a file an upload is storing never is. Local
// folder here; the bucket's listing is in catalogue-s3.test.ts.

const FIXTURES = path.resolve(__dirname, "../../../test-fixtures/apk");
const V1 = path.join(FIXTURES, "fixture-v1.apk");
const V2 = path.join(FIXTURES, "fixture-v2.apk");

let database: TestDatabase;
let t: TestApp;
let dataDir: string;
let store: ApkStore;

beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(() => database.close());
beforeEach(async () => {
  await resetTables(database.db);
  dataDir = await mkdtemp(path.join(tmpdir(), "orphan-sweep-"));
  t = createTestApp(database.db, { env: { DATA_DIR: dataDir, PUBLIC_API_URL: "https://mdm.example.test" } });
  store = localApkStore(path.join(dataDir, "apps"));
});
afterEach(() => rm(dataDir, { recursive: true, force: true }));

const sha256Of = async (file: string) =>
  createHash("sha256")
    .update(await readFile(file))
    .digest("hex");

async function upload(file: string) {
  const pathWithQuery = `/admin/apps?sha256=${await sha256Of(file)}`;
  const headers = await signAdminRequest({ adminKey: TEST_ADMIN_KEY, hmacSecret: TEST_HMAC_SECRET, method: "POST", host: TEST_HOST, pathWithQuery, body: "" });
  return request(t.app).post(pathWithQuery).set(headers).set("Host", TEST_HOST).attach("file", file);
}

const storedFile = (sha256: string) => path.join(dataDir, "apps", sha256.slice(0, 2), `${sha256}.apk`);
const isStored = (sha256: string) =>
  stat(storedFile(sha256)).then(
    () => true,
    () => false,
  );
/** Dates a stored file as put `ms` ago. */
const age = (sha256: string, ms: number) => {
  const at = new Date(t.clock.now().getTime() - ms);
  return utimes(storedFile(sha256), at, at);
};
/** An APK in the store that no version names: its version row went without its file, as in a crash after the deletion's commit. */
async function orphan(file: string): Promise<string> {
  expect((await upload(file)).status).toBe(201);
  const sha256 = await sha256Of(file);
  await database.db.appVersion.deleteMany({ where: { sha256 } });
  expect(await isStored(sha256)).toBe(true);
  return sha256;
}

describe("the orphan catalogue file sweep", () => {
  it("removes a file no version names once past the grace period, and keeps named files, recent ones, uploads in progress and other files", async () => {
    expect((await upload(V1)).status).toBe(201);
    const named = await sha256Of(V1);
    const orphaned = await orphan(V2);
    // Both are old; only the orphan is younger than the grace period so far.
    await age(named, 10 * ORPHAN_FILE_GRACE_MS);
    await age(orphaned, ORPHAN_FILE_GRACE_MS - 60_000);
    // An upload in progress, and a file that is not a stored APK, are not the store's to sweep.
    const tmp = path.join(dataDir, "apps", "tmp");
    await mkdir(tmp, { recursive: true });
    await writeFile(path.join(tmp, "upload.part"), "partial");
    await writeFile(path.join(dataDir, "apps", orphaned.slice(0, 2), "notes.txt"), "kept");
    const longAgo = new Date(t.clock.now().getTime() - 10 * ORPHAN_FILE_GRACE_MS);
    await utimes(path.join(tmp, "upload.part"), longAgo, longAgo);

    expect(await sweepOrphanFiles(t.deps, store)).toEqual([]);
    expect(await isStored(orphaned)).toBe(true);

    await age(orphaned, ORPHAN_FILE_GRACE_MS + 60_000);
    expect(await sweepOrphanFiles(t.deps, store)).toEqual([orphaned]);
    expect(await isStored(orphaned)).toBe(false);
    expect(await isStored(named)).toBe(true);
    expect(await readdir(tmp)).toEqual(["upload.part"]);
    expect(await readFile(path.join(dataDir, "apps", orphaned.slice(0, 2), "notes.txt"), "utf8")).toBe("kept");
    // The named file is still served.
    const res = await request(t.app).get(signedAppFilePath(t.deps.env, named, new Date(t.clock.now().getTime() + 3_600_000)));
    expect(res.status).toBe(200);
    expect(await sweepOrphanFiles(t.deps, store)).toEqual([]);
  });

  it("gives an old orphan its whole grace period again when an upload stores the same bytes, before its version is recorded", async () => {
    const orphaned = await orphan(V2);
    await age(orphaned, 10 * ORPHAN_FILE_GRACE_MS);
    // An upload of the same APK has stored its file and not yet recorded its version.
    const staging = path.join(dataDir, "incoming.apk");
    await copyFile(V2, staging);
    await store.put(staging, orphaned);

    expect(await sweepOrphanFiles(t.deps, store)).toEqual([]);
    expect(await isStored(orphaned)).toBe(true);
    expect(await readFile(storedFile(orphaned))).toEqual(await readFile(V2));
    // The caller's file stays the caller's, to put again or remove.
    expect(await readFile(staging)).toEqual(await readFile(V2));
  });

  it("an upload whose file the sweep removed at that very moment stores it again: its version is never left without its file", async () => {
    const orphaned = await orphan(V2);
    await age(orphaned, 10 * ORPHAN_FILE_GRACE_MS);
    let uploaded: ReturnType<typeof upload> | undefined;
    // The sweep's last check and removal, under the file's lock, while the upload stores the
    // same bytes: it removes the upload's fresh copy (as a sweep that read the age a moment
    // before the upload's put would).
    await database.db.$transaction(
      async (tx) => {
        await lockStoredFile(tx, orphaned);
        const before = (await stat(storedFile(orphaned))).mtimeMs;
        // Sent at once (an async function's promise).
        uploaded = upload(V2);
        for (let waited = 0; (await stat(storedFile(orphaned))).mtimeMs === before; waited += 20) {
          if (waited > 15_000) throw new Error("the upload never stored its file");
          await new Promise((resolve) => setTimeout(resolve, 20));
        }
        await store.remove(orphaned);
      },
      { timeout: 30_000 },
    );
    const res = await uploaded!;
    expect(res.status).toBe(201);
    expect(await isStored(orphaned)).toBe(true);
    const download = await request(t.app)
      .get(signedAppFilePath(t.deps.env, orphaned, new Date(t.clock.now().getTime() + 3_600_000)))
      .buffer(true)
      .parse((response, done) => {
        const chunks: Buffer[] = [];
        response.on("data", (chunk: Buffer) => chunks.push(chunk));
        response.on("end", () => done(null, Buffer.concat(chunks)));
      });
    expect(download.status).toBe(200);
    expect(download.body).toEqual(await readFile(V2));
  });
});

describe("uploads a killed instance left half-written", () => {
  it("are removed once nothing has written to them for the grace period; a live upload's file and other files stay", async () => {
    const tmp = await store.tempDir();
    const dated = async (name: string, msAgo: number) => {
      await writeFile(path.join(tmp, name), "partial upload");
      const at = new Date(t.clock.now().getTime() - msAgo);
      await utimes(path.join(tmp, name), at, at);
    };
    await dated("abandoned.part", ORPHAN_FILE_GRACE_MS + 60_000);
    await dated("arriving.part", 5_000);
    await dated("not-an-upload.txt", ORPHAN_FILE_GRACE_MS * 2);

    expect(await sweepAbandonedUploads(t.deps, store)).toEqual(["abandoned.part"]);
    expect((await readdir(tmp)).sort()).toEqual(["arriving.part", "not-an-upload.txt"]);
  });
});
