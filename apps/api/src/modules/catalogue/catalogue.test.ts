import { createHash, createPrivateKey } from "node:crypto";
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import net, { type AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import path from "node:path";
import { signAdminRequest } from "@mdm/contracts";
import request from "supertest";
import {
  TEST_ADMIN_KEY,
  TEST_HMAC_SECRET,
  TEST_HOST,
  type TestApp,
  type TestDatabase,
  adminRequest,
  createEnrollmentToken,
  createTestApp,
  createTestDatabase,
  heartbeatBody,
  resetTables,
} from "../../test";
import { createHttpServer } from "../../lib/http-server";
import { V3_SCHEME, firstSigner, resign, rewriteSigner } from "../../test/apk-forgery";
import { advanceRollouts, createRelease } from "./releases.service";

const FIXTURES = path.resolve(__dirname, "../../../test-fixtures/apk");
const V1 = path.join(FIXTURES, "fixture-v1.apk");
const V2 = path.join(FIXTURES, "fixture-v2.apk");
const V4 = path.join(FIXTURES, "fixture-v4-v2-signature-only.apk");
const OTHER_KEY = path.join(FIXTURES, "fixture-v3-other-key.apk");
const ROTATED = path.join(FIXTURES, "fixture-v5-rotated.apk");
const ROTATED_CERT = "0968d3b3f5a656b1a4f7fe18c1036db2edb6217ceefed41bf8ba4a32d204fd55";
const PACKAGE = "com.keelson.fixture";
const CERT = "f161faad5dc4cb510dc0dc4ba9ad43163a3e13acfb171e6ed63c5867f3056b50";
const PUBLIC_API_URL = "https://mdm.example.test";

let database: TestDatabase;
let t: TestApp;
let dataDir: string;

beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(() => database.close());
beforeEach(async () => {
  await resetTables(database.db);
  // Under a folder starting with a dot, like the default DATA_DIR (.data): files must still be served.
  dataDir = path.join(await mkdtemp(path.join(tmpdir(), "catalogue-")), ".data");
  await mkdir(dataDir);
  t = createTestApp(database.db, { env: { DATA_DIR: dataDir, PUBLIC_API_URL } });
});
afterEach(() => rm(path.dirname(dataDir), { recursive: true, force: true }));

const sha256Of = async (file: string) =>
  createHash("sha256")
    .update(await readFile(file))
    .digest("hex");

/** A signed admin upload: the signature covers the query, which names the file's sha256. */
async function upload(app: TestApp["app"], file: string, sha256?: string) {
  const pathWithQuery = `/admin/apps?sha256=${sha256 ?? (await sha256Of(file))}`;
  const headers = await signAdminRequest({ adminKey: TEST_ADMIN_KEY, hmacSecret: TEST_HMAC_SECRET, method: "POST", host: TEST_HOST, pathWithQuery, body: "" });
  return request(app).post(pathWithQuery).set(headers).set("Host", TEST_HOST).attach("file", file);
}

type Device = { deviceId: string; deviceToken: string };

/** Enrolls `count` devices through the real registration route, in `group`. */
async function enrollGroup(count: number, group: string): Promise<Device[]> {
  const enrollmentToken = await createEnrollmentToken(t.app, { maxUses: count });
  const devices: Device[] = [];
  for (let i = 0; i < count; i++) {
    const res = await request(t.app)
      .post("/v1/register")
      .send({ enrollmentToken, device: { model: "Kiosk", serialNumber: `K-${i}` } });
    expect(res.status).toBe(201);
    devices.push({ deviceId: res.body.deviceId, deviceToken: res.body.deviceToken });
  }
  await database.db.device.updateMany({ where: { id: { in: devices.map((device) => device.deviceId) } }, data: { groups: [group] } });
  return devices;
}

async function installCommands(versionCode?: number) {
  const commands = await database.db.command.findMany({ where: { type: "install_app" }, orderBy: { createdAt: "asc" } });
  return commands.filter((command) => versionCode === undefined || (command.payload as { versionCode: number }).versionCode === versionCode);
}

/** A heartbeat whose app list reports `versionCode` of the fixture app. */
function reportVersion(device: Device, versionCode: number) {
  return request(t.app)
    .post("/v1/heartbeat")
    .set("Authorization", `Bearer ${device.deviceToken}`)
    .send(heartbeatBody({ apps: [{ packageName: PACKAGE, versionCode, running: false }] }));
}

function report(device: Device, requestId: string, status: "succeeded" | "failed", error?: string) {
  return request(t.app)
    .post("/v1/action-result")
    .set("Authorization", `Bearer ${device.deviceToken}`)
    .send({ requestId, status, ...(error ? { error } : {}) });
}

describe("POST /admin/apps", () => {
  it("reads the package name, version and signing certificate from a real APK and stores it by its sha256", async () => {
    const sha256 = await sha256Of(V1);
    const res = await upload(t.app, V1);
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({
      created: true,
      version: {
        packageName: PACKAGE,
        versionCode: 1,
        versionName: "1.0.0",
        certSha256: CERT,
        certLineage: [CERT],
        sha256,
        sizeBytes: (await readFile(V1)).length,
      },
    });
    expect(await readFile(path.join(dataDir, "apps", sha256.slice(0, 2), `${sha256}.apk`))).toEqual(await readFile(V1));

    const again = await upload(t.app, V1);
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({ created: false, version: { id: res.body.version.id } });

    const listed = await adminRequest(t.app, "GET", "/admin/apps");
    expect(listed.body.apps).toHaveLength(1);
    expect(listed.body.apps[0]).toMatchObject({ packageName: PACKAGE, certSha256: CERT, versions: [{ versionCode: 1 }], releases: [] });
    const audit = await database.db.auditLog.findMany({ where: { action: "app.upload" } });
    expect(audit).toHaveLength(1);
  });

  it("refuses a file that is not an APK with invalid_apk, and keeps nothing of it", async () => {
    const notApk = path.join(dataDir, "notes.apk");
    await writeFile(notApk, "just some text, not a zip");
    const res = await upload(t.app, notApk);
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe("invalid_apk");
    expect(await database.db.appVersion.count()).toBe(0);
    expect(await database.db.catalogueApp.count()).toBe(0);
  });

  it("refuses an APK altered after signing, or naming a certificate it was not signed with, with 400 invalid_apk, and keeps nothing of it", async () => {
    const rotated = await readFile(ROTATED);
    const altered = Buffer.from(rotated);
    const payload = altered.indexOf("Keelson fixture payload");
    altered[payload] = altered.readUInt8(payload) ^ 1;
    // The attacker's own APK, naming the vendor's certificate, its signed data re-signed with the attacker's key.
    const attackerKey = createPrivateKey(await readFile(path.join(FIXTURES, "test-keystore-other.key.pem")));
    const vendor = firstSigner(await readFile(V2), V3_SCHEME).certificates[0]!;
    const spliced = rewriteSigner(await readFile(OTHER_KEY), V3_SCHEME, (signer) => resign({ ...signer, certificates: [vendor] }, attackerKey));
    for (const [name, bytes, message] of [
      ["altered.apk", altered, "its contents were altered after signing"],
      ["spliced.apk", spliced, "its certificate is not that of the key that signed it"],
    ] as const) {
      const file = path.join(dataDir, name);
      await writeFile(file, bytes);
      const res = await upload(t.app, file);
      expect(res.status).toBe(400);
      expect(res.body.error).toMatchObject({ code: "invalid_apk", message: expect.stringContaining(message) });
    }
    expect(await database.db.appVersion.count()).toBe(0);
    expect(await database.db.catalogueApp.count()).toBe(0);
    expect(await readdir(path.join(dataDir, "apps"))).toEqual(["tmp"]);
    expect(await readdir(path.join(dataDir, "apps", "tmp"))).toEqual([]);
  });

  it("accepts an update signed with a rotated key whose lineage names the app's certificate, then binds the app to the new key", async () => {
    expect((await upload(t.app, V1)).status).toBe(201);
    const res = await upload(t.app, ROTATED);
    expect(res.status).toBe(201);
    expect(res.body.version).toMatchObject({ versionCode: 5, certSha256: ROTATED_CERT, certLineage: [CERT, ROTATED_CERT] });
    const listed = await adminRequest(t.app, "GET", "/admin/apps");
    expect(listed.body.apps[0]).toMatchObject({ certSha256: ROTATED_CERT, versions: [{ versionCode: 5 }, { versionCode: 1, certLineage: [CERT] }] });
    const audit = await database.db.auditLog.findFirstOrThrow({ where: { action: "app.upload", details: { path: ["versionCode"], equals: 5 } } });
    expect(audit.details).toMatchObject({ certSha256: ROTATED_CERT, rotatedFrom: CERT });
    // Devices updated to the new key refuse an APK signed with the old one (no rollback): so does the catalogue.
    const old = await upload(t.app, V2);
    expect(old.status).toBe(409);
    expect(old.body.error.message).toMatch(/lineage does not name theirs/);
  });

  it("refuses the same package signed with another certificate (409)", async () => {
    expect((await upload(t.app, V1)).status).toBe(201);
    const res = await upload(t.app, OTHER_KEY);
    expect(res.status).toBe(409);
    expect(res.body.error.code).toBe("conflict");
    expect(res.body.error.message).toMatch(/another certificate/);
    expect(await database.db.appVersion.count()).toBe(1);
  });

  it("answers concurrent uploads of one new APK with one 201 and 200 created:false for the others, never a 500", async () => {
    const answers = await Promise.all([upload(t.app, V1), upload(t.app, V1), upload(t.app, V1)]);
    expect(answers.map((res) => res.status).sort()).toEqual([200, 200, 201]);
    expect(answers.filter((res) => res.status === 200).every((res) => res.body.created === false)).toBe(true);
    expect(new Set(answers.map((res) => res.body.version.id)).size).toBe(1);
    expect(await database.db.appVersion.count()).toBe(1);
  });

  it("answers concurrent first uploads of a package signed with two certificates with one 201 and one 409, never a 500", async () => {
    const answers = await Promise.all([upload(t.app, V2), upload(t.app, OTHER_KEY)]);
    expect(answers.map((res) => res.status).sort()).toEqual([201, 409]);
    expect(answers.find((res) => res.status === 409)!.body.error.message).toMatch(/another certificate/);
    expect(await database.db.catalogueApp.count()).toBe(1);
    expect(await database.db.appVersion.count()).toBe(1);
  });

  it("binds a signed upload to its file: no sha256 in the query, or another file, is refused", async () => {
    const headers = await signAdminRequest({
      adminKey: TEST_ADMIN_KEY,
      hmacSecret: TEST_HMAC_SECRET,
      method: "POST",
      host: TEST_HOST,
      pathWithQuery: "/admin/apps",
      body: "",
    });
    const unbound = await request(t.app).post("/admin/apps").set(headers).set("Host", TEST_HOST).attach("file", V1);
    expect(unbound.status).toBe(400);
    expect(unbound.body.error.details).toEqual([{ path: "query.sha256", message: "Required with X-Admin" }]);

    const swapped = await upload(t.app, V2, await sha256Of(V1));
    expect(swapped.status).toBe(400);
    expect(swapped.body.error.details).toEqual([{ path: "query.sha256", message: "Does not match the uploaded file" }]);
    expect(await database.db.appVersion.count()).toBe(0);
  });

  it("refuses an APK over APK_MAX_BYTES with 413, and a body that is not multipart with 415", async () => {
    const small = createTestApp(database.db, { env: { DATA_DIR: dataDir, APK_MAX_BYTES: "4096" } });
    const res = await upload(small.app, V1);
    expect(res.status).toBe(413);
    expect(res.body.error.code).toBe("payload_too_large");

    const json = await adminRequest(t.app, "POST", `/admin/apps?sha256=${"a".repeat(64)}`, { file: "x" });
    expect(json.status).toBe(415);
    expect(json.body.error.code).toBe("unsupported_media_type");
  });

  /**
   * An upload written by hand to the production server (with its own request timeout), so
   * a test decides how fast its bytes arrive: `send` writes them, and returns what stops it.
   * Resolves with what the server answered once it closed the connection (asked to by the
   * client unless `keepAlive`).
   */
  async function uploadOverSocket(
    env: Record<string, string>,
    options: { signed: boolean; contentLength: number; keepAlive?: boolean; requestLine?: string },
    send: (write: (chunk: string | Buffer) => void) => () => void,
  ): Promise<{ received: string; seconds: number }> {
    const slow = createTestApp(database.db, { env: { DATA_DIR: dataDir, ...env } });
    const server = createHttpServer(slow.app, slow.deps.env);
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as AddressInfo;
    const pathWithQuery = `/admin/apps?sha256=${await sha256Of(V1)}`;
    const headers = options.signed
      ? await signAdminRequest({ adminKey: TEST_ADMIN_KEY, hmacSecret: TEST_HMAC_SECRET, method: "POST", host: TEST_HOST, pathWithQuery, body: "" })
      : {};
    const socket = net.connect({ port, host: "127.0.0.1" });
    let received = "";
    socket.on("data", (chunk) => (received += chunk.toString()));
    socket.on("error", () => undefined);
    const closed = new Promise<void>((resolve) => socket.on("close", () => resolve()));
    const startedAt = Date.now();
    socket.write(
      [
        options.requestLine ?? `POST ${pathWithQuery} HTTP/1.1`,
        `Host: ${TEST_HOST}`,
        ...Object.entries(headers).map(([name, value]) => `${name}: ${value}`),
        `Content-Type: multipart/form-data; boundary=${BOUNDARY}`,
        `Content-Length: ${options.contentLength}`,
        ...(options.keepAlive ? [] : ["Connection: close"]),
        "",
        "",
      ].join("\r\n"),
    );
    const stop = send((chunk) => {
      if (socket.writable) socket.write(chunk);
    });
    try {
      await closed;
    } finally {
      stop();
      socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    }
    return { received, seconds: (Date.now() - startedAt) / 1000 };
  }

  const BOUNDARY = "slow-upload";
  const PART_HEAD = `--${BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="app.apk"\r\nContent-Type: application/octet-stream\r\n\r\n`;
  const errorOf = (received: string) => JSON.parse(received.split("\r\n\r\n").at(-1)!).error;

  it("accepts an upload that keeps arriving for longer than HTTP_BODY_TIMEOUT_SECONDS and HTTP_REQUEST_TIMEOUT_SECONDS", async () => {
    // A large APK over an ordinary uplink: a 100 MB file at 20 Mbit/s takes 40 s.
    const body = Buffer.concat([Buffer.from(PART_HEAD), await readFile(V1), Buffer.from(`\r\n--${BOUNDARY}--\r\n`)]);
    const pieces = 14;
    const env = { HTTP_BODY_TIMEOUT_SECONDS: "1", HTTP_HEADERS_TIMEOUT_SECONDS: "1", HTTP_REQUEST_TIMEOUT_SECONDS: "2", APK_UPLOAD_TIMEOUT_SECONDS: "60" };
    const { received, seconds } = await uploadOverSocket(env, { signed: true, contentLength: body.length }, (write) => {
      let sent = 0;
      const timer = setInterval(() => {
        const size = Math.ceil(body.length / pieces);
        write(body.subarray(sent, sent + size));
        sent += size;
        if (sent >= body.length) clearInterval(timer);
      }, 250);
      return () => clearInterval(timer);
    });
    expect(seconds).toBeGreaterThan(3);
    expect(received).toMatch(/^HTTP\/1\.1 201 /);
    expect(await database.db.appVersion.count()).toBe(1);
  });

  it("answers 408 to an upload still trickling in past APK_UPLOAD_TIMEOUT_SECONDS, closes its connection and keeps nothing of it", async () => {
    const env = { HTTP_BODY_TIMEOUT_SECONDS: "1", APK_UPLOAD_TIMEOUT_SECONDS: "2" };
    const { received, seconds } = await uploadOverSocket(env, { signed: true, contentLength: 1_000_000 }, (write) => {
      write(`${PART_HEAD}PK`);
      const timer = setInterval(() => write("x"), 100);
      return () => clearInterval(timer);
    });
    expect(seconds).toBeLessThan(10);
    expect(received).toMatch(/^HTTP\/1\.1 408 /);
    expect(received).toMatch(/^Connection: close$/im);
    expect(errorOf(received)).toMatchObject({ code: "request_timeout", message: expect.stringContaining("APK_UPLOAD_TIMEOUT_SECONDS") });
    expect(await database.db.appVersion.count()).toBe(0);
    expect(await readdir(path.join(dataDir, "apps", "tmp"))).toEqual([]);
  });

  it("answers 408 to an upload that stops arriving for HTTP_BODY_TIMEOUT_SECONDS, long before its upload timeout", async () => {
    const env = { HTTP_BODY_TIMEOUT_SECONDS: "1", APK_UPLOAD_TIMEOUT_SECONDS: "120" };
    const { received, seconds } = await uploadOverSocket(env, { signed: true, contentLength: 1_000_000 }, (write) => {
      write(`${PART_HEAD}PK`);
      return () => undefined;
    });
    expect(seconds).toBeLessThan(10);
    expect(received).toMatch(/^HTTP\/1\.1 408 /);
    expect(errorOf(received)).toMatchObject({ code: "request_timeout", message: expect.stringContaining("HTTP_BODY_TIMEOUT_SECONDS") });
    expect(await readdir(path.join(dataDir, "apps", "tmp"))).toEqual([]);
  });

  it("answers 401 to an unsigned upload before reading it", async () => {
    const res = await request(t.app).post("/admin/apps").set("Host", TEST_HOST).attach("file", V1);
    expect(res.status).toBe(401);
    expect(await database.db.appVersion.count()).toBe(0);
  });

  it("closes the connection of an upload refused before its body arrived, instead of reading the rest for as long as an upload may take", async () => {
    const { received, seconds } = await uploadOverSocket({}, { signed: false, contentLength: 1_000_000, keepAlive: true }, (write) => {
      const timer = setInterval(() => write("x"), 100);
      return () => clearInterval(timer);
    });
    expect(received).toMatch(/^HTTP\/1\.1 401 /);
    expect(received).toMatch(/^Connection: close$/im);
    expect(seconds).toBeLessThan(10);
  });

  it("gives a multipart body sent anywhere but the upload route the body timeout of any other body, not the upload's", async () => {
    const env = { HTTP_BODY_TIMEOUT_SECONDS: "1" };
    const options = { signed: false, contentLength: 1_000_000, keepAlive: true, requestLine: "GET /api/health HTTP/1.1" };
    const { received, seconds } = await uploadOverSocket(env, options, (write) => {
      write(PART_HEAD);
      const timer = setInterval(() => write("x"), 100);
      return () => clearInterval(timer);
    });
    expect(received).toMatch(/^HTTP\/1\.1 408 /);
    expect(seconds).toBeLessThan(10);
  });
});

describe("releases", () => {
  it("rolls v2 out to 25% of a 100-device group, advances to 100% keeping the first 25, and a rollback sends v1", async () => {
    await upload(t.app, V1);
    await upload(t.app, V2);
    const v2Sha = await sha256Of(V2);
    const devices = await enrollGroup(100, "kiosks");
    const byId = new Map(devices.map((device) => [device.deviceId, device]));
    // They run v1: what a rollback takes them back to.
    for (const device of devices) expect((await reportVersion(device, 1)).status).toBe(200);
    t.clock.advance(1);

    const created = await adminRequest(t.app, "POST", `/admin/apps/${PACKAGE}/releases`, { versionCode: 2, target: { group: "kiosks" }, percent: 25 });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({
      versionCode: 2,
      previousVersionCode: 1,
      rollbackDevices: 25,
      percent: 25,
      status: "active",
      progress: { targeted: 100, sent: 25, pending: 25, installed: 0 },
    });
    const first = await installCommands(2);
    expect(first).toHaveLength(25);
    expect(new Set(first.map((command) => command.deviceId)).size).toBe(25);
    // One batch through the durable delivery queue, each command carrying the catalogue URL and the hash.
    expect(new Set(first.map((command) => command.batchId)).size).toBe(1);
    const payload = first[0]!.payload as { url: string; sha256: string; packageName: string; versionCode: number };
    expect(payload).toMatchObject({ packageName: PACKAGE, sha256: v2Sha, versionCode: 2 });
    expect(payload.url.startsWith(`${PUBLIC_API_URL}/v1/app-files/${v2Sha}?expires=`)).toBe(true);

    // The devices install it: the command result, or the version a heartbeat reports.
    for (const [index, command] of first.entries()) {
      const device = byId.get(command.deviceId)!;
      if (index % 2 === 0) expect((await report(device, command.requestId, "succeeded")).status).toBe(200);
      else {
        const beat = await request(t.app)
          .post("/v1/heartbeat")
          .set("Authorization", `Bearer ${device.deviceToken}`)
          .send(heartbeatBody({ apps: [{ packageName: PACKAGE, versionCode: 2, versionName: "1.1.0", running: false }] }));
        expect(beat.status).toBe(200);
      }
    }
    const installed = await adminRequest(t.app, "GET", `/admin/app-releases/${created.body.id}`);
    expect(installed.body.progress).toEqual({ targeted: 100, sent: 25, installed: 25, pending: 0, failed: 0, replaced: 0 });
    expect(installed.body.devices.every((device: { status: string }) => device.status === "installed")).toBe(true);

    const advanced = await adminRequest(t.app, "POST", `/admin/app-releases/${created.body.id}/advance`, { percent: 100 });
    expect(advanced.status).toBe(200);
    // Sent to the whole target: complete.
    expect(advanced.body).toMatchObject({ percent: 100, status: "completed", progress: { sent: 100, installed: 25, pending: 75 } });
    const all = await installCommands(2);
    expect(all).toHaveLength(100);
    // The first 25 were not sent again: the rollout order is stable.
    expect(new Set(all.map((command) => command.deviceId)).size).toBe(100);

    const newcomer = all.find((command) => !first.some((earlier) => earlier.deviceId === command.deviceId))!;
    expect((await report(byId.get(newcomer.deviceId)!, newcomer.requestId, "failed", "INSTALL_FAILED_INSUFFICIENT_STORAGE")).status).toBe(200);
    const detail = await adminRequest(t.app, "GET", `/admin/app-releases/${created.body.id}`);
    expect(detail.body.progress).toMatchObject({ failed: 1, installed: 25, pending: 74 });
    expect(detail.body.devices[0]).toEqual({
      deviceId: newcomer.deviceId,
      versionCode: 2,
      fromVersionCode: 1,
      status: "failed",
      reason: "INSTALL_FAILED_INSUFFICIENT_STORAGE",
      rollbackSkipped: null,
      requestId: newcomer.requestId,
    });
    expect(detail.body).toMatchObject({ previousVersionCode: 1, rollbackDevices: 99 });

    const rolledBack = await adminRequest(t.app, "POST", `/admin/app-releases/${created.body.id}/rollback`);
    expect(rolledBack.status).toBe(200);
    // Every device it reached goes back to v1, but the one whose install failed: it still runs v1.
    expect(rolledBack.body).toMatchObject({ status: "rolled_back", previousVersionCode: 1, rollbackDevices: 99, progress: { sent: 100, failed: 1 } });
    const back = await installCommands(1);
    expect(back).toHaveLength(99);
    expect(new Set(back.map((command) => command.deviceId)).size).toBe(99);
    expect(back.map((command) => command.deviceId)).not.toContain(newcomer.deviceId);
    const afterRollback = await adminRequest(t.app, "GET", `/admin/app-releases/${created.body.id}`);
    expect(afterRollback.body.devices[0]).toMatchObject({
      deviceId: newcomer.deviceId,
      versionCode: 2,
      rollbackSkipped: "its install of version 2 failed (INSTALL_FAILED_INSUFFICIENT_STORAGE): it runs what it ran before",
    });
    expect(back[0]!.payload).toMatchObject({ sha256: await sha256Of(V1), versionCode: 1 });
    // What was still queued of v2 is cancelled: it must not land after v1.
    const stillQueued = await database.db.command.count({ where: { type: "install_app", status: "queued", payload: { path: ["versionCode"], equals: 2 } } });
    expect(stillQueued).toBe(0);

    const again = await adminRequest(t.app, "POST", `/admin/app-releases/${created.body.id}/advance`, {});
    expect(again.status).toBe(409);
    const audit = await database.db.auditLog.findMany({ where: { action: { startsWith: "app_release." } }, orderBy: { id: "asc" } });
    expect(audit.map((entry) => entry.action)).toEqual(["app_release.create", "app_release.advance", "app_release.rollback"]);
  });

  it("advances by itself through 5 → 25 → 100 while failures stay under the threshold, and pauses when they do not", async () => {
    await upload(t.app, V1);
    await upload(t.app, V2);
    const devices = await enrollGroup(20, "tills");
    const byId = new Map(devices.map((device) => [device.deviceId, device]));
    const created = await adminRequest(t.app, "POST", `/admin/apps/${PACKAGE}/releases`, {
      versionCode: 2,
      target: { group: "tills" },
      autoAdvance: true,
      maxFailurePercent: 10,
    });
    expect(created.body).toMatchObject({ percent: 5, autoAdvance: true, progress: { sent: 1 } });

    // Nothing finished yet: no step.
    expect(await advanceRollouts(t.deps)).toEqual({ advanced: 0, paused: 0, toppedUp: 0 });
    for (const command of await installCommands(2)) await report(byId.get(command.deviceId)!, command.requestId, "succeeded");
    expect(await advanceRollouts(t.deps)).toEqual({ advanced: 1, paused: 0, toppedUp: 0 });
    expect((await installCommands(2)).length).toBe(5);

    const [failing, ...rest] = (await installCommands(2)).filter((command) => command.status !== "succeeded");
    await report(byId.get(failing!.deviceId)!, failing!.requestId, "failed", "INSTALL_FAILED_VERSION_DOWNGRADE");
    for (const command of rest) await report(byId.get(command.deviceId)!, command.requestId, "succeeded");
    // 1 failed of 5 = 20% > 10%: paused for an admin, not widened.
    expect(await advanceRollouts(t.deps)).toEqual({ advanced: 0, paused: 1, toppedUp: 0 });
    const paused = await adminRequest(t.app, "GET", `/admin/app-releases/${created.body.id}`);
    expect(paused.body).toMatchObject({ status: "paused", percent: 25 });
    expect((await adminRequest(t.app, "POST", `/admin/app-releases/${created.body.id}/advance`, {})).status).toBe(409);
    const resumed = await adminRequest(t.app, "POST", `/admin/app-releases/${created.body.id}/resume`);
    expect(resumed.body.status).toBe("active");
    const advanced = await adminRequest(t.app, "POST", `/admin/app-releases/${created.body.id}/advance`, {});
    expect(advanced.body).toMatchObject({ percent: 100, status: "completed", progress: { sent: 20 } });
  });

  it("refuses a release while PUBLIC_API_URL is not https, a missing version, and a second release in progress", async () => {
    await upload(t.app, V1);
    await enrollGroup(2, "g");
    const plain = createTestApp(database.db, { env: { DATA_DIR: dataDir, PUBLIC_API_URL: "http://10.0.0.5:8000" } });
    const refused = await adminRequest(plain.app, "POST", `/admin/apps/${PACKAGE}/releases`, { versionCode: 1, target: { all: true } });
    expect(refused.status).toBe(409);
    expect(refused.body.error.message).toMatch(/PUBLIC_API_URL/);
    // The catalogue's listing says so beforehand, for the dashboard to warn.
    expect((await adminRequest(plain.app, "GET", "/admin/apps")).body.publicApiUrl).toBe("http://10.0.0.5:8000");
    expect((await adminRequest(t.app, "GET", "/admin/apps")).body.publicApiUrl).toBe("https://mdm.example.test");

    expect((await adminRequest(t.app, "POST", `/admin/apps/${PACKAGE}/releases`, { versionCode: 9, target: { all: true } })).status).toBe(404);
    expect((await adminRequest(t.app, "POST", `/admin/apps/${PACKAGE}/releases`, { versionCode: 1, target: { all: true }, percent: 50 })).status).toBe(201);
    const second = await adminRequest(t.app, "POST", `/admin/apps/${PACKAGE}/releases`, { versionCode: 1, target: { all: true } });
    expect(second.status).toBe(409);
    expect(second.body.error.message).toMatch(/in progress/);
    const invalid = await adminRequest(t.app, "POST", `/admin/apps/${PACKAGE}/releases`, { versionCode: 1, target: { all: true }, percent: 0 });
    expect(invalid.status).toBe(400);
    expect(invalid.body.error.details).toEqual([expect.objectContaining({ path: "percent" })]);
    // Past what a version code column holds: a 400 naming it, not the database's error as a 500.
    const huge = await adminRequest(t.app, "POST", `/admin/apps/${PACKAGE}/releases`, { versionCode: 2_147_483_648, target: { all: true } });
    expect(huge.status).toBe(400);
    expect(huge.body.error.details).toEqual([expect.objectContaining({ path: "versionCode" })]);
  });
});

describe("release lifecycle", () => {
  const create = (body: Record<string, unknown>) => adminRequest(t.app, "POST", `/admin/apps/${PACKAGE}/releases`, body);
  const retire = (deviceId: string) => adminRequest(t.app, "POST", `/admin/devices/${deviceId}/retire`);

  it("a release at 100% sent to its whole target is completed: the next version's release may start, and a completed release still rolls back", async () => {
    await upload(t.app, V1);
    const devices = await enrollGroup(2, "g");
    const first = await create({ versionCode: 1, target: { all: true }, percent: 100 });
    expect(first.status).toBe(201);
    expect(first.body).toMatchObject({ status: "completed", progress: { targeted: 2, sent: 2 } });
    const byId = new Map(devices.map((device) => [device.deviceId, device]));
    for (const command of await installCommands(1)) expect((await report(byId.get(command.deviceId)!, command.requestId, "succeeded")).status).toBe(200);
    t.clock.advance(1);

    await upload(t.app, V2);
    const second = await create({ versionCode: 2, target: { all: true }, percent: 100 });
    expect(second.status).toBe(201);
    expect(second.body).toMatchObject({ status: "completed", versionCode: 2, previousVersionCode: 1, progress: { sent: 2 } });
    expect(await installCommands(2)).toHaveLength(2);

    const rolledBack = await adminRequest(t.app, "POST", `/admin/app-releases/${second.body.id}/rollback`);
    expect(rolledBack.status).toBe(200);
    expect(rolledBack.body.status).toBe("rolled_back");
    // v1 twice per device: by the first release, then by the rollback.
    expect((await installCommands(1)).map((command) => command.deviceId).sort()).toEqual(
      [...devices.map((device) => device.deviceId), ...devices.map((device) => device.deviceId)].sort(),
    );
  });

  it("leaves retired devices out of a release, its advance, its rollback and its counts, so one retired device never blocks it", async () => {
    await upload(t.app, V1);
    await upload(t.app, V2);
    const devices = await enrollGroup(4, "g");
    for (const device of devices) expect((await reportVersion(device, 1)).status).toBe(200);
    expect((await retire(devices[3]!.deviceId)).status).toBe(200);

    const created = await create({ versionCode: 2, target: { group: "g" }, percent: 25 });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ status: "active", progress: { targeted: 3, sent: 1 } });
    // A device of the share retired before the advance: skipped, not a 400.
    const [firstCommand] = await installCommands(2);
    const others = devices.slice(0, 3).filter((device) => device.deviceId !== firstCommand!.deviceId);
    expect((await retire(others[0]!.deviceId)).status).toBe(200);
    const advanced = await adminRequest(t.app, "POST", `/admin/app-releases/${created.body.id}/advance`, { percent: 100 });
    expect(advanced.status).toBe(200);
    expect(advanced.body).toMatchObject({ status: "completed", progress: { targeted: 2, sent: 2 } });
    expect((await installCommands(2)).map((command) => command.deviceId).sort()).toEqual([firstCommand!.deviceId, others[1]!.deviceId].sort());

    // A device the release reached retires: the rollback still sends v1 to the others and says so.
    expect((await retire(firstCommand!.deviceId)).status).toBe(200);
    const rolledBack = await adminRequest(t.app, "POST", `/admin/app-releases/${created.body.id}/rollback`);
    expect(rolledBack.status).toBe(200);
    expect(rolledBack.body).toMatchObject({ status: "rolled_back", progress: { targeted: 1, sent: 1 } });
    expect((await installCommands(1)).map((command) => command.deviceId)).toEqual([others[1]!.deviceId]);
  });

  it("writes nothing of a release whose commands cannot be queued, so it can be retried", async () => {
    await upload(t.app, V1);
    await enrollGroup(2, "g");
    const sha256 = await sha256Of(V1);
    // A version row whose hash no install command accepts: queueing fails after the release row is written.
    await database.db.appVersion.updateMany({ data: { sha256: "not-a-sha256" } });
    await expect(
      createRelease(t.deps, PACKAGE, { versionCode: 1, target: { group: "g" }, percent: 100, autoAdvance: false, maxFailurePercent: 5 }, { name: "admin" }),
    ).rejects.toThrow();
    expect(await database.db.appRelease.count()).toBe(0);
    expect(await database.db.command.count()).toBe(0);
    expect(await database.db.auditLog.count({ where: { action: "app_release.create" } })).toBe(0);

    await database.db.appVersion.updateMany({ data: { sha256 } });
    const retried = await create({ versionCode: 1, target: { group: "g" }, percent: 100 });
    expect(retried.status).toBe(201);
    expect(retried.body).toMatchObject({ status: "completed", progress: { sent: 2 } });
  });

  it("sends a completed release to devices that join its target later, only the newest completed release of the app per target", async () => {
    await upload(t.app, V1);
    await upload(t.app, V2);
    await enrollGroup(3, "g");
    const first = await create({ versionCode: 1, target: { group: "g" }, percent: 100 });
    expect(first.body).toMatchObject({ status: "completed", progress: { targeted: 3, sent: 3 } });
    const [newcomer] = await enrollGroup(1, "g");
    expect((await adminRequest(t.app, "GET", `/admin/app-releases/${first.body.id}`)).body.progress).toMatchObject({ targeted: 4, sent: 3 });
    expect(await advanceRollouts(t.deps)).toEqual({ advanced: 0, paused: 0, toppedUp: 1 });
    expect((await adminRequest(t.app, "GET", `/admin/app-releases/${first.body.id}`)).body.progress).toMatchObject({ targeted: 4, sent: 4 });
    expect((await installCommands(1)).filter((command) => command.deviceId === newcomer!.deviceId)).toHaveLength(1);
    expect(await advanceRollouts(t.deps)).toEqual({ advanced: 0, paused: 0, toppedUp: 0 });

    // v2 completes for the same target: a later newcomer gets v2 only, never v1 first.
    const second = await create({ versionCode: 2, target: { group: "g" }, percent: 100 });
    expect(second.body).toMatchObject({ status: "completed", progress: { sent: 4 } });
    const [later] = await enrollGroup(1, "g");
    expect(await advanceRollouts(t.deps)).toEqual({ advanced: 0, paused: 0, toppedUp: 1 });
    const laterInstalls = (await installCommands()).filter((command) => command.deviceId === later!.deviceId);
    expect(laterInstalls.map((command) => (command.payload as { versionCode: number }).versionCode)).toEqual([2]);
  });

  it("refuses (409) a release of a lower version than one already released to devices of its target; a rollback is the way down", async () => {
    await upload(t.app, V1);
    await upload(t.app, V2);
    await enrollGroup(2, "a");
    await enrollGroup(2, "b");
    const newer = await create({ versionCode: 2, target: { group: "a" }, percent: 100 });
    expect(newer.body.status).toBe("completed");

    for (const target of [{ group: "a" }, { all: true }]) {
      const downgrade = await create({ versionCode: 1, target, percent: 100 });
      expect(downgrade.status).toBe(409);
      expect(downgrade.body.error.message).toMatch(/Version 2 .* lower version 1/);
    }
    expect(await database.db.appRelease.count()).toBe(1);
    // Another group never had v2.
    expect((await create({ versionCode: 1, target: { group: "b" }, percent: 100 })).status).toBe(201);

    expect((await adminRequest(t.app, "POST", `/admin/app-releases/${newer.body.id}/rollback`)).status).toBe(200);
    expect((await create({ versionCode: 1, target: { group: "a" }, percent: 100 })).status).toBe(201);
  });

  it("never sends a device a lower version than a newer release sent it or than it reports, whatever its groups: not by a release, an advance or a top-up", async () => {
    await upload(t.app, V1);
    await upload(t.app, V2);
    await upload(t.app, V4);
    const [both] = await enrollGroup(1, "g10");
    const [onlyG10] = await enrollGroup(1, "g10");
    const gX = await enrollGroup(2, "gX");
    await database.db.device.update({ where: { id: both!.deviceId }, data: { groups: ["g10", "gX"] } });
    const v4 = await create({ versionCode: 4, target: { group: "g10" }, percent: 100 });
    expect(v4.body.status).toBe("completed");
    // A device of gX reports v4, installed by hand.
    const beat = await request(t.app)
      .post("/v1/heartbeat")
      .set("Authorization", `Bearer ${gX[0]!.deviceToken}`)
      .send(heartbeatBody({ apps: [{ packageName: PACKAGE, versionCode: 4, running: false }] }));
    expect(beat.status).toBe(200);

    // The groups differ, so v2 may go to gX: only to its device that has neither.
    const v2 = await create({ versionCode: 2, target: { group: "gX" }, percent: 100 });
    expect(v2.status).toBe(201);
    expect((await installCommands(2)).map((command) => command.deviceId)).toEqual([gX[1]!.deviceId]);

    // A device v4 reached joins gX: the top-up leaves it on v4.
    await database.db.device.update({ where: { id: onlyG10!.deviceId }, data: { groups: ["g10", "gX"] } });
    // A newcomer to both groups gets v4 only.
    const [newcomer] = await enrollGroup(1, "g10");
    await database.db.device.update({ where: { id: newcomer!.deviceId }, data: { groups: ["g10", "gX"] } });
    await advanceRollouts(t.deps);
    expect((await installCommands(2)).map((command) => command.deviceId)).toEqual([gX[1]!.deviceId]);
    expect((await installCommands(4)).filter((command) => command.deviceId === newcomer!.deviceId)).toHaveLength(1);

    // Nor an advance: a release of v1 to a new group, at 1% then 100%, one of whose devices v4 reached.
    const [, g1Member] = await enrollGroup(2, "g1");
    await database.db.device.update({ where: { id: g1Member!.deviceId }, data: { groups: ["g1", "g10"] } });
    await advanceRollouts(t.deps);
    expect((await installCommands(4)).filter((command) => command.deviceId === g1Member!.deviceId)).toHaveLength(1);
    const v1 = await create({ versionCode: 1, target: { group: "g1" }, percent: 1 });
    expect(v1.status).toBe(201);
    expect((await adminRequest(t.app, "POST", `/admin/app-releases/${v1.body.id}/advance`, { percent: 100 })).status).toBe(200);
    expect((await installCommands(1)).map((command) => command.deviceId)).not.toContain(g1Member!.deviceId);
  });

  it("refuses (409) to roll back a release a newer one superseded on its devices, and leaves out of a rollback a device that reports a higher version", async () => {
    await upload(t.app, V1);
    await upload(t.app, V2);
    await upload(t.app, V4);
    const devices = await enrollGroup(3, "g1");
    const byId = new Map(devices.map((device) => [device.deviceId, device]));
    for (const device of devices) expect((await reportVersion(device, 1)).status).toBe(200);
    t.clock.advance(1);
    const older = await create({ versionCode: 2, target: { group: "g1" }, percent: 100 });
    for (const command of await installCommands(2)) expect((await report(byId.get(command.deviceId)!, command.requestId, "succeeded")).status).toBe(200);
    t.clock.advance(1);
    const newer = await create({ versionCode: 4, target: { group: "g1" }, percent: 100 });
    // Each device ran v2 (its install succeeded after its last app list, which said v1).
    expect(newer.body).toMatchObject({ previousVersionCode: 2, rollbackDevices: 3 });
    expect(newer.body.status).toBe("completed");
    const refused = await adminRequest(t.app, "POST", `/admin/app-releases/${older.body.id}/rollback`);
    expect(refused.status).toBe(409);
    expect(refused.body.error.message).toMatch(new RegExp(`Release ${newer.body.id} .* roll back the newer release first`));
    expect(await installCommands(1)).toHaveLength(0);
    expect((await adminRequest(t.app, "GET", `/admin/app-releases/${older.body.id}`)).body.status).toBe("completed");

    // Newest first: both roll back, down to v1, except on the device that runs a later version.
    expect((await adminRequest(t.app, "POST", `/admin/app-releases/${newer.body.id}/rollback`)).status).toBe(200);
    expect((await installCommands(2)).length).toBe(6);
    const beat = await request(t.app)
      .post("/v1/heartbeat")
      .set("Authorization", `Bearer ${devices[0]!.deviceToken}`)
      .send(heartbeatBody({ apps: [{ packageName: PACKAGE, versionCode: 7, running: false }] }));
    expect(beat.status).toBe(200);
    const rolledBack = await adminRequest(t.app, "POST", `/admin/app-releases/${older.body.id}/rollback`);
    expect(rolledBack.status).toBe(200);
    expect((await installCommands(1)).map((command) => command.deviceId).sort()).toEqual([devices[1]!.deviceId, devices[2]!.deviceId].sort());
  });

  it("counts a device installed only while it runs the release's version: one that reports another version after its install succeeded is replaced", async () => {
    await upload(t.app, V1);
    await upload(t.app, V2);
    const devices = await enrollGroup(2, "g");
    const byId = new Map(devices.map((device) => [device.deviceId, device]));
    const beat = (device: Device, versionCode: number) =>
      request(t.app)
        .post("/v1/heartbeat")
        .set("Authorization", `Bearer ${device.deviceToken}`)
        .send(heartbeatBody({ apps: [{ packageName: PACKAGE, versionCode, running: false }] }));
    // Both run v1 before the release.
    for (const device of devices) expect((await beat(device, 1)).status).toBe(200);
    t.clock.advance(1);
    const created = await create({ versionCode: 2, target: { group: "g" }, percent: 100 });
    for (const command of await installCommands(2)) expect((await report(byId.get(command.deviceId)!, command.requestId, "succeeded")).status).toBe(200);
    // Succeeded, no heartbeat since: installed, though the last report (from before) says v1.
    const done = await adminRequest(t.app, "GET", `/admin/app-releases/${created.body.id}`);
    expect(done.body.progress).toEqual({ targeted: 2, sent: 2, installed: 2, pending: 0, failed: 0, replaced: 0 });

    // One reports v2, the other was taken back to v1 by hand.
    t.clock.advance(1);
    expect((await beat(devices[0]!, 2)).status).toBe(200);
    expect((await beat(devices[1]!, 1)).status).toBe(200);
    const detail = await adminRequest(t.app, "GET", `/admin/app-releases/${created.body.id}`);
    expect(detail.body.progress).toEqual({ targeted: 2, sent: 2, installed: 1, pending: 0, failed: 0, replaced: 1 });
    expect(detail.body.devices.map((device: { deviceId: string; status: string }) => [device.deviceId, device.status])).toEqual([
      [devices[1]!.deviceId, "replaced"],
      [devices[0]!.deviceId, "installed"],
    ]);
    // Back on v2: installed again.
    expect((await beat(devices[1]!, 2)).status).toBe(200);
    expect((await adminRequest(t.app, "GET", `/admin/app-releases/${created.body.id}`)).body.progress).toMatchObject({ installed: 2, replaced: 0 });
  });

  it("rolls each device back to the version it ran before: never a version never released or withdrawn by another rollback, never a device whose install failed", async () => {
    await upload(t.app, V1);
    await upload(t.app, V2);
    await upload(t.app, V4);
    await upload(t.app, ROTATED);
    const devices = await enrollGroup(8, "lab");
    const byId = new Map(devices.map((device) => [device.deviceId, device]));
    const rollback = (id: string) => adminRequest(t.app, "POST", `/admin/app-releases/${id}/rollback`);
    const sentSince = async (since: number) => (await installCommands()).slice(since);
    const codesOf = (commands: Awaited<ReturnType<typeof installCommands>>) =>
      commands.map((command) => (command.payload as { versionCode: number }).versionCode);
    /** Devices report their install results, then an app list with the version each runs. */
    async function finish(versionCode: number, fails: string[] = []) {
      for (const command of await installCommands(versionCode)) {
        if (command.status !== "queued") continue;
        const failed = fails.includes(command.deviceId);
        expect(
          (
            await report(
              byId.get(command.deviceId)!,
              command.requestId,
              failed ? "failed" : "succeeded",
              failed ? "INSTALL_FAILED_INSUFFICIENT_STORAGE" : undefined,
            )
          ).status,
        ).toBe(200);
      }
      t.clock.advance(1);
    }
    async function runs(versionCode: number, which: Device[]) {
      for (const device of which) expect((await reportVersion(device, versionCode)).status).toBe(200);
      t.clock.advance(1);
    }

    // R1: v1 to the whole group. v2 is uploaded but never released.
    expect((await create({ versionCode: 1, target: { group: "lab" }, percent: 100 })).body.status).toBe("completed");
    await finish(1);
    await runs(1, devices);

    // R2: v4 to 25%. A rollback takes its devices back to v1, what they ran, not to v2.
    const r2 = await create({ versionCode: 4, target: { group: "lab" }, percent: 25 });
    expect(r2.body).toMatchObject({ previousVersionCode: 1, rollbackDevices: 2, progress: { sent: 2 } });
    await finish(4);
    let before = (await installCommands()).length;
    expect((await rollback(r2.body.id)).body).toMatchObject({ status: "rolled_back", previousVersionCode: 1, rollbackDevices: 2 });
    expect(codesOf(await sentSince(before))).toEqual([1, 1]);
    await finish(1);
    await runs(1, devices);

    // R3: v4 to everyone; one device's install fails. Its rollback sends v1 to the 7 others, nothing to it.
    const r3 = await create({ versionCode: 4, target: { group: "lab" }, percent: 100 });
    expect(r3.body.status).toBe("completed");
    const failing = (await installCommands(4)).find((command) => command.status === "queued")!.deviceId;
    await finish(4, [failing]);
    await runs(
      4,
      devices.filter((device) => device.deviceId !== failing),
    );
    before = (await installCommands()).length;
    const r3Back = await rollback(r3.body.id);
    expect(r3Back.body).toMatchObject({ status: "rolled_back", previousVersionCode: 1, rollbackDevices: 7 });
    const r3Sent = await sentSince(before);
    expect(codesOf(r3Sent)).toEqual(Array(7).fill(1));
    expect(r3Sent.map((command) => command.deviceId)).not.toContain(failing);
    const r3Detail = await adminRequest(t.app, "GET", `/admin/app-releases/${r3.body.id}`);
    expect(r3Detail.body.devices[0]).toMatchObject({
      deviceId: failing,
      status: "failed",
      fromVersionCode: 1,
      rollbackSkipped: expect.stringMatching(/^its install of version 4 failed/),
    });
    await finish(1);
    await runs(1, devices);

    // R4: v5 at 5%, auto-advancing; its download fails and the job pauses it. Its rollback sends nothing (not v4, which R3 withdrew).
    const r4 = await create({ versionCode: 5, target: { group: "lab" }, percent: 5, autoAdvance: true });
    expect(r4.body.progress.sent).toBe(1);
    await finish(
      5,
      devices.map((device) => device.deviceId),
    );
    expect(await advanceRollouts(t.deps)).toMatchObject({ paused: 1 });
    before = (await installCommands()).length;
    expect((await rollback(r4.body.id)).body).toMatchObject({ status: "rolled_back", previousVersionCode: null, rollbackDevices: 0 });
    expect(await sentSince(before)).toEqual([]);

    // R5: v5 to everyone; its rollback returns the whole fleet to v1.
    expect((await create({ versionCode: 5, target: { group: "lab" }, percent: 100 })).body).toMatchObject({
      status: "completed",
      previousVersionCode: 1,
      rollbackDevices: 8,
    });
    await finish(5);
    await runs(5, devices);
    before = (await installCommands()).length;
    const r5 = (await adminRequest(t.app, "GET", "/admin/apps")).body.apps[0].releases[0];
    expect((await rollback(r5.id)).body).toMatchObject({ previousVersionCode: 1, rollbackDevices: 8 });
    expect(codesOf(await sentSince(before))).toEqual(Array(8).fill(1));

    // A device joining the group is topped up with v1, what the fleet runs.
    const [newcomer] = await enrollGroup(1, "lab");
    await advanceRollouts(t.deps);
    expect(codesOf((await installCommands()).filter((command) => command.deviceId === newcomer!.deviceId))).toEqual([1]);
    // v2 was never released: nothing ever sent it.
    expect(await installCommands(2)).toEqual([]);
    // The audit says what each rollback sent.
    const audits = await database.db.auditLog.findMany({ where: { action: "app_release.rollback" }, orderBy: { id: "asc" } });
    expect(audits.map((entry) => (entry.details as { sent: Record<string, number> }).sent)).toEqual([{ 1: 2 }, { 1: 7 }, {}, { 1: 8 }]);
  });

  it("takes an advance and a rollback sent together one after the other: never a 500, and none of the release's installs left queued", async () => {
    await upload(t.app, V1);
    await upload(t.app, V2);
    const devices = await enrollGroup(80, "race");
    for (const device of devices) expect((await reportVersion(device, 1)).status).toBe(200);
    t.clock.advance(1);
    for (const percent of [90, 100, 90, 100]) {
      const created = await create({ versionCode: 2, target: { group: "race" }, percent: 5 });
      expect(created.status).toBe(201);
      const [advanced, rolledBack] = await Promise.all([
        adminRequest(t.app, "POST", `/admin/app-releases/${created.body.id}/advance`, { percent }),
        adminRequest(t.app, "POST", `/admin/app-releases/${created.body.id}/rollback`),
      ]);
      expect([200, 409]).toContain(advanced.status);
      expect(rolledBack.status).toBe(200);
      expect(rolledBack.body.status).toBe("rolled_back");
      expect((await installCommands(2)).filter((command) => command.status === "queued")).toEqual([]);
      // Every device the release reached, before or after the advance, was sent back to v1.
      const rows = await database.db.appReleaseDevice.findMany({ where: { releaseId: created.body.id } });
      expect(rows.filter((row) => row.versionCode !== 1)).toEqual([]);
      expect(rolledBack.body.rollbackDevices).toBe(rows.length);
    }
  });

  it("answers the second of two rollbacks sent together 409 with the release's state after the first", async () => {
    await upload(t.app, V1);
    await upload(t.app, V2);
    const devices = await enrollGroup(4, "race");
    for (const device of devices) expect((await reportVersion(device, 1)).status).toBe(200);
    t.clock.advance(1);
    const created = await create({ versionCode: 2, target: { group: "race" }, percent: 50 });
    expect((await adminRequest(t.app, "POST", `/admin/app-releases/${created.body.id}/pause`)).status).toBe(200);
    const answers = await Promise.all([1, 2].map(() => adminRequest(t.app, "POST", `/admin/app-releases/${created.body.id}/rollback`)));
    expect(answers.map((answer) => answer.status).sort()).toEqual([200, 409]);
    expect(answers.find((answer) => answer.status === 409)!.body.error.message).toBe("The release is already rolled_back");
  });

  it("takes the rollout job's top-up and a rollback sent meanwhile one after the other: none of the release's installs left queued", async () => {
    await upload(t.app, V1);
    await upload(t.app, V2);
    const [first] = await enrollGroup(1, "race");
    expect((await reportVersion(first!, 1)).status).toBe(200);
    t.clock.advance(1);
    const created = await create({ versionCode: 2, target: { group: "race" }, percent: 100 });
    expect(created.body.status).toBe("completed");
    // Newcomers the job tops up as the rollback arrives.
    for (const device of await enrollGroup(80, "race")) expect((await reportVersion(device, 1)).status).toBe(200);
    t.clock.advance(1);
    const [, rolledBack] = await Promise.all([advanceRollouts(t.deps), adminRequest(t.app, "POST", `/admin/app-releases/${created.body.id}/rollback`)]);
    expect(rolledBack.status).toBe(200);
    expect((await installCommands(2)).filter((command) => command.status === "queued")).toEqual([]);
    const rows = await database.db.appReleaseDevice.findMany({ where: { releaseId: created.body.id } });
    expect(rows.filter((row) => row.versionCode !== 1)).toEqual([]);
  });

  it("leaves a device that had no earlier version on the release's, sends a pending device back, and leaves one whose earlier version left the catalogue", async () => {
    await upload(t.app, V1);
    await upload(t.app, V2);
    await upload(t.app, V4);
    const devices = await enrollGroup(3, "g");
    const [fresh, onV1, onV2] = devices as [Device, Device, Device];
    expect((await reportVersion(onV1, 1)).status).toBe(200);
    expect((await reportVersion(onV2, 2)).status).toBe(200);
    t.clock.advance(1);
    const created = await create({ versionCode: 4, target: { group: "g" }, percent: 100 });
    expect(created.body).toMatchObject({ status: "completed", rollbackDevices: 2 });
    // fresh installs it; the others' installs are still pending.
    const freshCommand = (await installCommands(4)).find((command) => command.deviceId === fresh.deviceId)!;
    expect((await report(fresh, freshCommand.requestId, "succeeded")).status).toBe(200);
    // v2 goes from the catalogue (no release in progress holds it).
    expect((await adminRequest(t.app, "DELETE", `/admin/apps/${PACKAGE}/versions/2`)).status).toBe(204);

    const rolledBack = await adminRequest(t.app, "POST", `/admin/app-releases/${created.body.id}/rollback`);
    expect(rolledBack.status).toBe(200);
    expect(rolledBack.body).toMatchObject({ previousVersionCode: 1, rollbackDevices: 1 });
    expect((await installCommands(1)).map((command) => command.deviceId)).toEqual([onV1.deviceId]);
    const detail = await adminRequest(t.app, "GET", `/admin/app-releases/${created.body.id}`);
    const byDevice = new Map(detail.body.devices.map((device: { deviceId: string }) => [device.deviceId, device]));
    expect(byDevice.get(fresh.deviceId)).toMatchObject({
      versionCode: 4,
      fromVersionCode: null,
      status: "installed",
      rollbackSkipped: "it had no earlier version of the app when the release was sent: it keeps version 4 (uninstall_app removes it)",
    });
    // Its app list said v1 before the release, and its v4 install may have reached it: pending
    // until a report since the rollback, or the v1 install's result, says so.
    expect(byDevice.get(onV1.deviceId)).toMatchObject({ versionCode: 1, fromVersionCode: 1, status: "pending", rollbackSkipped: null });
    expect(byDevice.get(onV2.deviceId)).toMatchObject({
      versionCode: 4,
      fromVersionCode: 2,
      rollbackSkipped: "version 2, which it ran before the release, is no longer in the catalogue: it keeps version 4",
    });
    // It reports v1 after the rollback: installed.
    t.clock.advance(1);
    expect((await reportVersion(onV1, 1)).status).toBe(200);
    const after = await adminRequest(t.app, "GET", `/admin/app-releases/${created.body.id}`);
    expect(after.body.devices.find((device: { deviceId: string }) => device.deviceId === onV1.deviceId)).toMatchObject({ versionCode: 1, status: "installed" });
  });

  it("sends an active release to devices that join its share, and auto-advances one whose share already runs a newer version", async () => {
    await upload(t.app, V1);
    await upload(t.app, V2);
    await upload(t.app, V4);
    // Created while its group is empty: sent to nobody.
    const created = await create({ versionCode: 2, target: { group: "lab" }, percent: 5, autoAdvance: true });
    expect(created.body).toMatchObject({ percent: 5, progress: { targeted: 0, sent: 0 } });
    // An empty target is no reason to widen: it waits for devices.
    expect(await advanceRollouts(t.deps)).toEqual({ advanced: 0, paused: 0, toppedUp: 0 });
    const devices = await enrollGroup(20, "lab");
    const byId = new Map(devices.map((device) => [device.deviceId, device]));
    // 20 join: the job sends it to its 5% (1 device), then advances once that one finished.
    expect(await advanceRollouts(t.deps)).toEqual({ advanced: 0, paused: 0, toppedUp: 1 });
    const view = () => adminRequest(t.app, "GET", `/admin/app-releases/${created.body.id}`);
    expect((await view()).body).toMatchObject({ percent: 5, progress: { targeted: 20, sent: 1, pending: 1 } });
    for (const command of await installCommands(2)) await report(byId.get(command.deviceId)!, command.requestId, "succeeded");
    expect(await advanceRollouts(t.deps)).toEqual({ advanced: 1, paused: 0, toppedUp: 0 });
    expect((await view()).body).toMatchObject({ percent: 25, progress: { sent: 5 } });
    expect((await adminRequest(t.app, "POST", `/admin/app-releases/${created.body.id}/rollback`)).status).toBe(200);

    // Every device of the share already runs v4: nothing to send, nothing to wait for.
    const others = await enrollGroup(4, "tills");
    for (const device of others) expect((await reportVersion(device, 4)).status).toBe(200);
    const ahead = await create({ versionCode: 2, target: { group: "tills" }, percent: 5, autoAdvance: true });
    expect(ahead.body).toMatchObject({ percent: 5, progress: { targeted: 4, sent: 0 } });
    expect(await advanceRollouts(t.deps)).toEqual({ advanced: 1, paused: 0, toppedUp: 0 });
    expect(await advanceRollouts(t.deps)).toEqual({ advanced: 1, paused: 0, toppedUp: 0 });
    expect((await adminRequest(t.app, "GET", `/admin/app-releases/${ahead.body.id}`)).body).toMatchObject({
      status: "completed",
      percent: 100,
      progress: { sent: 0 },
    });
  });

  it("keeps advancing the other releases when one of them fails", async () => {
    await upload(t.app, V1);
    await upload(t.app, V2);
    const devices = await enrollGroup(20, "g");
    const byId = new Map(devices.map((device) => [device.deviceId, device]));
    const created = await create({ versionCode: 2, target: { group: "g" }, autoAdvance: true });
    for (const command of await installCommands(2)) await report(byId.get(command.deviceId)!, command.requestId, "succeeded");
    // A broken release ahead of it in the job's order (a target no schema allows).
    await database.db.appRelease.create({
      data: {
        id: "00000000-0000-4000-8000-000000000001",
        packageName: PACKAGE,
        versionId: (await database.db.appVersion.findFirstOrThrow({ where: { versionCode: 1 } })).id,
        versionCode: 1,
        target: { group: 42 },
        percent: 5,
        autoAdvance: true,
        updatedAt: new Date(0),
      },
    });
    expect(await advanceRollouts(t.deps)).toEqual({ advanced: 1, paused: 0, toppedUp: 0 });
    expect((await adminRequest(t.app, "GET", `/admin/app-releases/${created.body.id}`)).body.percent).toBe(25);
  });
});

describe("required apps", () => {
  it("a new version goes to the devices whose policy requires it and that lack it, once the catalogue can satisfy them", async () => {
    const [reporting, lacking] = await enrollGroup(2, "kiosks");
    const policy = await adminRequest(t.app, "POST", "/admin/device-policies", {
      name: "Fixture required",
      settings: { requiredApps: [{ packageName: PACKAGE, minVersionCode: 1 }] },
    });
    expect(policy.body.warnings).toEqual([expect.objectContaining({ path: `requiredApps.${PACKAGE}` })]);
    await adminRequest(t.app, "POST", `/admin/device-policies/${policy.body.id}/assignments`, { group: "kiosks" });
    expect(await t.dispatchPolicies()).toBe(2);
    expect(await installCommands()).toEqual([]);

    // One device has the app already (installed by hand): it reports it.
    const heartbeat = await request(t.app)
      .post("/v1/heartbeat")
      .auth(reporting!.deviceToken, { type: "bearer" })
      .send(heartbeatBody({ apps: [{ packageName: PACKAGE, versionCode: 1, running: false }] }));
    expect(heartbeat.status).toBe(200);

    expect((await upload(t.app, V1)).status).toBe(201);
    expect((await database.db.policyDispatch.findMany({ orderBy: { deviceId: "asc" } })).map((row) => row.deviceId)).toEqual(
      [reporting!.deviceId, lacking!.deviceId].sort(),
    );
    await t.dispatchPolicies();
    const installs = await installCommands();
    expect(installs.map((command) => command.deviceId)).toEqual([lacking!.deviceId]);
    expect(installs[0]?.payload).toMatchObject({ packageName: PACKAGE, versionCode: 1, sha256: await sha256Of(V1) });

    // v2 satisfies nobody the catalogue could not satisfy before: nothing is queued.
    expect((await upload(t.app, V2)).status).toBe(201);
    expect(await database.db.policyDispatch.count()).toBe(0);
  });
});

describe("required apps and releases", () => {
  async function requireFixture(group: string) {
    const policy = await adminRequest(t.app, "POST", "/admin/device-policies", {
      name: `Fixture for ${group}`,
      settings: { requiredApps: [{ packageName: PACKAGE, minVersionCode: 1 }] },
    });
    expect(policy.status).toBe(201);
    expect((await adminRequest(t.app, "POST", `/admin/device-policies/${policy.body.id}/assignments`, { group })).status).toBe(201);
  }

  it("never installs a version whose release was rolled back, nor one still rolling out: the newest completed release's version, else the newest never released", async () => {
    await upload(t.app, V1);
    await upload(t.app, V2);
    await enrollGroup(2, "staged");
    const created = await adminRequest(t.app, "POST", `/admin/apps/${PACKAGE}/releases`, { versionCode: 2, target: { group: "staged" }, percent: 50 });
    expect(created.status).toBe(201);

    // v2 is rolling out: a required app does not jump its queue.
    const [early] = await enrollGroup(1, "required-early");
    await requireFixture("required-early");
    await t.dispatchPolicies();
    const earlyInstalls = (await installCommands()).filter((command) => command.deviceId === early!.deviceId);
    expect(earlyInstalls.map((command) => (command.payload as { versionCode: number }).versionCode)).toEqual([1]);
    const policy = await adminRequest(t.app, "GET", `/admin/devices/${early!.deviceId}/policy`);
    expect(policy.body.compliance.missingApps).toEqual([expect.objectContaining({ packageName: PACKAGE, catalogueVersionCode: 1 })]);

    // v2 rolled back: withdrawn.
    expect((await adminRequest(t.app, "POST", `/admin/app-releases/${created.body.id}/rollback`)).status).toBe(200);
    const [late] = await enrollGroup(1, "required-late");
    await requireFixture("required-late");
    await t.dispatchPolicies();
    const lateInstalls = (await installCommands()).filter((command) => command.deviceId === late!.deviceId);
    expect(lateInstalls.map((command) => (command.payload as { versionCode: number }).versionCode)).toEqual([1]);

    // Released again to completion: v2 is what required apps install from then on.
    const again = await adminRequest(t.app, "POST", `/admin/apps/${PACKAGE}/releases`, { versionCode: 2, target: { group: "staged" }, percent: 100 });
    expect(again.body.status).toBe("completed");
    const [last] = await enrollGroup(1, "required-last");
    await requireFixture("required-last");
    await t.dispatchPolicies();
    const lastInstalls = (await installCommands()).filter((command) => command.deviceId === last!.deviceId);
    expect(lastInstalls.map((command) => (command.payload as { versionCode: number }).versionCode)).toEqual([2]);
  });

  it("says when the versions that would satisfy a required app exist but were withdrawn by a rollback, or are still rolling out", async () => {
    await upload(t.app, V1);
    await upload(t.app, V4);
    await upload(t.app, ROTATED);
    await enrollGroup(2, "lab");
    const rolledBack = await adminRequest(t.app, "POST", `/admin/apps/${PACKAGE}/releases`, { versionCode: 4, target: { group: "lab" }, percent: 100 });
    expect((await adminRequest(t.app, "POST", `/admin/app-releases/${rolledBack.body.id}/rollback`)).status).toBe(200);
    const rolling = await adminRequest(t.app, "POST", `/admin/apps/${PACKAGE}/releases`, { versionCode: 5, target: { group: "lab" }, percent: 50 });
    expect(rolling.status).toBe(201);

    const [device] = await enrollGroup(1, "needs-4");
    const policy = await adminRequest(t.app, "POST", "/admin/device-policies", {
      name: "Needs 4",
      settings: { requiredApps: [{ packageName: PACKAGE, minVersionCode: 4 }] },
    });
    expect((await adminRequest(t.app, "POST", `/admin/device-policies/${policy.body.id}/assignments`, { group: "needs-4" })).status).toBe(201);
    const state = await adminRequest(t.app, "GET", `/admin/devices/${device!.deviceId}/policy`);
    expect(state.body.compliance.missingApps).toEqual([
      expect.objectContaining({
        packageName: PACKAGE,
        catalogueVersionCode: null,
        reason: `${PACKAGE} must be at version 4 or later; the device does not report it; the app catalogue's versions 4 or later are not sent to required apps (withdrawn by a rollback of their release: 4; waiting for their release to complete: 5)`,
      }),
    ]);
  });

  it("a release completing queues the devices whose requirement its version newly satisfies", async () => {
    await upload(t.app, V1);
    await enrollGroup(1, "g");
    expect((await adminRequest(t.app, "POST", `/admin/apps/${PACKAGE}/releases`, { versionCode: 1, target: { group: "g" }, percent: 100 })).status).toBe(201);
    const [waiting] = await enrollGroup(1, "needs-v2");
    const policy = await adminRequest(t.app, "POST", "/admin/device-policies", {
      name: "Needs v2",
      settings: { requiredApps: [{ packageName: PACKAGE, minVersionCode: 2 }] },
    });
    await adminRequest(t.app, "POST", `/admin/device-policies/${policy.body.id}/assignments`, { group: "needs-v2" });
    // v2 uploaded but not released: required apps wait for its release.
    await upload(t.app, V2);
    await t.dispatchPolicies();
    expect((await installCommands()).filter((command) => command.deviceId === waiting!.deviceId)).toEqual([]);

    const released = await adminRequest(t.app, "POST", `/admin/apps/${PACKAGE}/releases`, { versionCode: 2, target: { group: "g" }, percent: 100 });
    expect(released.body.status).toBe("completed");
    expect((await database.db.policyDispatch.findMany()).map((row) => row.deviceId)).toEqual([waiting!.deviceId]);
    await t.dispatchPolicies();
    const installs = (await installCommands()).filter((command) => command.deviceId === waiting!.deviceId);
    expect(installs.map((command) => (command.payload as { versionCode: number }).versionCode)).toEqual([2]);
  });
});

describe("GET /v1/app-files/{sha256}", () => {
  async function releasedUrl(): Promise<{ url: URL; sha256: string }> {
    await upload(t.app, V1);
    await enrollGroup(1, "one");
    await adminRequest(t.app, "POST", `/admin/apps/${PACKAGE}/releases`, { versionCode: 1, target: { group: "one" }, percent: 100 });
    const [command] = await installCommands(1);
    const payload = command!.payload as { url: string; sha256: string };
    return { url: new URL(payload.url), sha256: payload.sha256 };
  }

  it("serves the APK to the signed URL of an install command, Range requests included", async () => {
    const { url, sha256 } = await releasedUrl();
    const res = await request(t.app)
      .get(`${url.pathname}${url.search}`)
      .buffer(true)
      .parse((response, done) => {
        const chunks: Buffer[] = [];
        response.on("data", (chunk: Buffer) => chunks.push(chunk));
        response.on("end", () => done(null, Buffer.concat(chunks)));
      });
    expect(res.status).toBe(200);
    expect(res.headers["content-type"]).toBe("application/vnd.android.package-archive");
    expect(
      createHash("sha256")
        .update(res.body as Buffer)
        .digest("hex"),
    ).toBe(sha256);

    const range = await request(t.app).get(`${url.pathname}${url.search}`).set("Range", "bytes=0-3");
    expect(range.status).toBe(206);
    expect(range.headers["content-range"]).toMatch(/^bytes 0-3\//);

    // A resumed download that has the whole file already: 416 in the error contract, not a 500.
    const size = (res.body as Buffer).length;
    for (const past of [`bytes=${size}-`, "bytes=5-2"]) {
      const beyond = await request(t.app).get(`${url.pathname}${url.search}`).set("Range", past);
      expect({ past, status: beyond.status, code: beyond.body.error?.code }).toEqual({ past, status: 416, code: "range_not_satisfiable" });
      expect(beyond.headers["content-range"]).toBe(`bytes */${size}`);
    }
  });

  it("refuses an altered or expired URL with 403", async () => {
    const { url } = await releasedUrl();
    const signature = url.searchParams.get("signature")!;
    const tampered = new URL(url);
    tampered.searchParams.set("expires", String(Number(url.searchParams.get("expires")) + 3600));
    const res = await request(t.app).get(`${tampered.pathname}${tampered.search}`);
    expect(res.status).toBe(403);
    expect(res.body.error.message).toMatch(/signature/);

    // The same instant written otherwise (a leading zero) is an altered URL too.
    const rewritten = new URL(url);
    rewritten.searchParams.set("expires", `0${url.searchParams.get("expires")}`);
    expect((await request(t.app).get(`${rewritten.pathname}${rewritten.search}`)).status).toBe(403);

    const otherFile = await request(t.app).get(`/v1/app-files/${"b".repeat(64)}${url.search}`);
    expect(otherFile.status).toBe(403);
    const badSignature = new URL(url);
    badSignature.searchParams.set("signature", `${signature.slice(0, 63)}${signature.endsWith("0") ? "1" : "0"}`);
    expect((await request(t.app).get(`${badSignature.pathname}${badSignature.search}`)).status).toBe(403);

    t.clock.advance(Number(url.searchParams.get("expires")) - Math.floor(Date.now() / 1000) + 1);
    const expired = await request(t.app).get(`${url.pathname}${url.search}`);
    expect(expired.status).toBe(403);
    expect(expired.body.error.message).toMatch(/expired/);
  });
});
