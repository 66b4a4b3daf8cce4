import { Client } from "pg";
import request from "supertest";
import {
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
import { sweepOffline } from "../fleet/fleet-monitor";
import { listedColumns, repairDeviceListing } from "./device-listing";

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

const COLUMNS = `id, ${listedColumns("t")}`;

/** The devices whose listing row differs from Device (or is missing from either), and how many rows each table has. */
async function drift(): Promise<{ differing: string[]; devices: number; listed: number }> {
  const rows = await database.db.$queryRawUnsafe<Array<{ id: string }>>(
    `SELECT DISTINCT id::text FROM (
       (SELECT ${COLUMNS} FROM "Device" t EXCEPT SELECT ${COLUMNS} FROM "DeviceListing" t)
       UNION ALL (SELECT ${COLUMNS} FROM "DeviceListing" t EXCEPT SELECT ${COLUMNS} FROM "Device" t)) differing`,
  );
  const [counts] = await database.db.$queryRaw<Array<{ devices: number; listed: number }>>`
    SELECT (SELECT count(*)::int FROM "Device") AS devices, (SELECT count(*)::int FROM "DeviceListing") AS listed`;
  return { differing: rows.map((row) => row.id).sort(), ...counts! };
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

  it("takes a device without groups as Device allows it (a NULL array)", async () => {
    const device = await enrollDevice(t.app);
    await database.db.$executeRaw`UPDATE "Device" SET groups = NULL WHERE id = ${device.deviceId}::uuid`;
    expect(await drift()).toEqual({ differing: [], devices: 1, listed: 1 });
  });

  it("is repaired where a write bypassed the triggers: rows missing, changed by hand, or Device written or deleted with triggers off", async () => {
    const devices = [];
    for (let i = 0; i < 5; i++) devices.push(await enrollDevice(t.app));
    const [gone, edited, replicated, deleted] = devices.map((device) => device.deviceId);
    await database.db.$executeRaw`DELETE FROM "DeviceListing" WHERE id = ${gone}::uuid`;
    await database.db.$executeRaw`UPDATE "DeviceListing" SET alias = 'not this' WHERE id = ${edited}::uuid`;
    // Replica mode skips the triggers and the foreign key's cascade.
    await database.db.$transaction(async (tx) => {
      await tx.$executeRaw`SET LOCAL session_replication_role = replica`;
      await tx.$executeRaw`UPDATE "Device" SET online = true, "batteryLevel" = 3 WHERE id = ${replicated}::uuid`;
      await tx.$executeRaw`DELETE FROM "Device" WHERE id = ${deleted}::uuid`;
    });
    expect((await drift()).differing).toEqual([gone, edited, replicated, deleted].sort());

    expect(await repairDeviceListing(t.deps)).toBe(4);
    expect(await drift()).toEqual({ differing: [], devices: 4, listed: 4 });
    expect(await repairDeviceListing(t.deps)).toBe(0);
  });

  it.each([
    ["disabled", "DISABLE TRIGGER"],
    ["set to fire only in replica sessions", "ENABLE REPLICA TRIGGER"],
  ])("says so, and writes nothing, when the triggers are %s", async (_state, alter) => {
    const device = await enrollDevice(t.app);
    await database.db.$executeRaw`DELETE FROM "DeviceListing" WHERE id = ${device.deviceId}::uuid`;
    await database.db.$executeRawUnsafe(`ALTER TABLE "Device" ${alter} "Device_listing_update"`);
    try {
      expect(await repairDeviceListing(t.deps)).toBeNull();
      expect(await drift()).toMatchObject({ devices: 1, listed: 0 });
    } finally {
      await database.db.$executeRaw`ALTER TABLE "Device" ENABLE TRIGGER "Device_listing_update"`;
    }
  });

  it("gives a device whose row went missing its row back at its next write", async () => {
    const device = await enrollDevice(t.app);
    await database.db.$executeRaw`DELETE FROM "DeviceListing" WHERE id = ${device.deviceId}::uuid`;
    expect((await heartbeat(device.deviceToken)).status).toBe(200);
    expect(await drift()).toEqual({ differing: [], devices: 1, listed: 1 });
  });

  it("comes back whole after the listing was emptied, in steps", async () => {
    await database.db.$executeRaw`
      INSERT INTO "Device" (id, "tokenHash", "updatedAt") SELECT gen_random_uuid(), repeat('0', 64), now() FROM generate_series(1, 2500)`;
    await database.db.$executeRaw`DELETE FROM "DeviceListing"`;
    expect(await repairDeviceListing(t.deps)).toBe(2500);
    expect(await drift()).toEqual({ differing: [], devices: 2500, listed: 2500 });
  });
});

// Row locks held by another connection: the embedded database serves every connection in one session.
describeWithPostgres("DeviceListing repair beside live writes", () => {
  it("leaves a device a write is holding for later, and is not held up by a device only referenced (a command being created)", async () => {
    const [busy, referenced] = [await enrollDevice(t.app), await enrollDevice(t.app)];
    await database.db.$executeRaw`DELETE FROM "DeviceListing"`;
    const holder = new Client({ connectionString: database.url });
    await holder.connect();
    try {
      await holder.query("BEGIN");
      await holder.query(`SELECT 1 FROM "Device" WHERE id = $1 FOR NO KEY UPDATE`, [busy.deviceId]);
      await holder.query(`SELECT 1 FROM "Device" WHERE id = $1 FOR KEY SHARE`, [referenced.deviceId]);
      expect(await repairDeviceListing(t.deps)).toBe(1);
      expect((await drift()).differing).toEqual([busy.deviceId]);
    } finally {
      await holder.query("ROLLBACK");
      await holder.end();
    }
    expect(await repairDeviceListing(t.deps)).toBe(1);
    expect(await drift()).toEqual({ differing: [], devices: 2, listed: 2 });
  });
});
