import { ListAlertsResponse } from "@mdm/contracts";
import request from "supertest";
import { type TestApp, type TestDatabase, adminRequest, createTestApp, createTestDatabase, enrollDevice, heartbeatBody, resetTables } from "../../test";
import { AUTO_RELAUNCH_ACTOR, sweepOffline } from "./fleet-monitor";

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

const bearer = { type: "bearer" } as const;
const heartbeat = (token: string, body: Record<string, unknown> = {}) => request(t.app).post("/v1/heartbeat").auth(token, bearer).send(heartbeatBody(body));

describe("devices: alias, notes, groups and the fleet overview", () => {
  it("lets an admin set alias, notes and groups, and filters and counts by them", async () => {
    const till = await enrollDevice(t.app, { model: "TC52" });
    const kiosk = await enrollDevice(t.app, { model: "M10" });
    const updated = await adminRequest(t.app, "PATCH", `/admin/devices/${till.deviceId}`, { alias: "Till 3", notes: "by the door", groups: ["north", "tills", "north"] });
    expect(updated.status).toBe(200);
    expect(updated.body).toMatchObject({ alias: "Till 3", notes: "by the door", groups: ["north", "tills"] });
    await adminRequest(t.app, "PATCH", `/admin/devices/${kiosk.deviceId}`, { groups: ["north"] });
    await heartbeat(till.deviceToken, { battery: { level: 15, charging: false } });

    const north = await adminRequest(t.app, "GET", "/admin/devices?group=north&sort=alias&order=asc");
    expect(north.body.total).toBe(2);
    expect(north.body.devices.map((device: { alias: string | null }) => device.alias)).toEqual(["Till 3", null]);
    const low = await adminRequest(t.app, "GET", "/admin/devices?batteryBelow=20");
    expect(low.body.devices.map((device: { id: string }) => device.id)).toEqual([till.deviceId]);
    const online = await adminRequest(t.app, "GET", "/admin/devices?status=online");
    expect(online.body.total).toBe(1);
    const searched = await adminRequest(t.app, "GET", "/admin/devices?search=till");
    expect(searched.body.devices.map((device: { id: string }) => device.id)).toEqual([till.deviceId]);

    const summary = await adminRequest(t.app, "GET", "/admin/fleet/summary");
    expect(summary.body).toEqual({ total: 2, online: 1, offline: 1, lowBattery: 1, commandsInFlight: 0 });
    const groups = await adminRequest(t.app, "GET", "/admin/groups");
    expect(groups.body.groups).toEqual([
      { name: "north", devices: 2, online: 1 },
      { name: "tills", devices: 1, online: 1 },
    ]);
    expect(await database.db.auditLog.count({ where: { action: "device.update" } })).toBe(2);
  });

  it("pages through devices without overlap", async () => {
    for (let i = 0; i < 5; i++) await enrollDevice(t.app);
    const first = await adminRequest(t.app, "GET", "/admin/devices?limit=2&offset=0");
    const second = await adminRequest(t.app, "GET", "/admin/devices?limit=2&offset=2");
    const third = await adminRequest(t.app, "GET", "/admin/devices?limit=2&offset=4");
    const ids = [...first.body.devices, ...second.body.devices, ...third.body.devices].map((device: { id: string }) => device.id);
    expect(new Set(ids).size).toBe(5);
    expect(first.body).toMatchObject({ total: 5, limit: 2, offset: 0 });
  });

  it.each([
    [{}, ""],
    [{ groups: ["bad/name"] }, "groups.0"],
    [{ alias: "x".repeat(101) }, "alias"],
    [{ owner: "me" }, ""],
  ])("refuses the update %j with 400", async (body, path) => {
    const device = await enrollDevice(t.app);
    const res = await adminRequest(t.app, "PATCH", `/admin/devices/${device.deviceId}`, body);
    expect(res.status).toBe(400);
    expect(res.body.error.details.map((issue: { path: string }) => issue.path)).toContain(path);
  });

  it("answers 404 for an unknown device", async () => {
    const res = await adminRequest(t.app, "PATCH", "/admin/devices/00000000-0000-4000-8000-000000000000", { alias: "x" });
    expect(res.status).toBe(404);
  });

  it("serves the battery and memory history, oldest first", async () => {
    const device = await enrollDevice(t.app);
    await heartbeat(device.deviceToken, { battery: { level: 90, charging: false } });
    t.clock.advance(60);
    await heartbeat(device.deviceToken, { battery: { level: 85, charging: false } });
    const res = await adminRequest(t.app, "GET", `/admin/devices/${device.deviceId}/telemetry?hours=2`);
    expect(res.status).toBe(200);
    expect(res.body.points.map((point: { batteryLevel: number }) => point.batteryLevel)).toEqual([90, 85]);
    expect(res.body.points[0].memoryTotal).toBe(4_000_000_000);
    expect((await adminRequest(t.app, "GET", `/admin/devices/${device.deviceId}/telemetry?hours=49`)).status).toBe(400);
  });

  it("aggregates the history into at most 500 time buckets, with the right means and latest values", async () => {
    const device = await enrollDevice(t.app);
    const now = t.clock.now().getTime();
    t.clock.now = () => new Date(now);
    // hours=1: buckets of ceil(3600 / 500) = 8 s counted from an hour ago; three readings a second.
    const since = now - 3600_000;
    const rows = Array.from({ length: 3 * 3600 }, (_, i) => ({
      deviceId: device.deviceId,
      receivedAt: new Date(since + Math.floor(i / 3) * 1000 + (i % 3) * 100),
      batteryLevel: i % 2 === 0 ? 40 : 50,
      batteryCharging: i % 3 === 2,
      memoryAvailable: BigInt(1000 + (i % 3)),
      networkType: i % 3 === 2 ? "cellular" : "wifi",
    }));
    await database.db.telemetryEvent.createMany({ data: rows });
    const res = await adminRequest(t.app, "GET", `/admin/devices/${device.deviceId}/telemetry?hours=1`);
    expect(res.status).toBe(200);
    expect(res.body.bucketSeconds).toBe(8);
    expect(res.body.points).toHaveLength(450);
    const [first] = res.body.points;
    // The first bucket holds the first 8 seconds: 24 readings, half at 40 and half at 50.
    expect(first).toEqual({
      at: new Date(since).toISOString(),
      samples: 24,
      batteryLevel: 45,
      batteryCharging: true,
      memoryTotal: null,
      memoryAvailable: 1001,
      storageAvailable: null,
      networkType: "cellular",
    });
    expect(res.body.points[1].at).toBe(new Date(since + 8000).toISOString());
    expect(res.body.points.reduce((sum: number, point: { samples: number }) => sum + point.samples, 0)).toBe(rows.length);

    // A wider window over the same readings caps the points at 500.
    const day = await adminRequest(t.app, "GET", `/admin/devices/${device.deviceId}/telemetry?hours=48`);
    expect(day.body.bucketSeconds).toBe(346);
    expect(day.body.points.length).toBeLessThanOrEqual(500);
  });

  it("caps the points at 500 however the readings spread over the window", async () => {
    const device = await enrollDevice(t.app);
    const now = t.clock.now().getTime();
    t.clock.now = () => new Date(now);
    // One reading every 2 minutes over 48 hours, up to the very last millisecond.
    const rows = Array.from({ length: 1441 }, (_, i) => ({ deviceId: device.deviceId, receivedAt: new Date(now - i * 120_000), batteryLevel: 50 }));
    await database.db.telemetryEvent.createMany({ data: rows });
    const res = await adminRequest(t.app, "GET", `/admin/devices/${device.deviceId}/telemetry?hours=48`);
    expect(res.body.points).toHaveLength(500);
    expect(res.body.points.reduce((sum: number, point: { samples: number }) => sum + point.samples, 0)).toBe(rows.length);
  });

  it("serves the app list's changes, not a copy per heartbeat", async () => {
    const device = await enrollDevice(t.app);
    const kiosk = { packageName: "com.example.kiosk", versionName: "2.1.0", versionCode: 210, running: true, foreground: true };
    await heartbeat(device.deviceToken, { apps: [kiosk] });
    t.clock.advance(60);
    await heartbeat(device.deviceToken, { apps: [kiosk] });
    t.clock.advance(60);
    await heartbeat(device.deviceToken, { apps: [{ ...kiosk, running: false }] });
    t.clock.advance(60);
    await heartbeat(device.deviceToken, { apps: undefined });
    const events = await database.db.telemetryEvent.findMany({ where: { deviceId: device.deviceId }, orderBy: { receivedAt: "asc" } });
    expect(events.map((event) => event.appStatus === null)).toEqual([false, true, false, true]);
    const res = await adminRequest(t.app, "GET", `/admin/devices/${device.deviceId}/telemetry?hours=1`);
    expect(res.body.appChanges.map((change: { apps: Array<{ running: boolean }> }) => change.apps[0]!.running)).toEqual([true, false]);
    expect(res.body.points.map((point: { networkType: string }) => point.networkType)).toEqual(["wifi", "wifi", "wifi", "wifi"]);
    // The device keeps its latest list.
    expect((await adminRequest(t.app, "GET", `/admin/devices/${device.deviceId}`)).body.state.apps[0].running).toBe(false);
  });
});

describe("auto-relaunch policies", () => {
  const stopped = { apps: [{ packageName: "com.example.kiosk", running: false }] };

  it("queues a relaunch when a heartbeat reports the app stopped, once per debounce window", async () => {
    const device = await enrollDevice(t.app);
    const policy = await adminRequest(t.app, "POST", "/admin/policies", { deviceId: device.deviceId, packageName: "com.example.kiosk" });
    expect(policy.status).toBe(201);

    await heartbeat(device.deviceToken); // running: nothing to do
    expect(await database.db.command.count()).toBe(0);
    await heartbeat(device.deviceToken, stopped);
    await heartbeat(device.deviceToken, stopped);
    const commands = await adminRequest(t.app, "GET", `/admin/commands?deviceId=${device.deviceId}`);
    expect(commands.body.total).toBe(1);
    expect(commands.body.commands[0]).toMatchObject({ type: "relaunch_app", payload: { packageName: "com.example.kiosk" }, createdBy: AUTO_RELAUNCH_ACTOR });

    t.clock.advance(121);
    await heartbeat(device.deviceToken, stopped);
    expect((await adminRequest(t.app, "GET", `/admin/commands?deviceId=${device.deviceId}&type=relaunch_app`)).body.total).toBe(2);
  });

  it("applies a group policy to the group's devices only, and can be deleted", async () => {
    const inGroup = await enrollDevice(t.app);
    const outside = await enrollDevice(t.app);
    await adminRequest(t.app, "PATCH", `/admin/devices/${inGroup.deviceId}`, { groups: ["kiosks"] });
    const created = await adminRequest(t.app, "POST", "/admin/policies", { group: "kiosks", packageName: "com.example.kiosk" });
    await heartbeat(inGroup.deviceToken, stopped);
    await heartbeat(outside.deviceToken, stopped);
    expect(await database.db.command.count({ where: { deviceId: inGroup.deviceId } })).toBe(1);
    expect(await database.db.command.count({ where: { deviceId: outside.deviceId } })).toBe(0);

    expect((await adminRequest(t.app, "DELETE", `/admin/policies/${created.body.id}`)).status).toBe(204);
    expect((await adminRequest(t.app, "GET", "/admin/policies")).body.policies).toEqual([]);
    expect((await adminRequest(t.app, "DELETE", `/admin/policies/${created.body.id}`)).status).toBe(404);
  });

  it("refuses a duplicate policy with 409, an unknown device with 404 and a policy with both targets with 400", async () => {
    const device = await enrollDevice(t.app);
    const body = { deviceId: device.deviceId, packageName: "com.example.kiosk" };
    expect((await adminRequest(t.app, "POST", "/admin/policies", body)).status).toBe(201);
    expect((await adminRequest(t.app, "POST", "/admin/policies", body)).status).toBe(409);
    expect((await adminRequest(t.app, "POST", "/admin/policies", { ...body, deviceId: "00000000-0000-4000-8000-000000000000" })).status).toBe(404);
    expect((await adminRequest(t.app, "POST", "/admin/policies", { ...body, group: "x" })).status).toBe(400);
  });
});

describe("offline detection and alerts", () => {
  async function wentQuiet(count = 1) {
    await adminRequest(t.app, "PATCH", "/admin/alert-settings", { recipients: ["ops@example.com"], offlineAfterSeconds: 240 });
    const devices = [];
    for (let i = 0; i < count; i++) {
      const device = await enrollDevice(t.app);
      await heartbeat(device.deviceToken);
      devices.push(device);
    }
    t.clock.advance(241);
    return devices;
  }

  it("marks a device that stopped heartbeating offline and sends exactly one alert mail", async () => {
    const [device] = await wentQuiet();
    expect((await sweepOffline(t.deps)).map((row) => row.id)).toEqual([device!.deviceId]);
    expect(await sweepOffline(t.deps)).toEqual([]);
    const outbox = await t.outbox();
    expect(outbox).toHaveLength(1);
    expect(outbox[0]).toMatchObject({ kind: "alert", to: ["ops@example.com"], subject: expect.stringContaining("offline"), status: "queued" });
    expect(outbox[0]!.text).toContain(device!.deviceId);
    const view = await adminRequest(t.app, "GET", `/admin/devices/${device!.deviceId}`);
    expect(view.body).toMatchObject({ online: false, offlineSince: expect.any(String) });
    const alerts = await adminRequest(t.app, "GET", "/admin/alerts");
    expect(alerts.body.alerts).toEqual([
      expect.objectContaining({ kind: "device_offline", deviceId: device!.deviceId, recipients: ["ops@example.com"], mail: { id: outbox[0]!.id.toString(), status: "queued" } }),
    ]);
  });

  it("shows each alert with its mail's status from the outbox: recorded, not sent, without a provider", async () => {
    await wentQuiet();
    await sweepOffline(t.deps);
    await t.sendMail();
    const alerts = await adminRequest(t.app, "GET", "/admin/alerts");
    expect(ListAlertsResponse.parse(alerts.body).alerts).toEqual([expect.objectContaining({ mail: expect.objectContaining({ status: "recorded" }), raisedAt: expect.any(String) })]);
  });

  it("does not mail again for a device flapping within the cooldown", async () => {
    const [device] = await wentQuiet();
    await sweepOffline(t.deps);
    await heartbeat(device!.deviceToken); // back online
    t.clock.advance(241);
    await sweepOffline(t.deps); // offline again, 4 minutes later
    expect(await t.outbox()).toHaveLength(1);
    t.clock.advance(3600);
    await heartbeat(device!.deviceToken);
    t.clock.advance(241);
    await sweepOffline(t.deps);
    expect(await t.outbox()).toHaveLength(2);
  });

  it("reports many devices going offline together in one mail", async () => {
    await wentQuiet(3);
    await sweepOffline(t.deps);
    expect(await t.outbox()).toHaveLength(1);
    expect((await t.outbox())[0]!.subject).toBe("3 devices went offline");
    expect(await database.db.alert.count()).toBe(3);
  });

  it("alerts once when the configured share of a group is offline", async () => {
    const devices = await wentQuiet(2);
    const healthy = await enrollDevice(t.app);
    await heartbeat(healthy.deviceToken);
    for (const device of [...devices, healthy]) await adminRequest(t.app, "PATCH", `/admin/devices/${device.deviceId}`, { groups: ["store-7"] });
    await adminRequest(t.app, "PATCH", "/admin/alert-settings", { groupOfflinePercent: 50 });
    await sweepOffline(t.deps);
    const groupMails = (await t.outbox()).filter((mail) => mail.subject.startsWith("Group store-7"));
    expect(groupMails).toHaveLength(1);
    expect(groupMails[0]!.subject).toBe("Group store-7: 2 of 3 devices offline");
  });

  it("sends nothing when alerts are disabled", async () => {
    await wentQuiet();
    await adminRequest(t.app, "PATCH", "/admin/alert-settings", { enabled: false });
    expect(await sweepOffline(t.deps)).toHaveLength(1);
    expect(await t.outbox()).toHaveLength(0);
  });

  it("validates alert settings", async () => {
    const res = await adminRequest(t.app, "PATCH", "/admin/alert-settings", { recipients: ["not-an-email"], offlineAfterSeconds: 5 });
    expect(res.status).toBe(400);
    expect(res.body.error.details.map((issue: { path: string }) => issue.path).sort()).toEqual(["offlineAfterSeconds", "recipients.0"]);
    const current = await adminRequest(t.app, "GET", "/admin/alert-settings");
    // The default threshold: two missed 60 s heartbeats plus 30 s.
    expect(current.body).toEqual({ enabled: true, offlineAfterSeconds: 150, recipients: [], groupOfflinePercent: null, cooldownMinutes: 60 });
  });
});
