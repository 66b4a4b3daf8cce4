import { createHash, randomUUID } from "node:crypto";
import { DevicePolicyView, EffectivePolicyResponse, HeartbeatResponse, ListDevicePolicyVersionsResponse, policySettingEntries } from "@mdm/contracts";
import { Client } from "pg";
import request from "supertest";
import { type TestApp, type TestDatabase, adminRequest, createTestApp, createTestDatabase, enrollDevice, heartbeatBody, resetTables } from "../../test";
import { queueRecomputeOf, recomputeDevices } from "./policies.service";

let database: TestDatabase;
let t: TestApp;
beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(() => database.close());
beforeEach(async () => {
  await resetTables(database.db);
  t = createTestApp(database.db);
});

const bearer = { type: "bearer" as const };

async function createPolicy(name: string, settings: Record<string, unknown>) {
  const res = await adminRequest(t.app, "POST", "/admin/device-policies", { name, settings });
  expect(res.status).toBe(201);
  return DevicePolicyView.parse(res.body);
}

async function assign(policyId: string, target: Record<string, unknown>) {
  const res = await adminRequest(t.app, "POST", `/admin/device-policies/${policyId}/assignments`, target);
  expect(res.status).toBe(201);
  return res.body as { id: string };
}

async function effective(deviceId: string) {
  const res = await adminRequest(t.app, "GET", `/admin/devices/${deviceId}/policy`);
  expect(res.status).toBe(200);
  return EffectivePolicyResponse.parse(res.body);
}

describe("policy documents", () => {
  it("creates version 1 with every section of the schema", async () => {
    const settings = {
      kiosk: {
        lockTaskPackages: ["com.example.kiosk"],
        homeApp: "com.example.kiosk",
        statusBar: false,
        notifications: false,
        homeKey: false,
        recentsKey: false,
      },
      restrictions: {
        camera: false,
        usbFileTransfer: false,
        debugging: false,
        factoryReset: false,
        safeMode: false,
        addUsers: false,
        installUnknownApps: false,
      },
      screen: { timeoutSeconds: 600, brightness: 80, orientationLock: "landscape", keepAwakeWhileCharging: true },
      systemUpdate: { type: "windowed", startMinute: 120, endMinute: 240 },
      requiredApps: [{ packageName: "com.example.kiosk", minVersionCode: 210 }],
      autoRelaunch: ["com.example.kiosk"],
    };
    const policy = await createPolicy("Store kiosk", settings);
    expect(policy).toMatchObject({ name: "Store kiosk", version: 1, settings, assignments: [] });
    expect(await database.db.policyVersion.count({ where: { policyId: policy.id } })).toBe(1);
    expect(await database.db.auditLog.count({ where: { action: "device_policy.create", targetId: policy.id } })).toBe(1);
  });

  it("answers 400 naming the path of every invalid setting, and stores nothing", async () => {
    const res = await adminRequest(t.app, "POST", "/admin/device-policies", {
      name: "Broken",
      settings: {
        kiosk: { lockTaskPackages: ["not a package"], statusBar: "no" },
        restrictions: { camera: 1, teleport: false },
        screen: { timeoutSeconds: 1, brightness: 101, orientationLock: "diagonal" },
        systemUpdate: { type: "windowed", startMinute: 1440, endMinute: -1 },
        requiredApps: [{ packageName: "com.example.kiosk", minVersionCode: 0 }],
        autoRelaunch: ["x"],
      },
    });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe("validation_failed");
    const paths = res.body.error.details.map((issue: { path: string }) => issue.path).sort();
    expect(paths).toEqual([
      "settings.autoRelaunch.0",
      "settings.kiosk.lockTaskPackages.0",
      "settings.kiosk.statusBar",
      "settings.requiredApps.0.minVersionCode",
      "settings.restrictions.camera",
      "settings.restrictions.teleport",
      "settings.screen.brightness",
      "settings.screen.orientationLock",
      "settings.screen.timeoutSeconds",
      "settings.systemUpdate.endMinute",
      "settings.systemUpdate.startMinute",
    ]);
    expect(res.body.error.details).toContainEqual({ path: "settings.restrictions.teleport", message: "Unknown field: teleport" });
    expect(await database.db.policy.count()).toBe(0);
  });

  it("names each unknown field at its own path, in the body and in a section", async () => {
    const res = await adminRequest(t.app, "POST", "/admin/device-policies", {
      name: "Unknown fields",
      colour: "blue",
      settings: { kiosk: { statusBar: false, foo: 1, bar: 2 }, wallpaper: "sea.png" },
    });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe("validation_failed");
    expect(res.body.error.details).toEqual(
      expect.arrayContaining([
        { path: "colour", message: "Unknown field: colour" },
        { path: "settings.wallpaper", message: "Unknown field: wallpaper" },
        { path: "settings.kiosk.foo", message: "Unknown field: foo" },
        { path: "settings.kiosk.bar", message: "Unknown field: bar" },
      ]),
    );
    expect(res.body.error.details).toHaveLength(4);
  });

  it("refuses duplicate lockTaskPackages, autoRelaunch and requiredApps entries, and a home app outside lockTaskPackages, naming each path", async () => {
    const res = await adminRequest(t.app, "POST", "/admin/device-policies", {
      name: "Doubled",
      settings: {
        kiosk: { lockTaskPackages: ["com.example.kiosk", "com.example.other", "com.example.kiosk"], homeApp: "com.example.launcher" },
        requiredApps: [
          { packageName: "com.example.kiosk", minVersionCode: 2 },
          { packageName: "com.example.kiosk", minVersionCode: 5 },
        ],
        autoRelaunch: ["com.example.kiosk", "com.example.kiosk"],
      },
    });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe("validation_failed");
    expect(res.body.error.details.map((issue: { path: string }) => issue.path).sort()).toEqual([
      "settings.autoRelaunch.1",
      "settings.kiosk.homeApp",
      "settings.kiosk.lockTaskPackages.2",
      "settings.requiredApps.1.packageName",
    ]);
    expect(await database.db.policy.count()).toBe(0);

    const policy = await createPolicy("Kiosk", { kiosk: { lockTaskPackages: ["com.example.kiosk"], homeApp: "com.example.kiosk" } });
    const edit = await adminRequest(t.app, "PATCH", `/admin/device-policies/${policy.id}`, {
      settings: { kiosk: { lockTaskPackages: ["com.example.kiosk"], homeApp: "com.example.launcher" } },
    });
    expect(edit.status).toBe(400);
    expect(edit.body.error.details).toEqual([expect.objectContaining({ path: "settings.kiosk.homeApp" })]);
  });

  it("names duplicate entries in the same 400 as the document's other errors, wrong types included", async () => {
    const res = await adminRequest(t.app, "POST", "/admin/device-policies", {
      name: "Doubled and broken",
      settings: {
        kiosk: { lockTaskPackages: ["com.example.kiosk", "com.example.kiosk"], statusBar: "no" },
        restrictions: { camera: "yes" },
        requiredApps: [
          { packageName: "com.example.kiosk", minVersionCode: 2 },
          { packageName: "com.example.kiosk", minVersionCode: 5 },
        ],
        systemUpdate: { type: "sometimes" },
      },
    });
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe("validation_failed");
    expect(res.body.error.details).toEqual(
      expect.arrayContaining([
        { path: "settings.kiosk.lockTaskPackages.1", message: "com.example.kiosk is listed twice: list each app once" },
        { path: "settings.requiredApps.1.packageName", message: expect.stringContaining("com.example.kiosk is listed twice") },
      ]),
    );
    expect(res.body.error.details.map((issue: { path: string }) => issue.path).sort()).toEqual([
      "settings.kiosk.lockTaskPackages.1",
      "settings.kiosk.statusBar",
      "settings.requiredApps.1.packageName",
      "settings.restrictions.camera",
      "settings.systemUpdate.type",
    ]);
    expect(await database.db.policy.count()).toBe(0);
  });

  it("warns when a device's merged policy takes its home app and its lockTaskPackages from policies that disagree", async () => {
    const device = await enrollDevice(t.app);
    const launcher = await createPolicy("Launcher", { kiosk: { homeApp: "com.example.launcher" } });
    const kiosk = await createPolicy("Kiosk", { kiosk: { lockTaskPackages: ["com.example.kiosk"] } });
    await assign(launcher.id, { deviceId: device.deviceId });
    await assign(kiosk.id, { group: "lobby" });
    await adminRequest(t.app, "PATCH", `/admin/devices/${device.deviceId}`, { groups: ["lobby"] });
    expect((await effective(device.deviceId)).warnings).toEqual([{ path: "kiosk.homeApp", message: expect.stringContaining("com.example.launcher") }]);
  });

  it("refuses an empty update window and an unknown update type", async () => {
    const empty = await adminRequest(t.app, "POST", "/admin/device-policies", {
      name: "A",
      settings: { systemUpdate: { type: "windowed", startMinute: 60, endMinute: 60 } },
    });
    expect(empty.status).toBe(400);
    expect(empty.body.error.details).toEqual([expect.objectContaining({ path: "settings.systemUpdate.endMinute" })]);
    const unknown = await adminRequest(t.app, "POST", "/admin/device-policies", { name: "B", settings: { systemUpdate: { type: "never" } } });
    expect(unknown.status).toBe(400);
    expect(unknown.body.error.details[0].path).toBe("settings.systemUpdate.type");
  });

  it("bumps the version on each change, keeps the history with diffs, and reverts as a new version", async () => {
    const policy = await createPolicy("Screens", { screen: { timeoutSeconds: 60 } });
    const v2 = await adminRequest(t.app, "PATCH", `/admin/device-policies/${policy.id}`, {
      settings: { screen: { timeoutSeconds: 120, brightness: 50 } },
      expectedVersion: 1,
    });
    expect(v2.status).toBe(200);
    expect(v2.body.version).toBe(2);
    // The same document again is no new version.
    const same = await adminRequest(t.app, "PATCH", `/admin/device-policies/${policy.id}`, { settings: { screen: { timeoutSeconds: 120, brightness: 50 } } });
    expect(same.body.version).toBe(2);
    // A stale editor is refused.
    const stale = await adminRequest(t.app, "PATCH", `/admin/device-policies/${policy.id}`, { settings: {}, expectedVersion: 1 });
    expect(stale.status).toBe(409);

    const reverted = await adminRequest(t.app, "POST", `/admin/device-policies/${policy.id}/versions/1/revert`);
    expect(reverted.status).toBe(200);
    expect(reverted.body).toMatchObject({ version: 3, settings: { screen: { timeoutSeconds: 60 } } });

    const history = ListDevicePolicyVersionsResponse.parse((await adminRequest(t.app, "GET", `/admin/device-policies/${policy.id}/versions`)).body);
    expect(history.versions.map((version) => [version.version, version.revertedFrom, version.createdBy])).toEqual([
      [3, 1, expect.stringMatching(/^admin-key:/)],
      [2, null, expect.stringMatching(/^admin-key:/)],
      [1, null, expect.stringMatching(/^admin-key:/)],
    ]);
    expect(history.versions[1]!.changes).toEqual([
      { path: "screen.brightness", after: 50 },
      { path: "screen.timeoutSeconds", before: 60, after: 120 },
    ]);
    expect(history.versions[0]!.changes).toEqual([
      { path: "screen.brightness", before: 50 },
      { path: "screen.timeoutSeconds", before: 120, after: 60 },
    ]);
    expect(await database.db.auditLog.count({ where: { targetId: policy.id, action: { in: ["device_policy.update", "device_policy.revert"] } } })).toBe(2);

    const missing = await adminRequest(t.app, "POST", `/admin/device-policies/${policy.id}/versions/9/revert`);
    expect(missing.status).toBe(404);
  });

  it("records a revert to the content in force as a new version, and takes the version only as a plain decimal integer", async () => {
    const device = await enrollDevice(t.app);
    const policy = await createPolicy("Screens", { screen: { timeoutSeconds: 60 } });
    await assign(policy.id, { deviceId: device.deviceId });
    const hash = (await effective(device.deviceId)).hash;

    const again = await adminRequest(t.app, "POST", `/admin/device-policies/${policy.id}/versions/1/revert`);
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({ version: 2, settings: { screen: { timeoutSeconds: 60 } } });
    const history = ListDevicePolicyVersionsResponse.parse((await adminRequest(t.app, "GET", `/admin/device-policies/${policy.id}/versions`)).body);
    expect(history.versions[0]).toMatchObject({ version: 2, revertedFrom: 1, changes: [] });
    expect(await database.db.auditLog.findFirst({ where: { targetId: policy.id, action: "device_policy.revert" } })).toMatchObject({
      details: { version: 2, revertedFrom: 1, changes: [] },
    });
    // Same settings, same effective policy: the device is not sent it again.
    expect((await effective(device.deviceId)).hash).toBe(hash);

    for (const version of ["1e0", "0x1", "01", "1.0", "+1", "0", "-1", "2147483648", "99999999999"]) {
      const res = await adminRequest(t.app, "POST", `/admin/device-policies/${policy.id}/versions/${version}/revert`);
      expect([version, res.status, res.body.error?.code]).toEqual([version, 400, "validation_failed"]);
    }
    expect((await adminRequest(t.app, "GET", `/admin/device-policies/${policy.id}`)).body.version).toBe(2);
  });

  it("refuses a duplicate name with 409", async () => {
    await createPolicy("Same", {});
    const res = await adminRequest(t.app, "POST", "/admin/device-policies", { name: "Same", settings: {} });
    expect(res.status).toBe(409);
  });
});

describe("precedence and the effective policy", () => {
  it("merges setting by setting: device over group, then the higher group priority, with the source of each setting", async () => {
    const device = await enrollDevice(t.app);
    await adminRequest(t.app, "PATCH", `/admin/devices/${device.deviceId}`, { groups: ["stores", "north"] });
    const base = await createPolicy("Base", { screen: { timeoutSeconds: 60, brightness: 40 }, restrictions: { camera: false, debugging: false } });
    const north = await createPolicy("North", { screen: { timeoutSeconds: 300 }, restrictions: { camera: true } });
    const own = await createPolicy("Till 7", { restrictions: { camera: false } });
    const baseAssignment = await assign(base.id, { group: "stores", priority: 0 });
    const northAssignment = await assign(north.id, { group: "north", priority: 10 });
    const ownAssignment = await assign(own.id, { deviceId: device.deviceId });

    const result = await effective(device.deviceId);
    expect(result.settings).toEqual({ screen: { timeoutSeconds: 300, brightness: 40 }, restrictions: { camera: false, debugging: false } });
    const source = (path: string) => result.sources.find((entry) => entry.path === path);
    expect(source("restrictions.camera")).toMatchObject({
      value: false,
      policyId: own.id,
      policyName: "Till 7",
      policyVersion: 1,
      assignment: { id: ownAssignment.id, kind: "device" },
    });
    expect(source("screen.timeoutSeconds")).toMatchObject({
      value: 300,
      policyId: north.id,
      assignment: { id: northAssignment.id, kind: "group", group: "north", priority: 10 },
    });
    expect(source("screen.brightness")).toMatchObject({ value: 40, policyId: base.id, assignment: { id: baseAssignment.id, group: "stores" } });
    expect(source("restrictions.debugging")).toMatchObject({ policyId: base.id });
    expect(result.compliance.status).toBe("pending");
    expect(result.hash).toMatch(/^[0-9a-f]{64}$/);

    // Raising the base group's priority over north's changes the winner of the timeout.
    await adminRequest(t.app, "DELETE", `/admin/device-policies/${base.id}/assignments/${baseAssignment.id}`);
    await assign(base.id, { group: "stores", priority: 20 });
    expect((await effective(device.deviceId)).settings.screen).toEqual({ timeoutSeconds: 60, brightness: 40 });
  });

  it("follows the device's groups, and leaves the device an empty policy when the last one goes", async () => {
    const device = await enrollDevice(t.app);
    const policy = await createPolicy("Stores", { screen: { timeoutSeconds: 60 } });
    await assign(policy.id, { group: "stores" });
    expect((await effective(device.deviceId)).compliance.status).toBe("none");
    await adminRequest(t.app, "PATCH", `/admin/devices/${device.deviceId}`, { groups: ["stores"] });
    expect((await effective(device.deviceId)).settings).toEqual({ screen: { timeoutSeconds: 60 } });
    await adminRequest(t.app, "PATCH", `/admin/devices/${device.deviceId}`, { groups: [] });
    const cleared = await effective(device.deviceId);
    expect(cleared.settings).toEqual({});
    // The agent must still hear that its settings no longer apply.
    expect(cleared.hash).toMatch(/^[0-9a-f]{64}$/);
    expect(cleared.compliance.status).toBe("pending");
  });

  it("a recompute waits for a change of the device's groups not yet committed, and computes from the new groups", async () => {
    const device = await enrollDevice(t.app);
    const policy = await createPolicy("Lobby", { screen: { timeoutSeconds: 30 } });
    await assign(policy.id, { group: "lobby" });
    // Another transaction (a bulk edit) has put the device in the group, and not committed yet.
    const editor = new Client({ connectionString: database.url });
    await editor.connect();
    try {
      await editor.query("BEGIN");
      await editor.query(`UPDATE "Device" SET groups = ARRAY['lobby'] WHERE id = $1`, [device.deviceId]);
      let settled = false;
      const recomputed = recomputeDevices(t.deps, [device.deviceId]).finally(() => {
        settled = true;
      });
      for (let i = 0; i < 100 && !settled; i++) {
        const [{ waiting }] = await database.db.$queryRaw<[{ waiting: number }]>`
          SELECT count(*)::int AS waiting FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`;
        if (waiting > 0) break;
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      await editor.query("COMMIT");
      await recomputed;
    } finally {
      await editor.end();
    }
    const stored = await database.db.device.findUniqueOrThrow({ where: { id: device.deviceId } });
    expect(stored.policyDesired).toEqual({ screen: { timeoutSeconds: 30 } });
    expect(stored.policyDesiredHash).toBe((await effective(device.deviceId)).hash);
  });

  it("queues devices for a recompute in id order, whatever order the table holds them in", async () => {
    const [lower, higher] = [(await enrollDevice(t.app)).deviceId, (await enrollDevice(t.app)).deviceId].sort() as [string, string];
    // Rewritten, the lower id's row lies after the higher one's: a scan in table order meets the higher first.
    await database.db.$executeRaw`UPDATE "Device" SET notes = 'moved' WHERE id = ${lower}::uuid`;
    // Another transaction has queued the higher id and not committed yet.
    const other = new Client({ connectionString: database.url });
    const probe = new Client({ connectionString: database.url });
    await Promise.all([other.connect(), probe.connect()]);
    try {
      await other.query("BEGIN");
      await other.query(`INSERT INTO "PolicyRecompute" ("deviceId", "createdAt") VALUES ($1, now())`, [higher]);
      const queued = database.db.$transaction((tx) => queueRecomputeOf(tx, [higher, lower], new Date()));
      for (let i = 0; i < 100; i++) {
        const { rows } = await probe.query<{ waiting: number }>(
          `SELECT count(*)::int AS waiting FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`,
        );
        if (rows[0]!.waiting > 0) break;
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      // Waiting for the higher id, it has already queued the lower: queueing it again waits.
      await probe.query("SET lock_timeout = '200ms'");
      const lowerQueued = await probe.query(`INSERT INTO "PolicyRecompute" ("deviceId", "createdAt") VALUES ($1, now()) ON CONFLICT DO NOTHING`, [lower]).then(
        () => false,
        (error: { code?: string }) => error.code === "55P03",
      );
      await other.query("COMMIT");
      await queued;
      expect(lowerQueued).toBe(true);
    } finally {
      await Promise.all([other.end(), probe.end()]);
    }
    expect(await database.db.policyRecompute.count()).toBe(2);
  });

  it("refuses an assignment to an unknown device (404) and a second one to the same group (409)", async () => {
    const policy = await createPolicy("P", {});
    expect(
      (await adminRequest(t.app, "POST", `/admin/device-policies/${policy.id}/assignments`, { deviceId: "00000000-0000-4000-8000-000000000000" })).status,
    ).toBe(404);
    await assign(policy.id, { group: "g" });
    expect((await adminRequest(t.app, "POST", `/admin/device-policies/${policy.id}/assignments`, { group: "g", priority: 5 })).status).toBe(409);
  });

  it("refuses to assign a policy to a retired device with 409, and assigns nothing", async () => {
    const device = await enrollDevice(t.app);
    const policy = await createPolicy("P", { screen: { timeoutSeconds: 60 } });
    expect((await adminRequest(t.app, "POST", `/admin/devices/${device.deviceId}/retire`)).status).toBe(200);
    const res = await adminRequest(t.app, "POST", `/admin/device-policies/${policy.id}/assignments`, { deviceId: device.deviceId });
    expect(res.status).toBe(409);
    expect(res.body.error).toMatchObject({ code: "conflict", message: "The device is retired: it takes no more policies" });
    expect(await database.db.policyAssignment.count()).toBe(0);
    expect(await database.db.auditLog.count({ where: { action: "device_policy.assign" } })).toBe(0);
  });

  it("refuses an assignment naming both a device and a group, or neither, saying to give exactly one", async () => {
    const device = await enrollDevice(t.app);
    const policy = await createPolicy("P", {});
    for (const body of [{ deviceId: device.deviceId, group: "lobby" }, { deviceId: device.deviceId, group: "lobby", priority: 3 }, {}, { priority: 3 }]) {
      const res = await adminRequest(t.app, "POST", `/admin/device-policies/${policy.id}/assignments`, body);
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe("validation_failed");
      // The rule is about the body as a whole: no one field of it is the wrong one.
      expect(res.body.error.details).toEqual([{ path: "", message: "Give exactly one of deviceId or group" }]);
    }
    expect(await database.db.policyAssignment.count()).toBe(0);
  });
});

describe("delivery and compliance over heartbeats", () => {
  it("answers the policy until the device reports it applied; a new version makes it pending again; a refused setting is failed with its reason", async () => {
    const device = await enrollDevice(t.app);
    const policy = await createPolicy("Kiosk", { kiosk: { lockTaskPackages: ["com.example.kiosk"] }, restrictions: { camera: false } });
    await assign(policy.id, { deviceId: device.deviceId });
    const heartbeat = (extra: Record<string, unknown> = {}) => request(t.app).post("/v1/heartbeat").auth(device.deviceToken, bearer).send(heartbeatBody(extra));

    const first = HeartbeatResponse.parse((await heartbeat()).body);
    expect(first.policy?.settings).toEqual({ kiosk: { lockTaskPackages: ["com.example.kiosk"] }, restrictions: { camera: false } });
    const hash = first.policy!.hash;

    const applied = await heartbeat({ policy: { appliedHash: hash, failures: [] } });
    expect(applied.body.policy).toBeUndefined();
    expect((await effective(device.deviceId)).compliance).toMatchObject({ status: "compliant", appliedHash: hash, failures: [] });
    // Later heartbeats need not repeat the report.
    expect((await heartbeat()).body.policy).toBeUndefined();

    await adminRequest(t.app, "PATCH", `/admin/device-policies/${policy.id}`, {
      settings: { kiosk: { lockTaskPackages: ["com.example.kiosk"] }, restrictions: { camera: false, usbFileTransfer: false } },
    });
    expect((await effective(device.deviceId)).compliance.status).toBe("pending");
    const next = HeartbeatResponse.parse((await heartbeat()).body);
    expect(next.policy?.hash).not.toBe(hash);
    expect(next.policy?.settings.restrictions).toEqual({ camera: false, usbFileTransfer: false });

    await heartbeat({ policy: { appliedHash: next.policy!.hash, failures: [{ setting: "restrictions.usbFileTransfer", reason: "No USB controller" }] } });
    expect((await effective(device.deviceId)).compliance).toMatchObject({
      status: "failed",
      failures: [{ setting: "restrictions.usbFileTransfer", reason: "No USB controller" }],
    });

    const counts = await adminRequest(t.app, "GET", "/admin/policy-compliance");
    expect(counts.body).toEqual({ none: 0, pending: 0, compliant: 0, failed: 1 });
    const listed = await adminRequest(t.app, "GET", "/admin/devices?compliance=noncompliant");
    expect(listed.body.devices.map((row: { id: string }) => row.id)).toEqual([device.deviceId]);
    expect((await adminRequest(t.app, "GET", "/admin/devices?compliance=compliant")).body.total).toBe(0);
  });

  it("keeps only reported failures that name settings of the device's effective policy; the others are named in the answer, and the heartbeat is recorded all the same", async () => {
    const device = await enrollDevice(t.app);
    const heartbeat = (extra: Record<string, unknown> = {}) => request(t.app).post("/v1/heartbeat").auth(device.deviceToken, bearer).send(heartbeatBody(extra));
    // No effective policy yet: no setting to fail.
    const none = await heartbeat({ policy: { appliedHash: "x", failures: [{ setting: "restrictions.camera", reason: "No camera" }] } });
    expect(none.status).toBe(200);
    expect(none.body.ignoredPolicyFailures).toEqual([
      { path: "policy.failures.0.setting", message: "The device has no effective policy: restrictions.camera is not one of its settings" },
    ]);

    const policy = await createPolicy("Kiosk", { restrictions: { camera: false }, screen: { timeoutSeconds: 60 }, systemUpdate: { type: "postponed" } });
    await assign(policy.id, { deviceId: device.deviceId });
    const { hash } = HeartbeatResponse.parse((await heartbeat()).body).policy!;
    const res = await heartbeat({
      battery: { level: 42, charging: true },
      policy: {
        appliedHash: hash,
        failures: [
          { setting: "restrictions.camera", reason: "No camera" },
          { setting: "kiosk.nonexistent", reason: "?" },
          { setting: "restrictions", reason: "a section, not a setting" },
          { setting: "systemUpdate", reason: "No OTA client" },
          { setting: "garbage ☃", reason: "?" },
          { setting: "restrictions.debugging", reason: "a setting the policy does not set" },
        ],
      },
    });
    expect(res.status).toBe(200);
    expect(HeartbeatResponse.parse(res.body).ignoredPolicyFailures).toEqual([
      { path: "policy.failures.1.setting", message: "kiosk.nonexistent is not a setting of the device's effective policy" },
      { path: "policy.failures.2.setting", message: "restrictions is not a setting of the device's effective policy" },
      { path: "policy.failures.4.setting", message: "garbage ☃ is not a setting of the device's effective policy" },
      { path: "policy.failures.5.setting", message: "restrictions.debugging is not a setting of the device's effective policy" },
    ]);
    expect((await effective(device.deviceId)).compliance).toMatchObject({
      status: "failed",
      appliedHash: hash,
      failures: [
        { setting: "restrictions.camera", reason: "No camera" },
        { setting: "systemUpdate", reason: "No OTA client" },
      ],
    });
    expect((await adminRequest(t.app, "GET", `/admin/devices/${device.deviceId}`)).body.state.battery).toEqual({ level: 42, charging: true });

    // Only valid entries: nothing to say.
    const valid = await heartbeat({ policy: { appliedHash: hash, failures: [{ setting: "screen.timeoutSeconds", reason: "Locked by the OEM" }] } });
    expect(valid.body).not.toHaveProperty("ignoredPolicyFailures");
    expect((await effective(device.deviceId)).compliance.failures).toEqual([{ setting: "screen.timeoutSeconds", reason: "Locked by the OEM" }]);

    // The report is bounded by the contract: 50 entries, 100-character settings, 500-character reasons.
    const many = await heartbeat({
      policy: { appliedHash: hash, failures: Array.from({ length: 51 }, () => ({ setting: "restrictions.camera", reason: "x" })) },
    });
    expect(many.status).toBe(400);
    expect(many.body.error.details).toEqual([expect.objectContaining({ path: "policy.failures" })]);
    const long = await heartbeat({ policy: { appliedHash: hash, failures: [{ setting: "s".repeat(101), reason: "r".repeat(501) }] } });
    expect(long.status).toBe(400);
    expect(long.body.error.details.map((detail: { path: string }) => detail.path)).toEqual(["policy.failures.0.setting", "policy.failures.0.reason"]);
  });

  it("keeps one failure per setting, with the last reason reported for it", async () => {
    const device = await enrollDevice(t.app);
    const heartbeat = (extra: Record<string, unknown> = {}) => request(t.app).post("/v1/heartbeat").auth(device.deviceToken, bearer).send(heartbeatBody(extra));
    const policy = await createPolicy("Kiosk", { restrictions: { camera: false }, screen: { timeoutSeconds: 60 } });
    await assign(policy.id, { deviceId: device.deviceId });
    const { hash } = HeartbeatResponse.parse((await heartbeat()).body).policy!;
    const res = await heartbeat({
      policy: {
        appliedHash: hash,
        failures: [
          { setting: "restrictions.camera", reason: "Camera service busy" },
          { setting: "screen.timeoutSeconds", reason: "Locked by the OEM" },
          { setting: "kiosk.nonexistent", reason: "?" },
          { setting: "restrictions.camera", reason: "Still busy" },
          { setting: "restrictions.camera", reason: "No camera" },
        ],
      },
    });
    expect(res.status).toBe(200);
    // Repeats are not errors of the report: only the entry that names no setting is.
    expect(HeartbeatResponse.parse(res.body).ignoredPolicyFailures).toEqual([
      { path: "policy.failures.2.setting", message: "kiosk.nonexistent is not a setting of the device's effective policy" },
    ]);
    const kept = [
      { setting: "restrictions.camera", reason: "No camera" },
      { setting: "screen.timeoutSeconds", reason: "Locked by the OEM" },
    ];
    expect((await effective(device.deviceId)).compliance).toMatchObject({ status: "failed", failures: kept });
    expect((await database.db.device.findUniqueOrThrow({ where: { id: device.deviceId } })).policyFailures).toEqual(kept);

    // Without any entry to leave out, the repeats are folded all the same.
    const valid = await heartbeat({
      policy: {
        appliedHash: hash,
        failures: [
          { setting: "screen.timeoutSeconds", reason: "Locked by the OEM" },
          { setting: "screen.timeoutSeconds", reason: "Locked by the MDM of the OEM" },
        ],
      },
    });
    expect(valid.body).not.toHaveProperty("ignoredPolicyFailures");
    expect((await effective(device.deviceId)).compliance.failures).toEqual([{ setting: "screen.timeoutSeconds", reason: "Locked by the MDM of the OEM" }]);
  });

  it("keeps exactly the reported failures that policySettingEntries names for the effective policy, every section and top-level setting alike", async () => {
    const settings = {
      kiosk: {
        lockTaskPackages: ["com.example.kiosk"],
        homeApp: "com.example.kiosk",
        statusBar: false,
        notifications: false,
        homeKey: false,
        recentsKey: false,
      },
      restrictions: {
        camera: false,
        usbFileTransfer: false,
        debugging: false,
        factoryReset: false,
        safeMode: false,
        addUsers: false,
        installUnknownApps: false,
      },
      screen: { timeoutSeconds: 600, brightness: 80, orientationLock: "landscape", keepAwakeWhileCharging: true },
      systemUpdate: { type: "windowed", startMinute: 120, endMinute: 240 },
      requiredApps: [{ packageName: "com.example.kiosk", minVersionCode: 210 }],
      autoRelaunch: ["com.example.kiosk"],
    };
    const device = await enrollDevice(t.app);
    await assign((await createPolicy("Everything", settings)).id, { deviceId: device.deviceId });
    const heartbeat = (extra: Record<string, unknown> = {}) => request(t.app).post("/v1/heartbeat").auth(device.deviceToken, bearer).send(heartbeatBody(extra));
    const { hash, settings: applied } = HeartbeatResponse.parse((await heartbeat()).body).policy!;
    const paths = policySettingEntries(applied).map(([path]) => path);
    expect(paths).toHaveLength(20);
    // Near misses: a section alone, a part of a value, a leaf under another section, case, spaces, nothing.
    const others = [
      "kiosk",
      "screen.",
      "restrictions.camera.x",
      "screen.camera",
      "systemUpdate.type",
      "requiredApps.0",
      "Kiosk.statusBar",
      "kioskstatusBar",
      "autoRelaunch ",
      "",
    ];
    const failures = [...paths, ...others].map((setting, index) => ({ setting, reason: `r${index}` }));

    const res = await heartbeat({ policy: { appliedHash: hash, failures } });
    expect(res.status).toBe(200);
    expect(res.body.ignoredPolicyFailures.map((entry: { path: string }) => entry.path)).toEqual(
      others.map((_, index) => `policy.failures.${paths.length + index}.setting`),
    );
    expect((await effective(device.deviceId)).compliance.failures).toEqual(failures.slice(0, paths.length));
  });

  it("counts only devices in service, as the device list's compliance filter does: a retired device leaves both", async () => {
    const policy = await createPolicy("Kiosk", { restrictions: { camera: false } });
    await assign(policy.id, { group: "lobby" });
    const kept = await enrollDevice(t.app);
    const leaving = await enrollDevice(t.app);
    await enrollDevice(t.app);
    for (const device of [kept, leaving]) await adminRequest(t.app, "PATCH", `/admin/devices/${device.deviceId}`, { groups: ["lobby"] });
    const counts = async () => (await adminRequest(t.app, "GET", "/admin/policy-compliance")).body;
    const listed = async (compliance: string) => (await adminRequest(t.app, "GET", `/admin/devices?compliance=${compliance}`)).body.total;
    expect(await counts()).toEqual({ none: 1, pending: 2, compliant: 0, failed: 0 });
    expect(await listed("pending")).toBe(2);

    expect((await adminRequest(t.app, "POST", `/admin/devices/${leaving.deviceId}/retire`)).status).toBe(200);
    expect(await counts()).toEqual({ none: 1, pending: 1, compliant: 0, failed: 0 });
    expect(await listed("pending")).toBe(1);
    expect(await listed("noncompliant")).toBe(1);
    expect(await listed("none")).toBe(1);
  });

  it("folds auto-relaunch in: a policy's autoRelaunch app reported stopped is relaunched", async () => {
    const device = await enrollDevice(t.app);
    const policy = await createPolicy("Relaunch", { autoRelaunch: ["com.example.kiosk"] });
    await assign(policy.id, { deviceId: device.deviceId });
    const answer = await request(t.app)
      .post("/v1/heartbeat")
      .auth(device.deviceToken, bearer)
      .send(heartbeatBody({ apps: [{ packageName: "com.example.kiosk", versionName: "2.1.0", versionCode: 210, running: false, foreground: false }] }));
    expect(answer.body.commands).toEqual([expect.objectContaining({ type: "relaunch_app", payload: { packageName: "com.example.kiosk" } })]);
  });
});

describe("required apps", () => {
  const SCANNER = "com.example.scanner";

  async function addCatalogueVersion(packageName: string, versionCode: number) {
    const cert = "c".repeat(64);
    await database.db.catalogueApp.upsert({ where: { packageName }, create: { packageName, certSha256: cert }, update: {} });
    await database.db.appVersion.create({
      data: {
        id: randomUUID(),
        packageName,
        versionCode,
        versionName: `${versionCode}`,
        sha256: createHash("sha256").update(`${packageName}:${versionCode}`).digest("hex"),
        sizeBytes: 1000n,
        certSha256: cert,
      },
    });
  }

  it("warns, without refusing, when the catalogue has no version that satisfies a required app", async () => {
    await addCatalogueVersion(SCANNER, 4);
    const policy = await createPolicy("Scanner", { requiredApps: [{ packageName: SCANNER, minVersionCode: 5 }] });
    expect(policy.warnings).toEqual([{ path: `requiredApps.${SCANNER}`, message: expect.stringContaining("has only up to version 4") }]);

    await addCatalogueVersion(SCANNER, 5);
    const fetched = await adminRequest(t.app, "GET", `/admin/device-policies/${policy.id}`);
    expect(fetched.body.warnings).toEqual([]);
  });

  it("keeps a device that lacks a required app failed, naming the package and version, until its heartbeat reports the app at that version", async () => {
    await addCatalogueVersion(SCANNER, 7);
    const device = await enrollDevice(t.app);
    const policy = await createPolicy("Scanner", { requiredApps: [{ packageName: SCANNER, minVersionCode: 5 }] });
    await assign(policy.id, { deviceId: device.deviceId });
    const heartbeat = (extra: Record<string, unknown> = {}) => request(t.app).post("/v1/heartbeat").auth(device.deviceToken, bearer).send(heartbeatBody(extra));
    const kiosk = { packageName: "com.example.kiosk", versionCode: 210, running: true };

    const { hash } = HeartbeatResponse.parse((await heartbeat()).body).policy!;
    // Applied, but the app list (the kiosk only) lacks the scanner.
    await heartbeat({ apps: [kiosk], policy: { appliedHash: hash, failures: [] } });
    const lacking = await effective(device.deviceId);
    expect(lacking.compliance).toMatchObject({
      status: "failed",
      failures: [],
      missingApps: [
        {
          packageName: SCANNER,
          minVersionCode: 5,
          installedVersionCode: null,
          catalogueVersionCode: 7,
          reason: expect.stringContaining(`${SCANNER} must be at version 5 or later`),
        },
      ],
    });
    expect(lacking.warnings).toEqual([]);
    expect((await adminRequest(t.app, "GET", "/admin/policy-compliance")).body).toEqual({ none: 0, pending: 0, compliant: 0, failed: 1 });
    expect((await adminRequest(t.app, "GET", "/admin/devices?compliance=noncompliant")).body.total).toBe(1);

    // Too old a version is no better.
    await heartbeat({ apps: [kiosk, { packageName: SCANNER, versionCode: 4, running: false }] });
    expect((await effective(device.deviceId)).compliance).toMatchObject({
      status: "failed",
      missingApps: [{ packageName: SCANNER, installedVersionCode: 4, reason: expect.stringContaining("the device reports version 4") }],
    });

    await heartbeat({ apps: [kiosk, { packageName: SCANNER, versionCode: 7, running: false }] });
    expect((await effective(device.deviceId)).compliance).toMatchObject({ status: "compliant", missingApps: [] });
    expect((await adminRequest(t.app, "GET", "/admin/policy-compliance")).body).toEqual({ none: 0, pending: 0, compliant: 1, failed: 0 });
    expect((await adminRequest(t.app, "GET", "/admin/devices?compliance=compliant")).body.total).toBe(1);
  });

  it("names a missing app the catalogue cannot satisfy in the device's effective policy, as a warning too", async () => {
    const device = await enrollDevice(t.app);
    const policy = await createPolicy("Scanner", { requiredApps: [{ packageName: SCANNER, minVersionCode: 5 }] });
    await assign(policy.id, { deviceId: device.deviceId });
    const state = await effective(device.deviceId);
    expect(state.compliance.status).toBe("pending");
    expect(state.compliance.missingApps).toEqual([
      expect.objectContaining({ packageName: SCANNER, catalogueVersionCode: null, reason: expect.stringContaining("has no version 5 or later") }),
    ]);
    expect(state.warnings).toEqual([{ path: `requiredApps.${SCANNER}`, message: expect.stringContaining("has no version of it") }]);
  });
});

describe("the policy worker: FCM wake-ups and required app installs", () => {
  const SCANNER = "com.example.scanner";
  const PUBLIC_API_URL = "https://mdm.example.test";
  const SCANNER_SHA = createHash("sha256").update("scanner v7").digest("hex");

  async function addScannerV7() {
    await database.db.catalogueApp.create({ data: { packageName: SCANNER, certSha256: "c".repeat(64) } });
    await database.db.appVersion.create({
      data: { id: randomUUID(), packageName: SCANNER, versionCode: 7, sha256: SCANNER_SHA, sizeBytes: 1000n, certSha256: "c".repeat(64) },
    });
  }

  it("queues, with the change, one row per device whose policy changed; the worker wakes it by FCM and sends the catalogue version of a required app it lacks, once", async () => {
    t = createTestApp(database.db, { env: { PUBLIC_API_URL } });
    await addScannerV7();
    const device = await enrollDevice(t.app, { fcmToken: "fcm-token-1" });
    const policy = await createPolicy("Scanner", { requiredApps: [{ packageName: SCANNER, minVersionCode: 5 }] });
    await assign(policy.id, { deviceId: device.deviceId });
    expect(await database.db.policyDispatch.findMany({ select: { deviceId: true, attempts: true } })).toEqual([{ deviceId: device.deviceId, attempts: 0 }]);

    expect(await t.dispatchPolicies()).toBe(1);
    const { hash } = await effective(device.deviceId);
    expect(t.push.sent).toEqual([expect.objectContaining({ token: "fcm-token-1", data: { kind: "policy", hash } })]);
    const installs = await database.db.command.findMany({ where: { deviceId: device.deviceId, type: "install_app" } });
    expect(installs).toHaveLength(1);
    expect(installs[0]).toMatchObject({ createdBy: "system:required-apps", status: "queued" });
    expect(installs[0]?.payload).toMatchObject({
      packageName: SCANNER,
      versionCode: 7,
      sha256: SCANNER_SHA,
      url: expect.stringMatching(new RegExp(`^${PUBLIC_API_URL}/v1/app-files/${SCANNER_SHA}\\?expires=\\d+&signature=[0-9a-f]{64}$`)),
    });
    expect(await database.db.policyDispatch.count()).toBe(0);
    expect((await effective(device.deviceId)).compliance.missingApps).toEqual([
      expect.objectContaining({ catalogueVersionCode: 7, reason: expect.stringContaining("the server sends it the catalogue's version 7") }),
    ]);

    // Another change: woken again, but the install still under way is not sent twice.
    await adminRequest(t.app, "PATCH", `/admin/device-policies/${policy.id}`, {
      settings: { requiredApps: [{ packageName: SCANNER, minVersionCode: 5 }], screen: { timeoutSeconds: 60 } },
    });
    expect(await t.dispatchPolicies()).toBe(1);
    expect(t.push.sent).toHaveLength(2);
    expect(await database.db.command.count({ where: { deviceId: device.deviceId, type: "install_app" } })).toBe(1);
  });

  it("sends no push to a device whose socket lease is live, nor to one that already reported the policy, nor to one without a token", async () => {
    const connected = await enrollDevice(t.app, { fcmToken: "fcm-connected" });
    const tokenless = await enrollDevice(t.app);
    const applied = await enrollDevice(t.app, { fcmToken: "fcm-applied" });
    const policy = await createPolicy("Screen", { screen: { timeoutSeconds: 60 } });
    await assign(policy.id, { deviceId: applied.deviceId });
    const heartbeat = (extra: Record<string, unknown> = {}) =>
      request(t.app).post("/v1/heartbeat").auth(applied.deviceToken, bearer).send(heartbeatBody(extra));
    // It heartbeats before the worker gets to it: applied, nothing to wake it for.
    const { hash } = HeartbeatResponse.parse((await heartbeat()).body).policy!;
    await heartbeat({ policy: { appliedHash: hash, failures: [] } });
    await database.db.device.update({
      where: { id: connected.deviceId },
      data: { socketInstanceId: t.deps.instanceId, socketConnectedAt: new Date(), socketLeaseExpiresAt: new Date(Date.now() + 60_000) },
    });
    await assign(policy.id, { deviceId: connected.deviceId });
    await assign(policy.id, { deviceId: tokenless.deviceId });
    expect(await t.dispatchPolicies()).toBe(3);
    expect(t.push.sent).toEqual([]);
    expect(await database.db.policyDispatch.count()).toBe(0);
  });

  it("retries a failed push at its backoff, marks a token FCM says is gone, and works a large group through in bounded batches", async () => {
    let inFlight = 0;
    let maxInFlight = 0;
    const tokens: string[] = [];
    const push = {
      name: "counting",
      async send(message: { token: string }) {
        inFlight += 1;
        maxInFlight = Math.max(maxInFlight, inFlight);
        await new Promise((resolve) => setTimeout(resolve, 2));
        inFlight -= 1;
        tokens.push(message.token);
        if (message.token === "token-flaky") return { ok: false as const, reason: "failed" as const, error: "unavailable" };
        if (message.token === "token-gone") return { ok: false as const, reason: "token_invalid" as const, error: "unregistered" };
        return { ok: true as const, outcome: "sent" as const, messageId: `m-${tokens.length}` };
      },
    };
    t = createTestApp(database.db, { push });
    const DEVICES = 450;
    const ids = Array.from({ length: DEVICES }, () => randomUUID());
    await database.db.device.createMany({
      data: ids.map((id, index) => ({
        id,
        tokenHash: "0".repeat(64),
        groups: ["wave"],
        fcmToken: index === 0 ? "token-flaky" : index === 1 ? "token-gone" : `token-${index}`,
      })),
    });
    const policy = await createPolicy("Wave", { screen: { timeoutSeconds: 60 } });
    await assign(policy.id, { group: "wave" });
    expect(await database.db.policyDispatch.count()).toBe(DEVICES);

    expect(await t.dispatchPolicies()).toBe(DEVICES);
    expect(tokens).toHaveLength(DEVICES);
    expect(new Set(tokens).size).toBe(DEVICES);
    expect(maxInFlight).toBeLessThanOrEqual(16);
    expect((await database.db.device.findUnique({ where: { id: ids[1] } }))?.fcmTokenInvalidAt).not.toBeNull();
    // Only the failed push stays, due at its retry.
    const left = await database.db.policyDispatch.findMany();
    expect(left).toEqual([expect.objectContaining({ deviceId: ids[0], attempts: 1 })]);
    expect(left[0]!.dueAt.getTime()).toBeGreaterThan(Date.now());
    expect(await t.dispatchPolicies()).toBe(0);
    t.clock.advance(t.deps.env.COMMAND_RETRY_BASE_SECONDS + 1);
    expect(await t.dispatchPolicies()).toBe(1);
    expect(tokens.filter((token) => token === "token-flaky")).toHaveLength(2);
  });
});

describe("recomputing effective policies: queued in the change's transaction, set-based, finished by any instance's worker", () => {
  it("answers an assignment to a big group after the first devices, leaves the rest queued, and another instance's worker completes them", async () => {
    const DEVICES = 2500;
    const ids = Array.from({ length: DEVICES }, () => randomUUID());
    await database.db.device.createMany({ data: ids.map((id) => ({ id, tokenHash: "0".repeat(64), groups: ["fleet"] })) });
    const retired = randomUUID();
    await database.db.device.create({ data: { id: retired, tokenHash: "0".repeat(64), groups: ["fleet"], retiredAt: new Date() } });
    const policy = await createPolicy("Fleet", { screen: { timeoutSeconds: 60 } });
    const withHash = () => database.db.device.count({ where: { id: { in: ids }, policyDesiredHash: { not: null } } });

    await assign(policy.id, { group: "fleet" });
    // The request did RECOMPUTE_INLINE_DEVICES itself; the rest wait as rows, not as promises of a dead instance.
    expect(await withHash()).toBe(1000);
    expect(await database.db.policyRecompute.count()).toBe(DEVICES - 1000);
    expect(await database.db.policyRecompute.count({ where: { deviceId: retired } })).toBe(0);

    const other = createTestApp(database.db);
    expect(await other.recomputePolicies()).toBe(DEVICES - 1000);
    expect(await withHash()).toBe(DEVICES);
    expect(await database.db.policyRecompute.count()).toBe(0);
    expect(await database.db.policyDispatch.count()).toBe(DEVICES);
    const hashes = await database.db.device.groupBy({ by: ["policyDesiredHash"], where: { id: { in: ids } } });
    expect(hashes).toHaveLength(1);
    expect(hashes[0]!.policyDesiredHash).toBe((await effective(ids[0]!)).hash);

    // An edit queues the same devices again in its own transaction, with the new version.
    const edit = await adminRequest(t.app, "PATCH", `/admin/device-policies/${policy.id}`, { settings: { screen: { timeoutSeconds: 120 } } });
    expect(edit.status).toBe(200);
    expect(await database.db.policyRecompute.count()).toBe(DEVICES - 1000);
    expect(await t.recomputePolicies()).toBe(DEVICES - 1000);
    expect(await database.db.device.count({ where: { id: { in: ids }, policyDesired: { equals: { screen: { timeoutSeconds: 120 } } } } })).toBe(DEVICES);
  });

  it("leaves a batch queued when the transaction that claimed it fails", async () => {
    const device = await enrollDevice(t.app);
    await database.db.policyRecompute.create({ data: { deviceId: device.deviceId } });
    await expect(
      database.db.$transaction(async (tx) => {
        await tx.$executeRaw`DELETE FROM "PolicyRecompute" WHERE "deviceId" IN (SELECT "deviceId" FROM "PolicyRecompute" FOR UPDATE SKIP LOCKED)`;
        throw new Error("the instance died");
      }),
    ).rejects.toThrow("the instance died");
    expect(await database.db.policyRecompute.count()).toBe(1);
    expect(await t.recomputePolicies()).toBe(1);
    expect(await database.db.policyRecompute.count()).toBe(0);
  });
});
