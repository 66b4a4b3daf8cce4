import http from "node:http";
import type { AddressInfo } from "node:net";
import { CommandKeysStatus } from "@mdm/contracts";
import { SimulatedDevice } from "@mdm/simulator";
import request from "supertest";
import {
  TEST_COMMAND_MASTER_KEY,
  type TestApp,
  type TestDatabase,
  adminRequest,
  createEnrollmentToken,
  createTestApp,
  createTestDatabase,
  describeWithPostgres,
  heartbeatBody,
  resetTables,
} from "../../test";
import { COMMAND_KEY_ROTATION_ACTOR, commandKeysStatus, rotateFleetCommandKeys } from "./command-keys";

const GRACE_SECONDS = 3600;
const NEW_MASTER_KEY = "second-command-master-key-0123456789abcdef";
const THIRD_MASTER_KEY = "third-command-master-key-0123456789abcdef0";

// The operator's rotation: key 2 is the command master key now, key 1 the previous one.
const ROTATING = {
  COMMAND_MASTER_KEY: NEW_MASTER_KEY,
  COMMAND_KEY_ID: "2",
  COMMAND_MASTER_KEY_PREVIOUS: TEST_COMMAND_MASTER_KEY,
  COMMAND_KEY_ID_PREVIOUS: "1",
};

// Fleet-wide rotation of the command master key, with the simulator as the devices (real
// HTTP clients of the API that verify every command's signature with the key they hold and
// drop any that does not verify under their key id). The API "restarts" with new settings:
// a new app on the same database, behind the same listening server.
describeWithPostgres("command master key rotation", () => {
  let database: TestDatabase;
  let t: TestApp;
  let server: http.Server;
  let baseUrl: string;

  beforeAll(async () => {
    database = await createTestDatabase();
    server = http.createServer((req, res) => t.app(req, res));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
    await database.close();
  });
  beforeEach(async () => {
    await resetTables(database.db);
    t = createTestApp(database.db, { env: { DEVICE_TOKEN_ROTATION_GRACE_SECONDS: String(GRACE_SECONDS) } });
  });

  const restartWith = (env: Record<string, string>) => {
    t = createTestApp(database.db, { env: { DEVICE_TOKEN_ROTATION_GRACE_SECONDS: String(GRACE_SECONDS), ...env } });
  };
  const enroll = async () => SimulatedDevice.enroll(baseUrl, await createEnrollmentToken(t.app, { maxUses: 1 }));
  const status = async () => {
    const res = await adminRequest(t.app, "GET", "/admin/command-keys");
    expect(res.status).toBe(200);
    return CommandKeysStatus.parse(res.body);
  };
  /** A ping through the device's own channel: true when the device ran it (its signature verified) and reported it done. */
  const pingRuns = async (device: SimulatedDevice, keyId: string) => {
    const ping = await adminRequest(t.app, "POST", "/admin/command", { deviceId: device.deviceId, type: "ping" });
    expect(ping.status).toBe(201);
    await device.heartbeat();
    expect(device.receiptsOf(ping.body.requestId)[0]?.command.keyId).toBe(keyId);
    expect(device.executions.get(ping.body.requestId)).toBe(1);
    expect((await adminRequest(t.app, "GET", `/admin/commands/${ping.body.requestId}`)).body).toMatchObject({ status: "succeeded", result: { pong: true } });
  };
  const keyOf = async (deviceId: string) =>
    database.db.device.findUniqueOrThrow({ where: { id: deviceId }, select: { commandMasterKeyId: true, commandKeyGeneration: true, pendingTokenHash: true } });

  it("keeps signing for devices under the previous key, moves each online one under the new key through its own channel, and counts what is left", async () => {
    const online = await enroll();
    const away = await enroll();
    await online.heartbeat();
    expect(online.registration.commandKeyId).toBe("1");
    expect(await keyOf(online.deviceId)).toMatchObject({ commandMasterKeyId: "1", commandKeyGeneration: 0 });
    // A device enrolled before master key ids were recorded: its key is under key 1 as well.
    await database.db.device.update({ where: { id: away.deviceId }, data: { commandMasterKeyId: null } });
    expect(await status()).toEqual({ current: { keyId: "1", devices: 2 }, previous: null, unavailable: 0 });

    restartWith(ROTATING);
    expect(await status()).toEqual({ current: { keyId: "2", devices: 0 }, previous: { keyId: "1", devices: 2, rotating: 0, lockedOut: 0 }, unavailable: 0 });
    // Nothing breaks: commands are still signed with the key each device holds.
    await pingRuns(online, "1");
    // New devices get a key under the new master key.
    const fresh = await enroll();
    expect(fresh.registration.commandKeyId).toBe("2");
    await pingRuns(fresh, "2");

    // One run of the job: the online device gets its rotation; the one away keeps its key.
    expect(await rotateFleetCommandKeys(t.deps)).toEqual({ queued: 1 });
    expect(await rotateFleetCommandKeys(t.deps)).toEqual({ queued: 0 });
    expect((await status()).previous).toEqual({ keyId: "1", devices: 2, rotating: 1, lockedOut: 0 });
    const [rotation] = await database.db.command.findMany({ where: { deviceId: online.deviceId, type: "rotate_token" } });
    expect(rotation).toMatchObject({ createdBy: COMMAND_KEY_ROTATION_ACTOR, status: "queued" });

    // The device takes it (the command is signed with its key 1 and carries the sealed key 2-g1).
    const oldToken = online.registration.deviceToken;
    await online.heartbeat();
    expect(online.registration.commandKeyId).toBe("2-g1");
    expect(await keyOf(online.deviceId)).toEqual({ commandMasterKeyId: "2", commandKeyGeneration: 1, pendingTokenHash: null });
    expect((await adminRequest(t.app, "GET", `/admin/commands/${rotation!.requestId}`)).body).toMatchObject({ status: "succeeded", result: { rotated: true } });
    expect((await request(t.app).post("/v1/heartbeat").set("Authorization", `Bearer ${oldToken}`).send(heartbeatBody())).status).toBe(401);
    await pingRuns(online, "2-g1");

    // The device that was away calls in: its commands still verify with its key 1, and the
    // next run moves it too.
    await pingRuns(away, "1");
    expect(await rotateFleetCommandKeys(t.deps)).toEqual({ queued: 1 });
    await away.heartbeat();
    expect(away.registration.commandKeyId).toBe("2-g1");
    await pingRuns(away, "2-g1");
    expect(await keyOf(away.deviceId)).toMatchObject({ commandMasterKeyId: "2", commandKeyGeneration: 1 });

    // Every device moved: the previous key can go.
    expect(await status()).toEqual({ current: { keyId: "2", devices: 3 }, previous: { keyId: "1", devices: 0, rotating: 0, lockedOut: 0 }, unavailable: 0 });
    restartWith({ COMMAND_MASTER_KEY: NEW_MASTER_KEY, COMMAND_KEY_ID: "2" });
    expect(await rotateFleetCommandKeys(t.deps)).toEqual({ queued: 0 });
    for (const device of [online, away]) await pingRuns(device, "2-g1");
    await pingRuns(fresh, "2");
    const audit = await database.db.auditLog.findMany({ where: { action: "device.rotate_token" }, orderBy: { id: "asc" } });
    expect(audit.map((entry) => [entry.actor, entry.targetId, (entry.details as { fromCommandKeyId: string }).fromCommandKeyId])).toEqual([
      [COMMAND_KEY_ROTATION_ACTOR, online.deviceId, "1"],
      [COMMAND_KEY_ROTATION_ACTOR, away.deviceId, "1"],
    ]);
  });

  it("a device that goes offline once its rotation is queued keeps working within the grace period and takes its new key when it comes back; one away past it is locked out and counted", async () => {
    const device = await enroll();
    const lost = await enroll();
    await device.heartbeat();
    await lost.heartbeat();
    restartWith(ROTATING);
    expect(await rotateFleetCommandKeys(t.deps)).toEqual({ queued: 2 });

    // Both go silent. Shortly before the grace period ends, one calls in with its old token.
    t.clock.advance(GRACE_SECONDS - 60);
    await device.heartbeat();
    expect(device.registration.commandKeyId).toBe("2-g1");
    t.clock.advance(120);
    // The other comes back too late: its old token is refused.
    expect((await request(t.app).post("/v1/heartbeat").set("Authorization", `Bearer ${lost.registration.deviceToken}`).send(heartbeatBody())).status).toBe(401);
    // Counted as locked out (read at the server's time, past the grace period).
    expect((await commandKeysStatus(t.deps)).previous).toEqual({ keyId: "1", devices: 1, rotating: 0, lockedOut: 1 });
    // Back to now: signed admin requests must carry the server's time.
    t.clock.advance(-(GRACE_SECONDS + 60));
    await pingRuns(device, "2-g1");
    expect((await status()).previous).toEqual({ keyId: "1", devices: 1, rotating: 1, lockedOut: 0 });
    // The job leaves it alone: its rotation is the one it never took. Retired, it is no longer counted.
    expect(await rotateFleetCommandKeys(t.deps)).toEqual({ queued: 0 });
    expect((await adminRequest(t.app, "POST", `/admin/devices/${lost.deviceId}/retire`)).status).toBe(200);
    expect(await status()).toEqual({ current: { keyId: "2", devices: 1 }, previous: { keyId: "1", devices: 0, rotating: 0, lockedOut: 0 }, unavailable: 0 });
  });

  it("signs nothing for a device whose master key is no longer configured, refuses to re-key it, and counts it", async () => {
    const device = await enroll();
    await device.heartbeat();
    // The operator moved on twice while the device was still under key 1.
    restartWith({ COMMAND_MASTER_KEY: THIRD_MASTER_KEY, COMMAND_KEY_ID: "3", COMMAND_MASTER_KEY_PREVIOUS: NEW_MASTER_KEY, COMMAND_KEY_ID_PREVIOUS: "2" });
    expect(await status()).toEqual({ current: { keyId: "3", devices: 0 }, previous: { keyId: "2", devices: 0, rotating: 0, lockedOut: 0 }, unavailable: 1 });
    expect(await rotateFleetCommandKeys(t.deps)).toEqual({ queued: 0 });
    const rekey = await adminRequest(t.app, "POST", `/admin/devices/${device.deviceId}/rotate-token`);
    expect(rekey.status).toBe(409);
    expect(rekey.body.error.message).toMatch(/master key 1, which is not configured/);
    const ping = await adminRequest(t.app, "POST", "/admin/command", { deviceId: device.deviceId, type: "ping" });
    expect(ping.status).toBe(201);
    // Its heartbeat still works; the command is not handed over (nothing could sign it) and waits.
    const beat = await request(t.app).post("/v1/heartbeat").set("Authorization", `Bearer ${device.registration.deviceToken}`).send(heartbeatBody());
    expect(beat.status).toBe(200);
    expect(JSON.stringify(beat.body)).not.toContain(ping.body.requestId);
    expect((await adminRequest(t.app, "GET", `/admin/commands/${ping.body.requestId}`)).body).toMatchObject({ status: "queued" });

    // Key 1 configured again as the previous key: the command goes out, signed with it.
    restartWith({
      COMMAND_MASTER_KEY: THIRD_MASTER_KEY,
      COMMAND_KEY_ID: "3",
      COMMAND_MASTER_KEY_PREVIOUS: TEST_COMMAND_MASTER_KEY,
      COMMAND_KEY_ID_PREVIOUS: "1",
    });
    await device.heartbeat();
    expect(device.executions.get(ping.body.requestId)).toBe(1);
    expect(await rotateFleetCommandKeys(t.deps)).toEqual({ queued: 1 });
    await device.heartbeat();
    expect(device.registration.commandKeyId).toBe("3-g1");
  });
});
