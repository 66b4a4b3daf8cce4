import request from "supertest";
import { type TestApp, type TestDatabase, adminRequest, createTestApp, createTestDatabase, enrollDevice, heartbeatBody, resetTables } from "../../test";
import { sweepOffline } from "../fleet/fleet-monitor";

// DeviceListing is the device list's narrow copy of Device, kept by triggers on Device: after
// any write, by any path, it must hold exactly the same values, one row per device.

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

const COLUMNS = `id, "retiredAt", online, "lastSeenAt", "batteryLevel", "enrolledAt", alias, model, "appVersion", "serialNumber", "legacyId", groups`;

/** The rows where the listing and Device differ (a device missing from either counts), and how many devices there are. */
async function drift(): Promise<{ differing: unknown[]; devices: number; listed: number }> {
  const differing = await database.db.$queryRawUnsafe<unknown[]>(
    `(SELECT ${COLUMNS} FROM "Device" EXCEPT SELECT ${COLUMNS} FROM "DeviceListing")
     UNION ALL (SELECT ${COLUMNS} FROM "DeviceListing" EXCEPT SELECT ${COLUMNS} FROM "Device")`,
  );
  const [counts] = await database.db.$queryRaw<Array<{ devices: number; listed: number }>>`
    SELECT (SELECT count(*)::int FROM "Device") AS devices, (SELECT count(*)::int FROM "DeviceListing") AS listed`;
  return { differing, ...counts! };
}

const heartbeat = (token: string, body = heartbeatBody()) => request(t.app).post("/v1/heartbeat").auth(token, { type: "bearer" }).send(body);

describe("DeviceListing", () => {
  it("follows every write to Device: enrollment, heartbeats, edits, the offline sweep, bulk edits, retirement, deletion", async () => {
    const devices = [await enrollDevice(t.app), await enrollDevice(t.app), await enrollDevice(t.app)];
    expect(await drift()).toEqual({ differing: [], devices: 3, listed: 3 });

    // Heartbeats of several devices written by one statement (the group commit).
    const beats = await Promise.all(
      devices.map((device, i) => heartbeat(device.deviceToken, heartbeatBody({ battery: { level: 10 + i, charging: false }, appVersion: `2.${i}.0` }))),
    );
    expect(beats.map((res) => res.status)).toEqual([200, 200, 200]);
    const listed = await database.db.deviceListing.findUniqueOrThrow({ where: { id: devices[1]!.deviceId } });
    expect(listed).toMatchObject({ online: true, batteryLevel: 11, appVersion: "2.1.0" });
    expect(await drift()).toMatchObject({ differing: [] });

    const edited = await adminRequest(t.app, "PATCH", `/admin/devices/${devices[0]!.deviceId}`, { alias: "front-desk", groups: ["lobby"] });
    expect(edited.status).toBe(200);
    expect(await drift()).toMatchObject({ differing: [] });

    await adminRequest(t.app, "PATCH", "/admin/alert-settings", { offlineAfterSeconds: 240 });
    t.clock.advance(241);
    expect((await sweepOffline(t.deps)).length).toBe(3);
    expect(await database.db.deviceListing.count({ where: { online: false } })).toBe(3);
    expect(await drift()).toMatchObject({ differing: [] });

    const bulk = await adminRequest(t.app, "POST", "/admin/devices/bulk", {
      target: { deviceIds: devices.map((d) => d.deviceId) },
      addGroups: ["east"],
      aliasPrefix: "till-",
    });
    expect(bulk.status).toBe(200);
    expect(await drift()).toMatchObject({ differing: [] });

    const retired = await adminRequest(t.app, "POST", `/admin/devices/${devices[2]!.deviceId}/retire`, {});
    expect(retired.status).toBe(200);
    expect((await database.db.deviceListing.findUniqueOrThrow({ where: { id: devices[2]!.deviceId } })).retiredAt).not.toBeNull();
    expect(await drift()).toMatchObject({ differing: [] });

    const deleted = await adminRequest(t.app, "DELETE", `/admin/devices/${devices[2]!.deviceId}`);
    expect(deleted.status).toBe(204);
    expect(await drift()).toEqual({ differing: [], devices: 2, listed: 2 });
  });

  it("is written only when a column it holds changes", async () => {
    const device = await enrollDevice(t.app);
    const [before] = await database.db.$queryRaw<
      Array<{ version: string }>
    >`SELECT xmin::text AS version FROM "DeviceListing" WHERE id = ${device.deviceId}::uuid`;
    // Columns the list does not read: the row is left as it was (the same row version).
    await database.db.device.update({ where: { id: device.deviceId }, data: { notes: "by the door", memoryAvailable: 12n } });
    const [after] = await database.db.$queryRaw<
      Array<{ version: string }>
    >`SELECT xmin::text AS version FROM "DeviceListing" WHERE id = ${device.deviceId}::uuid`;
    expect(after!.version).toBe(before!.version);
    await database.db.device.update({ where: { id: device.deviceId }, data: { model: "TC58" } });
    expect((await database.db.deviceListing.findUniqueOrThrow({ where: { id: device.deviceId } })).model).toBe("TC58");
  });
});
