import { createHash } from "node:crypto";
import { mkdtemp, readFile, rm, stat } from "node:fs/promises";
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
  resetTables,
} from "../../test";
import { asBrowser, signedInUser } from "../../test/sessions";
import { signedAppFilePath } from "./download-url";

// Deleting versions and apps from the catalogue: what refuses it (409), what it keeps (the
// releases' history) and what it removes (rows, files, download URLs).

const FIXTURES = path.resolve(__dirname, "../../../test-fixtures/apk");
const V1 = path.join(FIXTURES, "fixture-v1.apk");
const V2 = path.join(FIXTURES, "fixture-v2.apk");
const OTHER_KEY = path.join(FIXTURES, "fixture-v3-other-key.apk");
const PACKAGE = "com.keelson.fixture";

let database: TestDatabase;
let t: TestApp;
let dataDir: string;

beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(() => database.close());
beforeEach(async () => {
  await resetTables(database.db);
  dataDir = await mkdtemp(path.join(tmpdir(), "catalogue-delete-"));
  t = createTestApp(database.db, { env: { DATA_DIR: dataDir, PUBLIC_API_URL: "https://mdm.example.test" } });
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

async function enroll(count: number, group: string): Promise<string[]> {
  const enrollmentToken = await createEnrollmentToken(t.app, { maxUses: count });
  const ids: string[] = [];
  for (let i = 0; i < count; i++) {
    const res = await request(t.app)
      .post("/v1/register")
      .send({ enrollmentToken, device: { model: "Kiosk" } });
    ids.push(res.body.deviceId);
  }
  await database.db.device.updateMany({ where: { id: { in: ids } }, data: { groups: [group] } });
  return ids;
}

/** Records the app list the devices last reported: the fixture app at `versionCode`. */
const running = (ids: string[], versionCode: number) =>
  database.db.device.updateMany({
    where: { id: { in: ids } },
    data: { appStatus: [{ packageName: PACKAGE, versionCode, running: false }], appsReportedAt: t.clock.now() },
  });
const release = (body: Record<string, unknown>) => adminRequest(t.app, "POST", `/admin/apps/${PACKAGE}/releases`, body);
const deleteVersion = (versionCode: number | string) => adminRequest(t.app, "DELETE", `/admin/apps/${PACKAGE}/versions/${versionCode}`);
const deleteApp = (packageName = PACKAGE) => adminRequest(t.app, "DELETE", `/admin/apps/${packageName}`);
const storedFile = (sha256: string) => path.join(dataDir, "apps", sha256.slice(0, 2), `${sha256}.apk`);
const isStored = (sha256: string) =>
  stat(storedFile(sha256)).then(
    () => true,
    () => false,
  );
const download = (sha256: string) => request(t.app).get(signedAppFilePath(t.deps.env, sha256, new Date(t.clock.now().getTime() + 3_600_000)));

async function requireApp(name: string, minVersionCode: number) {
  const res = await adminRequest(t.app, "POST", "/admin/device-policies", { name, settings: { requiredApps: [{ packageName: PACKAGE, minVersionCode }] } });
  expect(res.status).toBe(201);
  return res.body.id as string;
}

describe("DELETE /admin/apps/{packageName}/versions/{versionCode}", () => {
  it("deletes the version and its file, audits it, and the file's signed URLs answer 404 from then on", async () => {
    expect((await upload(V1)).status).toBe(201);
    expect((await upload(V2)).status).toBe(201);
    const v1 = await sha256Of(V1);
    expect((await download(v1)).status).toBe(200);

    const res = await deleteVersion(1);
    expect(res.status).toBe(204);
    expect((await database.db.appVersion.findMany()).map((version) => version.versionCode)).toEqual([2]);
    expect(await isStored(v1)).toBe(false);
    expect(await isStored(await sha256Of(V2))).toBe(true);
    const gone = await download(v1);
    expect(gone.status).toBe(404);
    expect(gone.body.error.code).toBe("not_found");
    const audit = await database.db.auditLog.findMany({ where: { action: "app.delete_version" } });
    expect(audit).toEqual([
      expect.objectContaining({
        actor: expect.stringMatching(/^admin-key:/),
        targetType: "app",
        targetId: PACKAGE,
        details: { versionCode: 1, sha256: v1, cancelledInstalls: 0 },
      }),
    ]);

    // The same file uploaded again is a new version, served again.
    expect((await upload(V1)).status).toBe(201);
    expect((await download(v1)).status).toBe(200);
  });

  it("answers 404 for a version or app the catalogue does not have, and 400 naming the parameter for a malformed version code", async () => {
    expect((await upload(V1)).status).toBe(201);
    const missing = await deleteVersion(7);
    expect(missing.status).toBe(404);
    expect(missing.body.error.message).toMatch(/no version 7 of com\.keelson\.fixture/);
    expect((await adminRequest(t.app, "DELETE", "/admin/apps/com.example.absent/versions/1")).status).toBe(404);
    for (const bad of ["01", "1e0", "-1", "x"]) {
      const res = await deleteVersion(bad);
      expect(res.status).toBe(400);
      expect(res.body.error.details).toEqual([expect.objectContaining({ path: "params.versionCode" })]);
    }
    expect(await database.db.appVersion.count()).toBe(1);
  });

  it("keeps the file while another version still refers to its sha256", async () => {
    expect((await upload(V1)).status).toBe(201);
    const v1 = await sha256Of(V1);
    // Two versions naming one file, as content addressing allows: the file goes with the last.
    const original = await database.db.appVersion.findFirstOrThrow();
    await database.db.catalogueApp.create({ data: { packageName: "com.keelson.copy", certSha256: original.certSha256 } });
    await database.db.appVersion.create({ data: { ...original, id: "00000000-0000-4000-8000-0000000000c1", packageName: "com.keelson.copy" } });

    expect((await deleteVersion(1)).status).toBe(204);
    expect(await isStored(v1)).toBe(true);
    expect((await download(v1)).status).toBe(200);
    expect((await adminRequest(t.app, "DELETE", "/admin/apps/com.keelson.copy/versions/1")).status).toBe(204);
    expect(await isStored(v1)).toBe(false);
    expect((await download(v1)).status).toBe(404);
  });

  it("refuses (409) a version an active or paused release rolls out or would roll back to, and allows it once the release is rolled back", async () => {
    expect((await upload(V1)).status).toBe(201);
    expect((await upload(V2)).status).toBe(201);
    await running(await enroll(4, "g"), 1);
    const created = await release({ versionCode: 2, target: { group: "g" }, percent: 25 });
    expect(created.status).toBe(201);

    const rollingOut = await deleteVersion(2);
    expect(rollingOut.status).toBe(409);
    expect(rollingOut.body.error.message).toBe(
      `Release ${created.body.id} (active) is rolling out version 2 of ${PACKAGE}: roll it back or let it complete first`,
    );
    expect((await adminRequest(t.app, "POST", `/admin/app-releases/${created.body.id}/pause`)).status).toBe(200);
    const rollbackTarget = await deleteVersion(1);
    expect(rollbackTarget.status).toBe(409);
    expect(rollbackTarget.body.error.message).toBe(
      `Release ${created.body.id} (paused) would roll devices of ${PACKAGE} back to version 1, which they ran before it: roll it back or let it complete first`,
    );
    const wholeApp = await deleteApp();
    expect(wholeApp.status).toBe(409);
    expect(wholeApp.body.error.message).toMatch(/is rolling out version 2/);
    expect(await database.db.appVersion.count()).toBe(2);
    expect(await database.db.auditLog.count({ where: { action: { startsWith: "app.delete" } } })).toBe(0);

    expect((await adminRequest(t.app, "POST", `/admin/app-releases/${created.body.id}/rollback`)).status).toBe(200);
    expect((await deleteVersion(2)).status).toBe(204);
    // The rolled-back release keeps its history: the version it rolled out, by code.
    const history = await adminRequest(t.app, "GET", `/admin/app-releases/${created.body.id}`);
    expect(history.status).toBe(200);
    expect(history.body).toMatchObject({ status: "rolled_back", versionCode: 2, versionName: "1.1.0", previousVersionCode: 1, progress: { sent: 1 } });
    expect(history.body.devices).toEqual([expect.objectContaining({ versionCode: 1 })]);
  });

  it("cancels the installs of the deleted version that have not left for their device (a rollback's), so none is sent a URL that answers 404", async () => {
    expect((await upload(V1)).status).toBe(201);
    expect((await upload(V2)).status).toBe(201);
    const devices = await enroll(3, "g");
    await running(devices, 1);
    t.clock.advance(1);
    const created = await release({ versionCode: 2, target: { group: "g" }, percent: 100 });
    expect(created.body.status).toBe("completed");
    expect((await adminRequest(t.app, "POST", `/admin/app-releases/${created.body.id}/rollback`)).status).toBe(200);
    const queuedV1 = () => database.db.command.findMany({ where: { type: "install_app", status: "queued", payload: { path: ["versionCode"], equals: 1 } } });
    expect(await queuedV1()).toHaveLength(3);

    expect((await deleteVersion(1)).status).toBe(204);
    expect(await queuedV1()).toEqual([]);
    const cancelled = await database.db.command.findMany({
      where: { type: "install_app", status: "cancelled", payload: { path: ["versionCode"], equals: 1 } },
    });
    expect(cancelled.map((command) => command.deviceId).sort()).toEqual([...devices].sort());
    expect(cancelled.map((command) => command.errorMessage)).toEqual(Array(3).fill(`version 1 of ${PACKAGE} was deleted from the catalogue`));
    const audit = await database.db.auditLog.findFirstOrThrow({ where: { action: "app.delete_version" } });
    expect(audit.details).toMatchObject({ versionCode: 1, cancelledInstalls: 3 });
    // The release's devices show why.
    const history = await adminRequest(t.app, "GET", `/admin/app-releases/${created.body.id}`);
    expect(history.body.devices.map((device: { status: string; reason: string }) => [device.status, device.reason])).toEqual(
      Array(3).fill(["failed", `version 1 of ${PACKAGE} was deleted from the catalogue`]),
    );
  });

  it("refuses the version a completed release still sends to newcomers; once superseded it goes and the release keeps its history, and its rollback sends it once uploaded again", async () => {
    expect((await upload(V1)).status).toBe(201);
    const devices = await enroll(2, "g");
    const first = await release({ versionCode: 1, target: { group: "g" }, percent: 100 });
    expect(first.body.status).toBe("completed");
    const topping = await deleteVersion(1);
    expect(topping.status).toBe(409);
    expect(topping.body.error.message).toMatch(
      new RegExp(`^Completed release ${first.body.id} still sends version 1 of ${PACKAGE.replaceAll(".", "\\.")} to devices joining its target \\(group g\\)`),
    );

    expect((await upload(V2)).status).toBe(201);
    await running(devices, 1);
    const second = await release({ versionCode: 2, target: { group: "g" }, percent: 100 });
    expect(second.body).toMatchObject({ status: "completed", previousVersionCode: 1 });
    expect((await deleteVersion(1)).status).toBe(204);

    const history = await adminRequest(t.app, "GET", `/admin/app-releases/${first.body.id}`);
    expect(history.body).toMatchObject({ status: "completed", versionCode: 1, versionName: "1.0.0", progress: { sent: 2 } });
    const listed = await adminRequest(t.app, "GET", "/admin/apps");
    expect(listed.body.apps[0].versions.map((version: { versionCode: number }) => version.versionCode)).toEqual([2]);
    expect(listed.body.apps[0].releases.map((row: { versionCode: number }) => row.versionCode)).toEqual([2, 1]);

    // The version its devices ran is gone: a rollback would send none of them anything, and says so.
    const rollbackView = () => adminRequest(t.app, "GET", `/admin/app-releases/${second.body.id}`);
    expect((await rollbackView()).body).toMatchObject({ previousVersionCode: null, rollbackDevices: 0 });
    expect((await upload(V1)).status).toBe(201);
    expect((await rollbackView()).body).toMatchObject({ previousVersionCode: 1, rollbackDevices: 2 });
    const rolledBack = await adminRequest(t.app, "POST", `/admin/app-releases/${second.body.id}/rollback`);
    expect(rolledBack.status).toBe(200);
    const sentBack = await database.db.command.findMany({ where: { type: "install_app", payload: { path: ["versionCode"], equals: 1 } } });
    // Twice per device: the first release, then the rollback.
    expect(sentBack.map((command) => command.deviceId).sort()).toEqual([...devices, ...devices].sort());
  });

  it("refuses (409, naming the policy) to delete the only version a policy's required app can be sent, and allows it while another satisfies it", async () => {
    expect((await upload(V1)).status).toBe(201);
    const policyId = await requireApp("Kiosk essentials", 1);
    // Already unsatisfiable, whatever is deleted: not this deletion's doing.
    await requireApp("Needs v5", 5);

    const only = await deleteVersion(1);
    expect(only.status).toBe(409);
    expect(only.body.error.message).toBe(
      `Deleting version 1 would leave required apps of ${PACKAGE} without a catalogue version to install: policy "Kiosk essentials" (${policyId}) requires version 1 or later. Upload another satisfying version, or change the policy, first`,
    );
    expect(await database.db.appVersion.count()).toBe(1);
    expect(await isStored(await sha256Of(V1))).toBe(true);
    const wholeApp = await deleteApp();
    expect(wholeApp.status).toBe(409);
    expect(wholeApp.body.error.message).toMatch(/^Deleting the app would leave required apps .* policy "Kiosk essentials"/);

    expect((await upload(V2)).status).toBe(201);
    expect((await deleteVersion(1)).status).toBe(204);
    expect((await deleteVersion(2)).status).toBe(409);
  });

  it("is refused to a viewer (403)", async () => {
    expect((await upload(V1)).status).toBe(201);
    const viewer = await signedInUser(t, "viewer");
    const res = await asBrowser(t.app, viewer, "delete", `/admin/apps/${PACKAGE}/versions/1`);
    expect(res.status).toBe(403);
    expect(await database.db.appVersion.count()).toBe(1);
  });
});

describe("DELETE /admin/apps/{packageName}", () => {
  it("deletes every version, file and release of the app; the package may then come back with another certificate", async () => {
    expect((await upload(V1)).status).toBe(201);
    expect((await upload(V2)).status).toBe(201);
    await enroll(2, "g");
    expect((await release({ versionCode: 1, target: { group: "g" }, percent: 100 })).body.status).toBe("completed");
    expect((await release({ versionCode: 2, target: { group: "g" }, percent: 100 })).body.status).toBe("completed");

    const res = await deleteApp();
    expect(res.status).toBe(204);
    expect(await database.db.catalogueApp.count()).toBe(0);
    expect(await database.db.appVersion.count()).toBe(0);
    expect(await database.db.appRelease.count()).toBe(0);
    expect(await database.db.appReleaseDevice.count()).toBe(0);
    for (const file of [V1, V2]) {
      const sha256 = await sha256Of(file);
      expect(await isStored(sha256)).toBe(false);
      expect((await download(sha256)).status).toBe(404);
    }
    // Neither release's installs had left for the two devices: cancelled with the app.
    expect(await database.db.command.count({ where: { type: "install_app", status: "queued" } })).toBe(0);
    expect(await database.db.command.count({ where: { type: "install_app", status: "cancelled" } })).toBe(4);
    const audit = await database.db.auditLog.findMany({ where: { action: "app.delete" } });
    expect(audit).toEqual([expect.objectContaining({ targetId: PACKAGE, details: { versionCodes: [1, 2], releases: 2, cancelledInstalls: 4 } })]);
    expect((await adminRequest(t.app, "GET", "/admin/apps")).body.apps).toEqual([]);

    // No certificate binding left: an APK of the package signed by another key is a new app.
    expect((await upload(OTHER_KEY)).status).toBe(201);
    expect((await deleteApp("com.example.absent")).status).toBe(404);
  });
});
