import { AlertIncidentDetail, ListAlertsResponse, ListIncidentsResponse, signAdminRequest } from "@mdm/contracts";
import { randomUUID } from "node:crypto";
import { Client } from "pg";
import request from "supertest";
import { Prisma } from "../../generated/prisma/client";
import {
  TEST_ADMIN_KEY,
  TEST_HMAC_SECRET,
  TEST_HOST,
  type TestApp,
  type TestDatabase,
  adminRequest,
  createTestApp,
  createTestDatabase,
  describeWithPostgres,
  enrollDevice,
  heartbeatBody,
  resetTables,
} from "../../test";
import { AUTO_RELAUNCH_ACTOR, SWEEP_STEP_DEVICES, lowBatteryCandidates, markOffline, sendDueAlertDigest, sweepOffline } from "./fleet-monitor";

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
    const updated = await adminRequest(t.app, "PATCH", `/admin/devices/${till.deviceId}`, {
      alias: "Till 3",
      notes: "by the door",
      groups: ["north", "tills", "north"],
    });
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
    // Each point is placed at its heartbeat, never before the device enrolled (a bucket's start may be).
    const heartbeats = await database.db.telemetryEvent.findMany({ where: { deviceId: device.deviceId }, orderBy: { receivedAt: "asc" } });
    expect(res.body.points.map((point: { at: string }) => point.at)).toEqual(heartbeats.map((row) => row.receivedAt.toISOString()));
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
    // The first bucket holds the first 8 seconds: 24 readings, half at 40 and half at 50,
    // the first of them at its start.
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
    await admin("PATCH", "/admin/alert-settings", { recipients: ["ops@example.com"], offlineAfterSeconds: 240 });
    const devices = [];
    for (let i = 0; i < count; i++) {
      const device = await enrollDevice(t.app);
      await heartbeat(device.deviceToken);
      devices.push(device);
    }
    t.clock.advance(241);
    return devices;
  }
  const windowEnd = () => t.clock.advance(15 * 60);
  /** A signed admin request timed by the test clock, which these tests move past the signature window. */
  async function admin(method: "GET" | "POST" | "PATCH" | "DELETE", pathWithQuery: string, body?: unknown) {
    const raw = body === undefined ? "" : JSON.stringify(body);
    const timestamp = Math.floor(t.clock.now().getTime() / 1000);
    const headers = await signAdminRequest({
      adminKey: TEST_ADMIN_KEY,
      hmacSecret: TEST_HMAC_SECRET,
      method,
      host: TEST_HOST,
      pathWithQuery,
      body: raw,
      timestamp,
    });
    const call = request(t.app)[method.toLowerCase() as "get" | "post" | "patch"](pathWithQuery).set(headers).set("Host", TEST_HOST);
    return body === undefined ? call : call.set("Content-Type", "application/json").send(raw);
  }

  it("marks a device that stopped heartbeating offline and mails it once, in the window's digest", async () => {
    const [device] = await wentQuiet();
    expect((await sweepOffline(t.deps)).map((row) => row.id)).toEqual([device!.deviceId]);
    expect(await sweepOffline(t.deps)).toEqual([]);
    // The digest collects the alert window's events before it is mailed.
    expect(await t.outbox()).toHaveLength(0);
    windowEnd();
    await sweepOffline(t.deps);
    await sweepOffline(t.deps);
    const outbox = await t.outbox();
    expect(outbox).toHaveLength(1);
    expect(outbox[0]).toMatchObject({ kind: "alert", to: ["ops@example.com"], subject: "Alerts: 1 device went offline", status: "queued" });
    // The device by its page's link, the time readable, the incidents a click away.
    expect(outbox[0]!.text).toContain(`${t.deps.env.WEB_URL}/devices/${device!.deviceId}`);
    expect(outbox[0]!.text).toMatch(/, \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC\n/);
    expect(outbox[0]!.text).toContain(`Incidents: ${t.deps.env.WEB_URL}/alerts`);
    expect(outbox[0]!.text).not.toContain(`(${device!.deviceId})`);
    const view = await admin("GET", `/admin/devices/${device!.deviceId}`);
    expect(view.body).toMatchObject({ online: false, offlineSince: expect.any(String) });
    const alerts = await admin("GET", "/admin/alerts");
    expect(alerts.body.alerts).toEqual([
      expect.objectContaining({ kind: "digest", deviceId: null, recipients: ["ops@example.com"], mail: { id: outbox[0]!.id.toString(), status: "queued" } }),
    ]);
  });

  it("shows each alert with its mail's status from the outbox: recorded, not sent, without a provider", async () => {
    await wentQuiet();
    await sweepOffline(t.deps);
    windowEnd();
    await sweepOffline(t.deps);
    await t.sendMail();
    const alerts = await admin("GET", "/admin/alerts");
    expect(ListAlertsResponse.parse(alerts.body).alerts).toEqual([
      expect.objectContaining({ mail: expect.objectContaining({ status: "recorded" }), raisedAt: expect.any(String) }),
    ]);
  });

  it("sweeps a wave larger than one step in several short transactions: each device offline once, one incident, every event recorded", async () => {
    await admin("PATCH", "/admin/alert-settings", { recipients: ["ops@example.com"], offlineAfterSeconds: 240, lowBatteryPercent: 20 });
    // 2,500 devices last heard from 5 minutes ago, inserted in bulk as a fleet losing its
    // network at once would look; 500 of them were low on battery then: going offline, they
    // do not join the low-battery incident too.
    await database.db.$executeRaw`
      INSERT INTO "Device" (id, "tokenHash", online, "lastSeenAt", "batteryLevel", groups, "updatedAt")
      SELECT gen_random_uuid(), repeat('0', 64), true, ${new Date(t.clock.now().getTime() - 300_000)}, CASE WHEN n <= 500 THEN 10 ELSE 80 END,
        ARRAY['wave'], now() FROM generate_series(1, 2500) AS n`;
    const low = [];
    for (let i = 0; i < 5; i++) {
      const device = await enrollDevice(t.app);
      await heartbeat(device.deviceToken, { battery: { level: 10, charging: false } });
      low.push(device);
    }
    const transactions = jest.spyOn(t.deps.db, "$transaction");
    const swept = await sweepOffline(t.deps, 1000);
    const calls = transactions.mock.calls.length;
    transactions.mockRestore();
    // 1,000 + 1,000 + 500: three steps, then the digest's transaction.
    expect(calls).toBe(4);
    expect(swept).toHaveLength(2500);
    expect(new Set(swept.map((device) => device.id)).size).toBe(2500);
    expect(await sweepOffline(t.deps)).toEqual([]);

    const counts = await database.db.$queryRaw<Array<{ online: number; incidents: number; members: number; events: number; lowMembers: number }>>`
      SELECT (SELECT count(*)::int FROM "Device" WHERE online AND groups @> ARRAY['wave']) AS online,
        (SELECT count(*)::int FROM "AlertIncident" WHERE kind = 'offline') AS incidents,
        (SELECT count(*)::int FROM "AlertIncidentDevice" d JOIN "AlertIncident" i ON i.id = d."incidentId" WHERE i.kind = 'offline') AS members,
        (SELECT count(*)::int FROM "AlertEvent" WHERE kind = 'device_offline') AS events,
        (SELECT count(*)::int FROM "AlertIncidentDevice" d JOIN "AlertIncident" i ON i.id = d."incidentId" WHERE i.kind = 'low_battery') AS "lowMembers"`;
    expect(counts[0]).toEqual({ online: 0, incidents: 1, members: 2500, events: 2500, lowMembers: 5 });
  });

  // A lock held by another connection: the embedded database serves every connection in one session.
  describeWithPostgres("with a device's row locked", () => {
    it("steps past a device whose row is locked (a heartbeat writing it): the rest of the wave is swept, that one at the next sweep", async () => {
      await admin("PATCH", "/admin/alert-settings", { offlineAfterSeconds: 240 });
      await database.db.$executeRaw`
        INSERT INTO "Device" (id, "tokenHash", online, "lastSeenAt", "updatedAt")
        SELECT gen_random_uuid(), repeat('0', 64), true, ${new Date(t.clock.now().getTime() - 300_000)}, now() FROM generate_series(1, 5)`;
      // The first candidate a step reads (the listing's first row) is locked.
      const [held] = await database.db.$queryRaw<Array<{ id: string }>>`SELECT id::text FROM "DeviceListing" ORDER BY ctid LIMIT 1`;
      const holder = new Client({ connectionString: database.url });
      await holder.connect();
      try {
        await holder.query("BEGIN");
        await holder.query(`SELECT 1 FROM "Device" WHERE id = $1 FOR NO KEY UPDATE`, [held!.id]);
        const swept = await sweepOffline(t.deps, 2);
        expect(swept).toHaveLength(4);
        expect(swept.map((device) => device.id)).not.toContain(held!.id);
      } finally {
        await holder.query("ROLLBACK");
        await holder.end();
      }
      expect((await sweepOffline(t.deps, 2)).map((device) => device.id)).toEqual([held!.id]);
    });
  });

  it("marks a step's devices offline through the primary key: no step scans the fleet", async () => {
    // A step that searched for its own candidates scanned the table each time, holding the
    // rows it had already locked until it committed (heartbeats of those devices waited).
    await database.db.$executeRaw`
      INSERT INTO "Device" (id, "tokenHash", online, "lastSeenAt", "updatedAt")
      SELECT gen_random_uuid(), repeat('0', 64), true, now() - interval '1 hour', now() FROM generate_series(1, 20000)`;
    await database.db.$executeRaw`ANALYZE "Device"`;
    const ids = (await database.db.$queryRaw<Array<{ id: string }>>`SELECT id::text FROM "Device" LIMIT ${SWEEP_STEP_DEVICES}`).map((row) => row.id);
    const plan = await database.db.$queryRaw<Array<{ "QUERY PLAN": string }>>(Prisma.sql`EXPLAIN ${markOffline(ids, new Date(), new Date())}`);
    const text = plan.map((row) => row["QUERY PLAN"]).join("\n");
    expect(text).toContain("Device_pkey");
    expect(text).not.toContain("Seq Scan");
  });

  it("probes each low battery's open incident through the index, whatever the statistics say: no loop over every open incident device", async () => {
    // 3,000 devices in an open low-battery incident and 3,000 more running low, inserted
    // faster than statistics follow (as a fleet whose batteries churn fills the table).
    const incidentId = randomUUID();
    await database.db.$executeRaw`INSERT INTO "AlertIncident" (id, kind, "openedAt", "lastJoinedAt") VALUES (${incidentId}::uuid, 'low_battery', now(), now())`;
    await database.db.$executeRaw`
      INSERT INTO "Device" (id, "tokenHash", online, "lastSeenAt", "batteryLevel", "updatedAt")
      SELECT gen_random_uuid(), repeat('0', 64), true, now(), 5, now() FROM generate_series(1, 6000)`;
    await database.db.$executeRaw`
      INSERT INTO "AlertIncidentDevice" ("incidentId", "deviceId", since, "batteryLevel")
      SELECT ${incidentId}::uuid, id, now(), 5 FROM "Device" LIMIT 3000`;
    const plan = await database.db.$queryRaw<Array<{ "QUERY PLAN": string }>>(Prisma.sql`EXPLAIN ${lowBatteryCandidates(15, new Date(0), null, 1000)}`);
    const text = plan.map((row) => row["QUERY PLAN"]).join("\n");
    expect(text).toContain("AlertIncidentDevice_deviceId_returnedAt_idx");
    expect(text).not.toContain("Materialize");
  });

  it("takes low batteries a step at a time too, into one incident", async () => {
    await admin("PATCH", "/admin/alert-settings", { recipients: ["ops@example.com"], lowBatteryPercent: 20 });
    for (let i = 0; i < 5; i++) await heartbeat((await enrollDevice(t.app)).deviceToken, { battery: { level: 5 + i, charging: false } });
    const transactions = jest.spyOn(t.deps.db, "$transaction");
    await sweepOffline(t.deps, 2);
    const calls = transactions.mock.calls.length;
    transactions.mockRestore();
    // 2 + 2 + 1: three steps, then the digest's transaction.
    expect(calls).toBe(4);
    const incidents = ListIncidentsResponse.parse((await admin("GET", "/admin/alerts/incidents?status=open")).body).incidents;
    expect(incidents).toEqual([expect.objectContaining({ kind: "low_battery", deviceCount: 5 })]);
    const events = await database.db.alertEvent.findMany({ where: { kind: "battery_low" }, orderBy: { batteryLevel: "asc" } });
    expect(events.map((event) => event.batteryLevel)).toEqual([5, 6, 7, 8, 9]);
  });

  it("groups a wave of devices going offline over several sweeps into one incident and one digest, resolved when they return", async () => {
    const first = await wentQuiet(3);
    await sweepOffline(t.deps);
    // Two more stop heartbeating a few minutes later, while the first three are still away.
    const later = [];
    for (let i = 0; i < 2; i++) {
      const device = await enrollDevice(t.app);
      await heartbeat(device.deviceToken);
      later.push(device);
    }
    t.clock.advance(241);
    expect(await sweepOffline(t.deps)).toHaveLength(2);
    expect(await t.outbox()).toHaveLength(0);

    const open = await admin("GET", "/admin/alerts/incidents?status=open");
    expect(ListIncidentsResponse.parse(open.body).incidents).toEqual([
      expect.objectContaining({
        kind: "offline",
        title: "5 devices went offline",
        deviceCount: 5,
        returnedCount: 0,
        retiredCount: 0,
        resolvedAt: null,
        acknowledgedAt: null,
      }),
    ]);
    const incidentId = open.body.incidents[0].id;

    windowEnd();
    await sweepOffline(t.deps);
    const outbox = await t.outbox();
    expect(outbox).toHaveLength(1);
    expect(outbox[0]!.subject).toBe("Alerts: 5 devices went offline");
    for (const device of [...first, ...later]) expect(outbox[0]!.text).toContain(device.deviceId);

    // Four come back: recorded, but the incident stays open for the fifth.
    for (const device of [...first, ...later.slice(0, 1)]) await heartbeat(device.deviceToken);
    await sweepOffline(t.deps);
    const partly = await admin("GET", `/admin/alerts/incidents/${incidentId}`);
    expect(AlertIncidentDetail.parse(partly.body)).toMatchObject({ returnedCount: 4, resolvedAt: null });
    expect(partly.body.devices[0]).toMatchObject({ deviceId: later[1]!.deviceId, returnedAt: null });
    expect(partly.body.devices.filter((device: { returnedAt: string | null }) => device.returnedAt !== null)).toHaveLength(4);

    await heartbeat(later[1]!.deviceToken);
    await sweepOffline(t.deps);
    const resolved = await admin("GET", `/admin/alerts/incidents/${incidentId}`);
    expect(resolved.body).toMatchObject({ returnedCount: 5, resolvedAt: expect.any(String) });
    expect((await admin("GET", "/admin/alerts/incidents?status=open")).body.incidents).toEqual([]);
    expect((await admin("GET", "/admin/alerts/incidents?status=resolved")).body.incidents.map((incident: { id: string }) => incident.id)).toEqual([incidentId]);

    // The returns are the next window's digest, one mail.
    windowEnd();
    for (const device of [...first, ...later]) await heartbeat(device.deviceToken);
    await sweepOffline(t.deps);
    await sweepOffline(t.deps);
    const mails = await t.outbox();
    expect(mails).toHaveLength(2);
    expect(mails[1]!.subject).toBe("Alerts: 5 devices back online");
    expect(await database.db.alertIncident.count()).toBe(1);
  });

  it("resolves an offline incident when the devices not retired meanwhile return; the retired one is counted apart, not as back", async () => {
    const [staying, leaving] = await wentQuiet(2);
    await database.db.device.update({ where: { id: leaving!.deviceId }, data: { alias: "Till 9" } });
    await sweepOffline(t.deps);
    const open = await admin("GET", "/admin/alerts/incidents?status=open");
    expect(open.body.incidents).toEqual([expect.objectContaining({ deviceCount: 2, returnedCount: 0 })]);
    const incidentId = open.body.incidents[0].id;

    expect((await admin("POST", `/admin/devices/${leaving!.deviceId}/retire`)).status).toBe(200);
    await sweepOffline(t.deps);
    const partly = AlertIncidentDetail.parse((await admin("GET", `/admin/alerts/incidents/${incidentId}`)).body);
    expect(partly).toMatchObject({ title: "2 devices went offline", deviceCount: 2, returnedCount: 0, retiredCount: 1, resolvedAt: null });
    expect(partly.devices.find((device) => device.deviceId === leaving!.deviceId)).toMatchObject({ returnedAt: null, retiredAt: expect.any(String) });

    await heartbeat(staying!.deviceToken);
    await sweepOffline(t.deps);
    const resolved = AlertIncidentDetail.parse((await admin("GET", `/admin/alerts/incidents/${incidentId}`)).body);
    expect(resolved).toMatchObject({ title: "2 devices went offline", deviceCount: 2, returnedCount: 1, retiredCount: 1, resolvedAt: expect.any(String) });
    expect(resolved.devices.find((device) => device.deviceId === staying!.deviceId)).toMatchObject({ returnedAt: expect.any(String), retiredAt: null });
    expect((await admin("GET", "/admin/alerts/incidents?status=resolved")).body.incidents).toEqual([
      expect.objectContaining({ id: incidentId, returnedCount: 1, retiredCount: 1 }),
    ]);
    expect((await admin("GET", "/admin/alerts/incidents?status=open")).body.incidents).toEqual([]);

    // The mail follows the incident: the retired device is listed apart from the one that came back.
    windowEnd();
    await sweepOffline(t.deps);
    const mails = await t.outbox();
    const digest = mails.at(-1)!;
    expect(digest.subject).toMatch(/, 1 device back online, 1 device retired or deleted while away$/);
    const retiredSection = digest.text!.slice(digest.text!.indexOf("Retired or deleted while away (1):"));
    expect(retiredSection).toContain(leaving!.deviceId);
    expect(retiredSection).not.toContain(staying!.deviceId);

    // Deleted afterwards, it keeps the name it had in the incident (not its bare id).
    expect((await admin("DELETE", `/admin/devices/${leaving!.deviceId}`)).status).toBe(204);
    const afterDeletion = AlertIncidentDetail.parse((await admin("GET", `/admin/alerts/incidents/${incidentId}`)).body);
    expect(afterDeletion.devices.find((device) => device.deviceId === leaving!.deviceId)?.name).toBe("Till 9");
  });

  it("lists a device flapping within one window in one digest, gone and back", async () => {
    const [device] = await wentQuiet();
    await sweepOffline(t.deps);
    await heartbeat(device!.deviceToken);
    t.clock.advance(241);
    await sweepOffline(t.deps); // back, and offline again 4 minutes later
    windowEnd();
    await sweepOffline(t.deps);
    const outbox = await t.outbox();
    expect(outbox).toHaveLength(1);
    expect(outbox[0]!.subject).toBe("Alerts: 2 devices went offline, 1 device back online");
  });

  it("lets an operator acknowledge an incident once, audited with who and when", async () => {
    await wentQuiet();
    await sweepOffline(t.deps);
    const [incident] = (await admin("GET", "/admin/alerts/incidents")).body.incidents;
    const acknowledged = await admin("POST", `/admin/alerts/incidents/${incident.id}/acknowledge`);
    expect(acknowledged.status).toBe(200);
    expect(acknowledged.body).toMatchObject({ id: incident.id, acknowledgedAt: expect.any(String), acknowledgedBy: expect.stringMatching(/^admin-key/) });
    const audit = await database.db.auditLog.findMany({ where: { action: "alert_incident.acknowledge" } });
    expect(audit).toEqual([expect.objectContaining({ actor: acknowledged.body.acknowledgedBy, targetType: "alert_incident", targetId: incident.id })]);

    const again = await admin("POST", `/admin/alerts/incidents/${incident.id}/acknowledge`);
    expect(again.status).toBe(409);
    expect(again.body.error.code).toBe("conflict");
    expect((await admin("POST", "/admin/alerts/incidents/00000000-0000-4000-8000-000000000000/acknowledge")).status).toBe(404);
    expect((await admin("GET", "/admin/alerts/incidents/00000000-0000-4000-8000-000000000000")).status).toBe(404);
    expect((await admin("GET", "/admin/alerts/incidents/not-a-uuid")).status).toBe(400);
    expect((await admin("GET", "/admin/alerts/incidents?status=closed")).status).toBe(400);
  });

  it("sends one digest when two instances sweep at once", async () => {
    const other = createTestApp(database.db);
    other.clock.now = () => t.clock.now();
    await wentQuiet(4);
    await Promise.all([sweepOffline(t.deps), sweepOffline(other.deps)]);
    expect(await database.db.alertIncident.count()).toBe(1);
    expect(await database.db.alertEvent.count()).toBe(4);
    windowEnd();
    const sent = await Promise.all([sweepOffline(t.deps), sweepOffline(other.deps), sendDueAlertDigest(t.deps), sendDueAlertDigest(other.deps)]);
    expect(sent.slice(2).filter((alertId) => alertId !== null).length).toBeLessThanOrEqual(1);
    const outbox = await t.outbox();
    expect(outbox).toHaveLength(1);
    expect(outbox[0]!.subject).toBe("Alerts: 4 devices went offline");
  });

  it("raises a low-battery incident below its own threshold, grouped and in the digest, resolved once charged", async () => {
    await admin("PATCH", "/admin/alert-settings", { recipients: ["ops@example.com"], lowBatteryPercent: 25 });
    const low = await enrollDevice(t.app);
    const lower = await enrollDevice(t.app);
    const fine = await enrollDevice(t.app);
    await heartbeat(low.deviceToken, { battery: { level: 24, charging: false } });
    await heartbeat(lower.deviceToken, { battery: { level: 5, charging: false } });
    await heartbeat(fine.deviceToken, { battery: { level: 25, charging: false } });
    await sweepOffline(t.deps);
    await sweepOffline(t.deps);
    const [incident] = (await admin("GET", "/admin/alerts/incidents")).body.incidents;
    expect(incident).toMatchObject({ kind: "low_battery", title: "2 devices ran low on battery", deviceCount: 2 });
    const detail = await admin("GET", `/admin/alerts/incidents/${incident.id}`);
    expect(detail.body.devices.map((device: { deviceId: string; batteryLevel: number }) => [device.deviceId, device.batteryLevel]).sort()).toEqual(
      [
        [low.deviceId, 24],
        [lower.deviceId, 5],
      ].sort(),
    );
    windowEnd();
    await heartbeat(low.deviceToken, { battery: { level: 24, charging: false } });
    await heartbeat(lower.deviceToken, { battery: { level: 5, charging: false } });
    await heartbeat(fine.deviceToken, { battery: { level: 25, charging: false } });
    await sweepOffline(t.deps);
    for (const device of [low, lower, fine]) await heartbeat(device.deviceToken, { battery: { level: 60, charging: true } });
    await sweepOffline(t.deps);
    const outbox = await t.outbox();
    expect(outbox).toHaveLength(1);
    expect(outbox[0]!.subject).toBe("Alerts: 2 devices low battery");
    expect(outbox[0]!.text).toContain("battery 5%");
    expect((await admin("GET", `/admin/alerts/incidents/${incident.id}`)).body.resolvedAt).toEqual(expect.any(String));
  });

  it("alerts once when the configured share of a group is offline", async () => {
    const devices = await wentQuiet(2);
    const healthy = await enrollDevice(t.app);
    await heartbeat(healthy.deviceToken);
    for (const device of [...devices, healthy]) await admin("PATCH", `/admin/devices/${device.deviceId}`, { groups: ["store-7"] });
    await admin("PATCH", "/admin/alert-settings", { groupOfflinePercent: 50 });
    await sweepOffline(t.deps);
    const groupMails = (await t.outbox()).filter((mail) => mail.subject.startsWith("Group store-7"));
    expect(groupMails).toHaveLength(1);
    expect(groupMails[0]!.subject).toBe("Group store-7: 2 of 3 devices offline");
  });

  it("sends nothing when alerts are disabled, and keeps the incident", async () => {
    await wentQuiet();
    await admin("PATCH", "/admin/alert-settings", { enabled: false });
    expect(await sweepOffline(t.deps)).toHaveLength(1);
    windowEnd();
    await sweepOffline(t.deps);
    expect(await t.outbox()).toHaveLength(0);
    expect((await admin("GET", "/admin/alerts/incidents?status=open")).body.incidents).toHaveLength(1);
  });

  it("validates alert settings", async () => {
    const res = await admin("PATCH", "/admin/alert-settings", {
      recipients: ["not-an-email"],
      offlineAfterSeconds: 5,
      alertWindowMinutes: 0,
      lowBatteryPercent: 100,
    });
    expect(res.status).toBe(400);
    expect(res.body.error.details.map((issue: { path: string }) => issue.path).sort()).toEqual([
      "alertWindowMinutes",
      "lowBatteryPercent",
      "offlineAfterSeconds",
      "recipients.0",
    ]);
    const current = await admin("GET", "/admin/alert-settings");
    // The default threshold: two missed 60 s heartbeats plus 30 s.
    expect(current.body).toEqual({
      enabled: true,
      offlineAfterSeconds: 150,
      recipients: [],
      groupOfflinePercent: null,
      cooldownMinutes: 60,
      alertWindowMinutes: 15,
      lowBatteryPercent: 15,
    });
  });
});
