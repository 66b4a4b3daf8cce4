import { createHash } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import path from "node:path";
import { ReleaseDetail, signAdminRequest } from "@mdm/contracts";
import { AdminClient, SimulatedDevice } from "@mdm/simulator";
import { type RunningServer, startServer } from "../../server";
import { TEST_ADMIN_KEY, TEST_HMAC_SECRET, type TestDatabase, createTestDatabase, describeWithPostgres, testServerEnv } from "../../test";

// Catalogue installs end to end: a listening server, devices played by the simulator over
// real sockets, downloading the APK from the signed URL and checking its SHA-256.
const FIXTURES = path.resolve(__dirname, "../../../test-fixtures/apk");
const PACKAGE = "com.keelson.fixture";

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

describeWithPostgres("catalogue installs by simulated devices", () => {
  let database: TestDatabase;
  let server: RunningServer;
  let admin: AdminClient;
  let dataDir: string;
  const devices: SimulatedDevice[] = [];

  /** A signed admin call; `file` uploads it as multipart (the signature then covers an empty body). */
  async function call(method: "GET" | "POST", pathWithQuery: string, body?: unknown, file?: string) {
    const raw = body === undefined ? "" : JSON.stringify(body);
    const host = new URL(server.url).host;
    const headers: Record<string, string> = await signAdminRequest({
      adminKey: TEST_ADMIN_KEY,
      hmacSecret: TEST_HMAC_SECRET,
      method,
      host,
      pathWithQuery,
      body: raw,
    });
    let payload: string | FormData | undefined = body === undefined ? undefined : raw;
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (file) {
      const form = new FormData();
      form.append("file", new Blob([await readFile(file)]), path.basename(file));
      payload = form;
    }
    const res = await fetch(`${server.url}${pathWithQuery}`, { method, headers, body: payload });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> & { id: string } };
  }

  async function upload(file: string) {
    const sha256 = createHash("sha256")
      .update(await readFile(file))
      .digest("hex");
    const res = await call("POST", `/admin/apps?sha256=${sha256}`, undefined, file);
    expect(res.status).toBe(201);
  }

  async function releaseUntil(releaseId: string, done: (release: ReleaseDetail) => boolean): Promise<ReleaseDetail> {
    const deadline = Date.now() + 15_000;
    for (;;) {
      const release = ReleaseDetail.parse((await call("GET", `/admin/app-releases/${releaseId}`)).body);
      if (done(release)) return release;
      if (Date.now() > deadline) throw new Error(`release not there in time: ${JSON.stringify(release.progress)}`);
      await sleep(100);
    }
  }

  beforeAll(async () => {
    database = await createTestDatabase();
    dataDir = await mkdtemp(path.join(tmpdir(), "catalogue-devices-"));
    // Devices are told https://mdm.example.test (as a TLS proxy would be named) and fetch from the test server itself.
    server = await startServer(
      testServerEnv({ DATABASE_URL: database.url, DATA_DIR: dataDir, PUBLIC_API_URL: "https://mdm.example.test", COMMAND_RETRY_BASE_SECONDS: "0.2" }),
    );
    admin = new AdminClient(server.url, { adminKey: TEST_ADMIN_KEY, hmacSecret: TEST_HMAC_SECRET });
  });

  afterAll(async () => {
    await Promise.all(devices.splice(0).map((device) => device.stop()));
    await server?.close();
    await database?.close();
    await rm(dataDir, { recursive: true, force: true });
  });

  it("installs a release on connected devices, which verify the download and report the version; a tampered download fails with the reason", async () => {
    await upload(path.join(FIXTURES, "fixture-v1.apk"));
    await upload(path.join(FIXTURES, "fixture-v2.apk"));
    const { token } = await admin.createEnrollmentToken({ maxUses: 10 });
    for (let i = 0; i < 3; i++) devices.push(await SimulatedDevice.enroll(server.url, token, { intervalMs: 300, downloadOrigin: server.url }));
    const tampered = await SimulatedDevice.enroll(server.url, token, { intervalMs: 300, downloadOrigin: server.url, tamperDownloads: true });
    devices.push(tampered);
    await database.db.device.updateMany({ data: { groups: ["lobby"] } });
    await Promise.all(devices.map((device) => device.start()));

    const created = await call("POST", `/admin/apps/${PACKAGE}/releases`, { versionCode: 2, target: { group: "lobby" }, percent: 100 });
    expect(created.status).toBe(201);
    const release = await releaseUntil(created.body.id, (current) => current.progress.pending === 0);
    expect(release.progress).toEqual({ targeted: 4, sent: 4, installed: 3, pending: 0, failed: 1, replaced: 0 });
    const failed = release.devices.find((device) => device.status === "failed")!;
    expect(failed.deviceId).toBe(tampered.deviceId);
    expect(failed.reason).toMatch(/^sha256 mismatch: expected [a-f0-9]{64}, downloaded [a-f0-9]{64}$/);

    // The installed version reaches the server in the devices' heartbeats too.
    const good = devices.filter((device) => device !== tampered);
    const deadline = Date.now() + 10_000;
    for (;;) {
      const rows = await database.db.device.findMany({ where: { id: { in: good.map((device) => device.deviceId) } }, select: { appStatus: true } });
      const reported = rows.filter((row) =>
        (row.appStatus as Array<{ packageName: string; versionCode?: number }> | null)?.some((app) => app.packageName === PACKAGE && app.versionCode === 2),
      );
      if (reported.length === good.length) break;
      if (Date.now() > deadline) throw new Error(`heartbeats did not report version 2: ${JSON.stringify(rows)}`);
      await sleep(100);
    }
    expect(tampered.state.apps.some((app) => app.packageName === PACKAGE)).toBe(false);
  });
});
