import { createHash } from "node:crypto";
import { mkdtemp, readFile, readdir, rm } from "node:fs/promises";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { HeadObjectCommand, PutObjectCommand, S3Client } from "@aws-sdk/client-s3";
import { signAdminRequest } from "@mdm/contracts";
import S3rver from "s3rver";
import request from "supertest";
import { parseEnv } from "../../config/env";
import {
  TEST_ADMIN_KEY,
  TEST_HMAC_SECRET,
  TEST_HOST,
  TEST_SECRETS,
  type TestApp,
  type TestDatabase,
  adminRequest,
  createEnrollmentToken,
  createTestApp,
  createTestDatabase,
  resetTables,
} from "../../test";
import { apkStoreOf } from "./catalogue.routes";
import { ORPHAN_FILE_GRACE_MS, sweepOrphanFiles } from "./catalogue.service";
import { signedAppFilePath } from "./download-url";

// The catalogue on an S3-compatible bucket: a local S3 server (s3rver) the test starts,
// driven by the real AWS SDK.

const FIXTURES = path.resolve(__dirname, "../../../test-fixtures/apk");
const V1 = path.join(FIXTURES, "fixture-v1.apk");
const V2 = path.join(FIXTURES, "fixture-v2.apk");
const PACKAGE = "com.keelson.fixture";
const BUCKET = "mdm-apks";
// s3rver's fixed credentials.
const KEYS = { APK_STORAGE_S3_ACCESS_KEY_ID: "S3RVER", APK_STORAGE_S3_SECRET_ACCESS_KEY: "S3RVER" };

let database: TestDatabase;
let s3: S3rver;
let endpoint: string;
let s3Dir: string;
let dataDir: string;
let t: TestApp;

beforeAll(async () => {
  database = await createTestDatabase();
  s3Dir = await mkdtemp(path.join(tmpdir(), "s3rver-"));
  s3 = new S3rver({ port: 0, address: "127.0.0.1", silent: true, directory: s3Dir, configureBuckets: [{ name: BUCKET, configs: [] }] });
  const address = (await s3.run()) as AddressInfo;
  endpoint = `http://127.0.0.1:${address.port}`;
});
afterAll(async () => {
  await s3?.close();
  await rm(s3Dir, { recursive: true, force: true });
  await database.close();
});
beforeEach(async () => {
  await resetTables(database.db);
  dataDir = await mkdtemp(path.join(tmpdir(), "catalogue-s3-"));
  t = createTestApp(database.db, {
    env: { DATA_DIR: dataDir, PUBLIC_API_URL: "https://mdm.example.test", APK_STORAGE_S3_BUCKET: BUCKET, APK_STORAGE_S3_ENDPOINT: endpoint, ...KEYS },
  });
});
afterEach(() => rm(dataDir, { recursive: true, force: true }));

async function upload(file: string) {
  const sha256 = createHash("sha256")
    .update(await readFile(file))
    .digest("hex");
  const pathWithQuery = `/admin/apps?sha256=${sha256}`;
  const headers = await signAdminRequest({ adminKey: TEST_ADMIN_KEY, hmacSecret: TEST_HMAC_SECRET, method: "POST", host: TEST_HOST, pathWithQuery, body: "" });
  return { sha256, res: await request(t.app).post(pathWithQuery).set(headers).set("Host", TEST_HOST).attach("file", file) };
}

describe("APK storage on an S3-compatible bucket", () => {
  it("stores an upload in the bucket by its sha256, nothing of it locally, and serves it from there to a signed URL, Range requests included", async () => {
    const { sha256, res } = await upload(V1);
    expect(res.status).toBe(201);
    const size = (await readFile(V1)).length;
    const client = new S3Client({ region: "us-east-1", endpoint, forcePathStyle: true, credentials: { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" } });
    const head = await client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: `apks/${sha256.slice(0, 2)}/${sha256}.apk` }));
    expect(head.ContentLength).toBe(size);
    client.destroy();
    expect(await readdir(path.join(dataDir, "apps"))).toEqual(["tmp"]);
    expect(await readdir(path.join(dataDir, "apps", "tmp"))).toEqual([]);

    // The same file again: found in the bucket, not stored twice.
    const again = await upload(V1);
    expect(again.res.status).toBe(200);
    expect(again.res.body.created).toBe(false);

    const enrollmentToken = await createEnrollmentToken(t.app);
    await request(t.app)
      .post("/v1/register")
      .send({ enrollmentToken, device: { model: "Kiosk" } });
    const release = await adminRequest(t.app, "POST", `/admin/apps/${PACKAGE}/releases`, { versionCode: 1, target: { all: true }, percent: 100 });
    expect(release.status).toBe(201);
    const [command] = await database.db.command.findMany({ where: { type: "install_app" } });
    const url = new URL((command!.payload as { url: string }).url);
    const download = await request(t.app)
      .get(`${url.pathname}${url.search}`)
      .buffer(true)
      .parse((response, done) => {
        const chunks: Buffer[] = [];
        response.on("data", (chunk: Buffer) => chunks.push(chunk));
        response.on("end", () => done(null, Buffer.concat(chunks)));
      });
    expect(download.status).toBe(200);
    expect(download.headers["content-type"]).toBe("application/vnd.android.package-archive");
    expect(
      createHash("sha256")
        .update(download.body as Buffer)
        .digest("hex"),
    ).toBe(sha256);

    const range = await request(t.app).get(`${url.pathname}${url.search}`).set("Range", "bytes=0-3");
    expect(range.status).toBe(206);
    expect(range.headers["content-range"]).toBe(`bytes 0-3/${size}`);
    expect(range.headers["content-length"]).toBe("4");

    const beyond = await request(t.app).get(`${url.pathname}${url.search}`).set("Range", `bytes=${size}-`);
    expect({ status: beyond.status, code: beyond.body.error?.code }).toEqual({ status: 416, code: "range_not_satisfiable" });
    expect(beyond.headers["content-range"]).toBe(`bytes */${size}`);
  });

  it("removes a deleted version's object from the bucket; its signed URL then answers 404", async () => {
    const { sha256, res } = await upload(V1);
    expect(res.status).toBe(201);
    const url = signedAppFilePath(t.deps.env, sha256, new Date(Date.now() + 60_000));
    expect((await request(t.app).get(url)).status).toBe(200);

    expect((await adminRequest(t.app, "DELETE", `/admin/apps/${PACKAGE}/versions/1`)).status).toBe(204);
    const client = new S3Client({ region: "us-east-1", endpoint, forcePathStyle: true, credentials: { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" } });
    await expect(client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: `apks/${sha256.slice(0, 2)}/${sha256}.apk` }))).rejects.toMatchObject({
      $metadata: { httpStatusCode: 404 },
    });
    client.destroy();
    expect((await request(t.app).get(url)).status).toBe(404);
  });

  it("sweeps an object no version names from the bucket once past the grace period, and leaves named objects and other keys", async () => {
    const named = await upload(V1);
    expect(named.res.status).toBe(201);
    const orphaned = await upload(V2);
    expect(orphaned.res.status).toBe(201);
    // Its version row went without its object, as in a crash after the deletion's commit.
    await database.db.appVersion.deleteMany({ where: { sha256: orphaned.sha256 } });
    const client = new S3Client({ region: "us-east-1", endpoint, forcePathStyle: true, credentials: { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" } });
    await client.send(new PutObjectCommand({ Bucket: BUCKET, Key: "apks/notes.txt", Body: "kept" }));
    const keyOf = (sha256: string) => `apks/${sha256.slice(0, 2)}/${sha256}.apk`;
    const store = apkStoreOf(t.deps.env);

    expect(await sweepOrphanFiles(t.deps, store)).toEqual([]);
    t.clock.advance(ORPHAN_FILE_GRACE_MS / 1000 + 60);
    expect(await sweepOrphanFiles(t.deps, store)).toEqual([orphaned.sha256]);
    await expect(client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: keyOf(orphaned.sha256) }))).rejects.toMatchObject({
      $metadata: { httpStatusCode: 404 },
    });
    expect((await client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: keyOf(named.sha256) }))).ContentLength).toBeGreaterThan(0);
    expect((await client.send(new HeadObjectCommand({ Bucket: BUCKET, Key: "apks/notes.txt" }))).ContentLength).toBe(4);
    client.destroy();
  });

  it("answers 404 for a signed URL whose file is not in the bucket", async () => {
    const missing = signedAppFilePath(t.deps.env, "d".repeat(64), new Date(Date.now() + 60_000));
    const res = await request(t.app).get(missing);
    expect(res.status).toBe(404);
    expect(res.body.error.code).toBe("not_found");
  });

  it("refuses an access key without its secret at startup", () => {
    expect(() => parseEnv({ NODE_ENV: "test", ...TEST_SECRETS, APK_STORAGE_S3_BUCKET: BUCKET, APK_STORAGE_S3_ACCESS_KEY_ID: "S3RVER" })).toThrow(
      /APK_STORAGE_S3_SECRET_ACCESS_KEY/,
    );
  });
});
