import { createHash, randomUUID } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { EffectivePolicyResponse, signAdminRequest } from "@mdm/contracts";
import request from "supertest";
import { expireCommands } from "../../jobs/maintenance";
import {
  TEST_ADMIN_KEY,
  TEST_HMAC_SECRET,
  TEST_HOST,
  type TestApp,
  type TestDatabase,
  adminRequest,
  createTestApp,
  createTestDatabase,
  enrollDevice,
  resetTables,
} from "../../test";
import { REQUIRED_APP_MAX_ATTEMPTS, REQUIRED_APP_RETRY_BASE_SECONDS, REQUIRED_APP_RETRY_MAX_SECONDS } from "./required-app-installs";

// A required app whose install fails or expires is sent again after a backoff, from state
// in PostgreSQL (any instance, after a restart), until the attempts run out; the device's
// compliance says what failed and when the next attempt is.

const SCANNER = "com.example.scanner";
const PUBLIC_API_URL = "https://mdm.example.test";
const FIXTURES = path.resolve(__dirname, "../../../test-fixtures/apk");
const FIXTURE = "com.keelson.fixture";
const FIXTURE_V1 = path.join(FIXTURES, "fixture-v1.apk");
const FIXTURE_V2 = path.join(FIXTURES, "fixture-v2.apk");

let database: TestDatabase;
let t: TestApp;
/** Reads as an admin: its clock is never moved, as a signed admin request carries the real time. */
let reader: TestApp;
beforeAll(async () => {
  database = await createTestDatabase();
  reader = createTestApp(database.db);
});
afterAll(() => database.close());
beforeEach(async () => {
  await resetTables(database.db);
  t = createTestApp(database.db, { env: { PUBLIC_API_URL } });
});

async function addScanner(versionCode: number) {
  await database.db.catalogueApp.upsert({ where: { packageName: SCANNER }, create: { packageName: SCANNER, certSha256: "c".repeat(64) }, update: {} });
  await database.db.appVersion.create({
    data: {
      id: randomUUID(),
      packageName: SCANNER,
      versionCode,
      sha256: createHash("sha256").update(`scanner v${versionCode}`).digest("hex"),
      sizeBytes: 1000n,
      certSha256: "c".repeat(64),
    },
  });
}

async function requireScanner(deviceId: string) {
  const policy = await adminRequest(t.app, "POST", "/admin/device-policies", {
    name: "Scanner",
    settings: { requiredApps: [{ packageName: SCANNER, minVersionCode: 5 }] },
  });
  expect(policy.status).toBe(201);
  expect((await adminRequest(t.app, "POST", `/admin/device-policies/${policy.body.id}/assignments`, { deviceId })).status).toBe(201);
  return policy.body.id as string;
}

async function upload(file: string) {
  const sha256 = createHash("sha256")
    .update(await readFile(file))
    .digest("hex");
  const pathWithQuery = `/admin/apps?sha256=${sha256}`;
  const headers = await signAdminRequest({ adminKey: TEST_ADMIN_KEY, hmacSecret: TEST_HMAC_SECRET, method: "POST", host: TEST_HOST, pathWithQuery, body: "" });
  return request(t.app).post(pathWithQuery).set(headers).set("Host", TEST_HOST).attach("file", file);
}

const installs = (deviceId: string) =>
  database.db.command.findMany({
    where: { deviceId, type: "install_app" },
    orderBy: { createdAt: "asc" },
    select: { requestId: true, status: true, payload: true },
  });

async function missingScanner(deviceId: string) {
  const res = await adminRequest(reader.app, "GET", `/admin/devices/${deviceId}/policy`);
  expect(res.status).toBe(200);
  const [missing] = EffectivePolicyResponse.parse(res.body).compliance.missingApps;
  return missing!;
}

describe("required app installs that fail", () => {
  it("are sent again after a doubling delay, never before it, and no more after REQUIRED_APP_MAX_ATTEMPTS; compliance shows the failure and the next attempt", async () => {
    await addScanner(7);
    const device = await enrollDevice(t.app);
    await requireScanner(device.deviceId);
    await t.dispatchPolicies();
    const [first] = await installs(device.deviceId);
    expect(first).toMatchObject({ status: "queued", payload: expect.objectContaining({ packageName: SCANNER, versionCode: 7 }) });
    expect((await missingScanner(device.deviceId)).install).toMatchObject({ attempts: 1, lastFailure: null, nextAttemptAt: null, gaveUp: false });

    // The first one expires unacknowledged (the device was off for its whole TTL).
    t.clock.advance(t.deps.env.COMMAND_DEFAULT_TTL_SECONDS + 1);
    expect(await expireCommands(t.deps)).toBe(1);
    const expiredAt = t.clock.now().getTime();
    const afterExpiry = await missingScanner(device.deviceId);
    expect(afterExpiry.install).toMatchObject({
      versionCode: 7,
      attempts: 1,
      maxAttempts: REQUIRED_APP_MAX_ATTEMPTS,
      requestId: first!.requestId,
      lastFailure: "not acknowledged before its TTL elapsed",
      gaveUp: false,
    });
    const firstRetryAt = new Date(afterExpiry.install!.nextAttemptAt!).getTime();
    expect(Math.abs(firstRetryAt - expiredAt - REQUIRED_APP_RETRY_BASE_SECONDS * 1000)).toBeLessThan(2000);
    expect(afterExpiry.reason).toContain(`failed (not acknowledged before its TTL elapsed): it sends it again at ${afterExpiry.install!.nextAttemptAt}`);

    // Retries are sent by the worker of another instance, which holds nothing of them in memory.
    const restarted = createTestApp(database.db, { env: { PUBLIC_API_URL } });
    let sent = 1;
    for (let attempt = 1; attempt < REQUIRED_APP_MAX_ATTEMPTS; attempt++) {
      const { nextAttemptAt } = (await missingScanner(device.deviceId)).install!;
      const delay = Math.min(REQUIRED_APP_RETRY_MAX_SECONDS, REQUIRED_APP_RETRY_BASE_SECONDS * 2 ** (attempt - 1));
      // Not before the delay: the worker runs, and nothing is sent.
      t.clock.advance((new Date(nextAttemptAt!).getTime() - t.clock.now().getTime()) / 1000 - 5);
      await t.dispatchPolicies();
      expect(await installs(device.deviceId)).toHaveLength(sent);
      // Once it is due: sent.
      t.clock.advance(6);
      restarted.clock.advance((t.clock.now().getTime() - restarted.clock.now().getTime()) / 1000);
      await restarted.dispatchPolicies();
      const commands = await installs(device.deviceId);
      expect(commands).toHaveLength(++sent);
      const latest = commands.at(-1)!;
      expect(latest).toMatchObject({ status: "queued", payload: expect.objectContaining({ versionCode: 7 }) });
      expect((await missingScanner(device.deviceId)).install).toMatchObject({ attempts: attempt + 1, requestId: latest.requestId, nextAttemptAt: null });

      // The device tries and fails: the next delay doubles (capped).
      const failed = await request(t.app)
        .post("/v1/action-result")
        .auth(device.deviceToken, { type: "bearer" })
        .send({ requestId: latest.requestId, status: "failed", error: `INSTALL_FAILED_INSUFFICIENT_STORAGE (try ${attempt + 1})` });
      expect(failed.status).toBe(200);
      const state = (await missingScanner(device.deviceId)).install!;
      expect(state.lastFailure).toBe(`INSTALL_FAILED_INSUFFICIENT_STORAGE (try ${attempt + 1})`);
      if (attempt + 1 < REQUIRED_APP_MAX_ATTEMPTS) {
        const next = new Date(state.nextAttemptAt!).getTime() - new Date(state.failedAt!).getTime();
        expect(next).toBe(Math.min(REQUIRED_APP_RETRY_MAX_SECONDS, delay * 2) * 1000);
      }
    }

    // Out of attempts: it stops, and says so.
    const gaveUp = await missingScanner(device.deviceId);
    expect(gaveUp.install).toMatchObject({ attempts: REQUIRED_APP_MAX_ATTEMPTS, nextAttemptAt: null, gaveUp: true });
    expect(gaveUp.reason).toContain(
      `failed (INSTALL_FAILED_INSUFFICIENT_STORAGE (try ${REQUIRED_APP_MAX_ATTEMPTS})) ${REQUIRED_APP_MAX_ATTEMPTS} times: it stopped retrying`,
    );
    t.clock.advance(7 * 24 * 3600);
    await t.dispatchPolicies();
    expect(await installs(device.deviceId)).toHaveLength(REQUIRED_APP_MAX_ATTEMPTS);
    expect(await database.db.policyDispatch.count()).toBe(0);
  });

  it("wait, when due, for another install of the package under way (a release's) to end, and forget an app the device no longer lacks", async () => {
    await addScanner(7);
    const device = await enrollDevice(t.app);
    await requireScanner(device.deviceId);
    await t.dispatchPolicies();
    const [first] = await installs(device.deviceId);
    await request(t.app)
      .post("/v1/action-result")
      .auth(device.deviceToken, { type: "bearer" })
      .send({ requestId: first!.requestId, status: "failed", error: "INSTALL_FAILED_INTERNAL_ERROR" });
    // A release sends the package meanwhile, to expire in a day.
    const releaseExpiresAt = new Date(t.clock.now().getTime() + 24 * 3600_000);
    await database.db.command.create({
      data: {
        requestId: randomUUID(),
        deviceId: device.deviceId,
        type: "install_app",
        payload: { packageName: SCANNER, versionCode: 7 },
        createdBy: "admin",
        createdAt: t.clock.now(),
        expiresAt: releaseExpiresAt,
      },
    });
    t.clock.advance(REQUIRED_APP_RETRY_BASE_SECONDS + 1);
    await t.dispatchPolicies();
    expect(await installs(device.deviceId)).toHaveLength(2);
    expect((await missingScanner(device.deviceId)).install).toMatchObject({ attempts: 1, nextAttemptAt: releaseExpiresAt.toISOString() });
    const due = await database.db.policyDispatch.findUniqueOrThrow({ where: { deviceId: device.deviceId } });
    expect(due.dueAt).toEqual(releaseExpiresAt);

    // The release installed it: the device reports it, and its retry is dropped at the next round.
    await request(t.app)
      .post("/v1/heartbeat")
      .auth(device.deviceToken, { type: "bearer" })
      .send({ deviceTime: new Date().toISOString(), apps: [{ packageName: SCANNER, versionCode: 7, running: false }] });
    t.clock.advance(24 * 3600);
    await t.dispatchPolicies();
    expect(await database.db.requiredAppInstall.count()).toBe(0);
    expect(await database.db.policyDispatch.count()).toBe(0);
    expect(await installs(device.deviceId)).toHaveLength(2);
  });

  it("start over with a change of the device's effective policy, or with a newer catalogue version", async () => {
    const dataDir = await mkdtemp(path.join(tmpdir(), "required-app-retries-"));
    try {
      t = createTestApp(database.db, { env: { PUBLIC_API_URL, DATA_DIR: dataDir } });
      expect((await upload(FIXTURE_V1)).status).toBe(201);
      const device = await enrollDevice(t.app);
      const policy = await adminRequest(t.app, "POST", "/admin/device-policies", {
        name: "Fixture",
        settings: { requiredApps: [{ packageName: FIXTURE, minVersionCode: 1 }] },
      });
      await adminRequest(t.app, "POST", `/admin/device-policies/${policy.body.id}/assignments`, { deviceId: device.deviceId });
      await t.dispatchPolicies();
      const fixtureInstalls = () => database.db.command.findMany({ where: { deviceId: device.deviceId, type: "install_app" }, orderBy: { createdAt: "asc" } });
      const installState = async () => {
        const res = await adminRequest(reader.app, "GET", `/admin/devices/${device.deviceId}/policy`);
        return EffectivePolicyResponse.parse(res.body).compliance.missingApps[0]!.install;
      };
      const failLatest = async () => {
        const latest = (await fixtureInstalls()).at(-1)!;
        const res = await request(t.app)
          .post("/v1/action-result")
          .auth(device.deviceToken, { type: "bearer" })
          .send({ requestId: latest.requestId, status: "failed", error: "INSTALL_FAILED_INTERNAL_ERROR" });
        expect(res.status).toBe(200);
      };
      expect(await fixtureInstalls()).toHaveLength(1);
      // Out of attempts at once: the row as REQUIRED_APP_MAX_ATTEMPTS sends leave it.
      await database.db.requiredAppInstall.updateMany({ data: { attempts: REQUIRED_APP_MAX_ATTEMPTS } });
      await failLatest();
      expect(await installState()).toMatchObject({ versionCode: 1, gaveUp: true });

      // The policy changes (another setting): sent again at once, counted from one.
      const edit = await adminRequest(t.app, "PATCH", `/admin/device-policies/${policy.body.id}`, {
        settings: { requiredApps: [{ packageName: FIXTURE, minVersionCode: 1 }], screen: { timeoutSeconds: 60 } },
      });
      expect(edit.status).toBe(200);
      await t.dispatchPolicies();
      expect(await fixtureInstalls()).toHaveLength(2);
      expect(await installState()).toMatchObject({ versionCode: 1, attempts: 1, gaveUp: false });

      await database.db.requiredAppInstall.updateMany({ data: { attempts: REQUIRED_APP_MAX_ATTEMPTS } });
      await failLatest();
      expect(await installState()).toMatchObject({ versionCode: 1, gaveUp: true });
      // A newer version uploaded: the device is queued with it and sent it, counted from one.
      expect((await upload(FIXTURE_V2)).status).toBe(201);
      await t.dispatchPolicies();
      const commands = await fixtureInstalls();
      expect(commands).toHaveLength(3);
      expect(commands.at(-1)!.payload).toMatchObject({ versionCode: 2 });
      expect(await installState()).toMatchObject({ versionCode: 2, attempts: 1, lastFailure: null, gaveUp: false });
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
  });
});
