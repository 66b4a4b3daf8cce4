import http from "node:http";
import type { AddressInfo } from "node:net";
import { DEVICE_WS_PROTOCOL, type DeviceCommand, type DeviceServerFrame, RotationSecrets, WsCloseCode, openWithCommandKey } from "@mdm/contracts";
import { AdminClient, SimulatedDevice } from "@mdm/simulator";
import WebSocket from "ws";
import request from "supertest";
import { parseEnv } from "../../config/env";
import { type RunningServer, startServer } from "../../server";
import {
  TEST_ADMIN_KEY,
  TEST_HMAC_SECRET,
  TEST_SERVER_SETTINGS,
  type TestApp,
  type TestDatabase,
  adminRequest,
  createEnrollmentToken,
  createTestApp,
  createTestDatabase,
  describeWithPostgres,
  heartbeatBody,
  resetTables,
  settledWithin,
} from "../../test";

const GRACE_SECONDS = 3600;

// Re-keying through the device's own channel, with the simulator as the device (a real HTTP
// client of the API that verifies every command's signature with the key it holds).
describeWithPostgres("POST /admin/devices/{deviceId}/rotate-token", () => {
  let database: TestDatabase;
  let t: TestApp;
  let server: http.Server;
  let baseUrl: string;

  beforeAll(async () => {
    database = await createTestDatabase();
  });
  afterAll(() => database.close());
  beforeEach(async () => {
    await resetTables(database.db);
    t = createTestApp(database.db, { env: { DEVICE_TOKEN_ROTATION_GRACE_SECONDS: String(GRACE_SECONDS) } });
    server = http.createServer(t.app);
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterEach(() => new Promise<void>((resolve) => server.close(() => resolve())));

  const enroll = async () => SimulatedDevice.enroll(baseUrl, await createEnrollmentToken(t.app, { maxUses: 1 }));
  const heartbeatWith = (deviceToken: string) => request(t.app).post("/v1/heartbeat").set("Authorization", `Bearer ${deviceToken}`).send(heartbeatBody());

  it("a device offline during the rotation comes back within the grace period, takes the new keys, and keeps working; then the old token is refused", async () => {
    const device = await enroll();
    await device.heartbeat();
    const old = { ...device.registration };
    // The device is offline from here: no heartbeat, no socket.
    const rotated = await adminRequest(t.app, "POST", `/admin/devices/${device.deviceId}/rotate-token`);
    expect(rotated.status).toBe(202);
    expect(rotated.body.commandKeyId).not.toBe(old.commandKeyId);
    // Neither the new token nor the new key is stored or listed in plain text.
    const command = await adminRequest(t.app, "GET", `/admin/commands/${rotated.body.requestId}`);
    expect(command.body).toMatchObject({ type: "rotate_token", status: "queued", createdBy: expect.any(String) });
    const stored = await database.db.device.findUniqueOrThrow({ where: { id: device.deviceId } });
    expect(stored.pendingTokenHash).toMatch(/^[a-f0-9]{64}$/);

    // An hour later, still within the grace period, the device calls in with its old token.
    t.clock.advance(GRACE_SECONDS - 60);
    await device.heartbeat();
    // Back to now: signed admin requests must carry the server's time.
    t.clock.advance(-(GRACE_SECONDS - 60));
    expect(device.registration.deviceToken).not.toBe(old.deviceToken);
    expect(device.registration.commandKey).not.toBe(old.commandKey);
    expect(device.registration.commandKeyId).toBe(rotated.body.commandKeyId);
    expect(JSON.stringify(command.body)).not.toContain(device.registration.deviceToken.split(".")[1]);
    expect(JSON.stringify(command.body)).not.toContain(device.registration.commandKey);
    expect((await adminRequest(t.app, "GET", `/admin/commands/${rotated.body.requestId}`)).body).toMatchObject({
      status: "succeeded",
      result: { rotated: true },
    });

    // The old token is dropped; the new one works, and commands verify with the new key.
    expect((await heartbeatWith(old.deviceToken)).status).toBe(401);
    expect((await heartbeatWith(device.registration.deviceToken)).status).toBe(200);
    const ping = await adminRequest(t.app, "POST", "/admin/command", { deviceId: device.deviceId, type: "ping" });
    await device.heartbeat();
    expect(device.executions.get(ping.body.requestId)).toBe(1);
    expect((await adminRequest(t.app, "GET", `/admin/commands/${ping.body.requestId}`)).body).toMatchObject({ status: "succeeded", result: { pong: true } });
    expect(device.receiptsOf(ping.body.requestId)[0]!.command.keyId).toBe(rotated.body.commandKeyId);
    expect(await database.db.device.findUniqueOrThrow({ where: { id: device.deviceId } })).toMatchObject({ pendingTokenHash: null, commandKeyGeneration: 1 });

    // A second rotation works the same way from the new keys.
    const again = await adminRequest(t.app, "POST", `/admin/devices/${device.deviceId}/rotate-token`);
    expect(again.status).toBe(202);
    await device.heartbeat();
    expect(device.registration.commandKeyId).toBe(again.body.commandKeyId);
    expect((await heartbeatWith(device.registration.deviceToken)).status).toBe(200);

    const audit = await database.db.auditLog.findMany({ where: { action: "device.rotate_token", targetId: device.deviceId } });
    expect(audit).toHaveLength(2);
  });

  it("refuses the old token once the grace period has passed without the device taking the new one", async () => {
    const device = await enroll();
    const oldToken = device.registration.deviceToken;
    expect((await heartbeatWith(oldToken)).status).toBe(200);
    await adminRequest(t.app, "POST", `/admin/devices/${device.deviceId}/rotate-token`);
    expect((await heartbeatWith(oldToken)).status).toBe(200);
    t.clock.advance(GRACE_SECONDS + 1);
    expect((await heartbeatWith(oldToken)).status).toBe(401);
  });

  // Commands the device was handed in the answer to this heartbeat (with its old token).
  const commandsFor = async (deviceToken: string) => (await heartbeatWith(deviceToken)).body.commands as Array<{ requestId: string; type: string }>;

  it("withdraws a rotation cancelled before it reached the device: the old token works on past the grace, and a new rotation is accepted and completes", async () => {
    const device = await enroll();
    const oldToken = device.registration.deviceToken;
    const first = await adminRequest(t.app, "POST", `/admin/devices/${device.deviceId}/rotate-token`);
    expect(first.status).toBe(202);
    expect((await adminRequest(t.app, "POST", `/admin/commands/${first.body.requestId}/cancel`)).status).toBe(200);
    expect(await database.db.device.findUniqueOrThrow({ where: { id: device.deviceId } })).toMatchObject({ pendingTokenHash: null, rotationGraceUntil: null });
    t.clock.advance(GRACE_SECONDS + 1);
    expect((await heartbeatWith(oldToken)).status).toBe(200);
    t.clock.advance(-(GRACE_SECONDS + 1));

    const again = await adminRequest(t.app, "POST", `/admin/devices/${device.deviceId}/rotate-token`);
    expect(again.status).toBe(202);
    await device.heartbeat();
    expect(device.registration.commandKeyId).toBe(again.body.commandKeyId);
    expect(device.executions.has(first.body.requestId)).toBe(false);
    expect((await heartbeatWith(oldToken)).status).toBe(401);
    expect((await heartbeatWith(device.registration.deviceToken)).status).toBe(200);
  });

  it("lets a new rotation replace one whose command was cancelled after it was sent", async () => {
    const device = await enroll();
    const oldToken = device.registration.deviceToken;
    const first = await adminRequest(t.app, "POST", `/admin/devices/${device.deviceId}/rotate-token`);
    expect((await commandsFor(oldToken)).map((command) => command.requestId)).toEqual([first.body.requestId]);
    expect((await adminRequest(t.app, "POST", `/admin/commands/${first.body.requestId}/cancel`)).status).toBe(200);
    const again = await adminRequest(t.app, "POST", `/admin/devices/${device.deviceId}/rotate-token`);
    expect(again.status).toBe(202);
    await device.heartbeat();
    expect(device.registration.commandKeyId).toBe(again.body.commandKeyId);
    expect((await heartbeatWith(device.registration.deviceToken)).status).toBe(200);
  });

  it("lets a new rotation replace one whose command failed; the old token keeps working meanwhile", async () => {
    const device = await enroll();
    const oldToken = device.registration.deviceToken;
    const first = await adminRequest(t.app, "POST", `/admin/devices/${device.deviceId}/rotate-token`);
    expect((await commandsFor(oldToken)).map((command) => command.requestId)).toEqual([first.body.requestId]);
    const failed = await request(t.app)
      .post("/v1/action-result")
      .set("Authorization", `Bearer ${oldToken}`)
      .send({ requestId: first.body.requestId, status: "failed", error: "cannot open the new keys" });
    expect(failed.status).toBe(200);
    expect((await heartbeatWith(oldToken)).status).toBe(200);

    const again = await adminRequest(t.app, "POST", `/admin/devices/${device.deviceId}/rotate-token`);
    expect(again.status).toBe(202);
    expect((await heartbeatWith(oldToken)).status).toBe(200);
    // The replaced rotation's token is never accepted.
    await device.heartbeat();
    expect(device.registration.commandKeyId).toBe(again.body.commandKeyId);
    expect((await heartbeatWith(oldToken)).status).toBe(401);
    expect((await heartbeatWith(device.registration.deviceToken)).status).toBe(200);
  });

  it("refuses a second rotation while the first can complete, then accepts one once its grace has passed, which gives the locked-out device its way back", async () => {
    const device = await enroll();
    const oldToken = device.registration.deviceToken;
    const first = await adminRequest(t.app, "POST", `/admin/devices/${device.deviceId}/rotate-token`);
    expect((await adminRequest(t.app, "POST", `/admin/devices/${device.deviceId}/rotate-token`)).status).toBe(409);
    // Within the grace the old token works.
    expect((await heartbeatWith(oldToken)).status).toBe(200);

    // The grace (and the command's TTL, the same time) passes while the device is away.
    const past = new Date(Date.now() - 1000);
    await database.db.device.update({ where: { id: device.deviceId }, data: { rotationGraceUntil: past } });
    await database.db.command.update({ where: { requestId: first.body.requestId }, data: { expiresAt: past } });
    expect((await heartbeatWith(oldToken)).status).toBe(401);

    const again = await adminRequest(t.app, "POST", `/admin/devices/${device.deviceId}/rotate-token`);
    expect(again.status).toBe(202);
    expect(Date.parse(again.body.graceUntil)).toBeGreaterThan(Date.now());
    await device.heartbeat();
    expect(device.registration.commandKeyId).toBe(again.body.commandKeyId);
    expect(device.executions.has(first.body.requestId)).toBe(false);
    expect((await heartbeatWith(oldToken)).status).toBe(401);
    expect((await heartbeatWith(device.registration.deviceToken)).status).toBe(200);
  });

  it("records a succeeded result sent with the old token, but completes nothing: the old token works on, and a new rotation reaches the real device", async () => {
    const device = await enroll();
    const oldToken = device.registration.deviceToken;
    const first = await adminRequest(t.app, "POST", `/admin/devices/${device.deviceId}/rotate-token`);
    // Whoever holds the leaked old token picks the command up and claims it done.
    expect((await commandsFor(oldToken)).map((command) => command.requestId)).toEqual([first.body.requestId]);
    const claimed = await request(t.app)
      .post("/v1/action-result")
      .set("Authorization", `Bearer ${oldToken}`)
      .send({ requestId: first.body.requestId, status: "succeeded", result: { rotated: true } });
    expect(claimed.status).toBe(200);
    expect(claimed.body).toMatchObject({ status: "succeeded", changed: true });
    expect((await adminRequest(t.app, "GET", `/admin/commands/${first.body.requestId}`)).body).toMatchObject({
      status: "succeeded",
      result: { rotated: true },
    });
    expect(await database.db.device.findUniqueOrThrow({ where: { id: device.deviceId } })).toMatchObject({
      pendingTokenHash: expect.stringMatching(/^[a-f0-9]{64}$/),
      commandKeyGeneration: 0,
    });
    // The real device is not locked out; the operator rotates again, and it takes that one.
    expect((await heartbeatWith(oldToken)).status).toBe(200);
    const again = await adminRequest(t.app, "POST", `/admin/devices/${device.deviceId}/rotate-token`);
    expect(again.status).toBe(202);
    await device.heartbeat();
    expect(device.registration.commandKeyId).toBe(again.body.commandKeyId);
    expect(await database.db.device.findUniqueOrThrow({ where: { id: device.deviceId } })).toMatchObject({ pendingTokenHash: null, commandKeyGeneration: 1 });
    expect((await heartbeatWith(oldToken)).status).toBe(401);
    expect((await adminRequest(t.app, "GET", `/admin/commands/${again.body.requestId}`)).body).toMatchObject({
      status: "succeeded",
      result: { rotated: true },
    });
  });

  it("answers 409 while a rotation is pending or for a retired device, and 404 for an unknown one", async () => {
    const device = await enroll();
    expect((await adminRequest(t.app, "POST", `/admin/devices/${device.deviceId}/rotate-token`)).status).toBe(202);
    const pending = await adminRequest(t.app, "POST", `/admin/devices/${device.deviceId}/rotate-token`);
    expect(pending.status).toBe(409);
    expect(pending.body.error.code).toBe("conflict");
    const other = await enroll();
    await adminRequest(t.app, "POST", `/admin/devices/${other.deviceId}/retire`);
    expect((await adminRequest(t.app, "POST", `/admin/devices/${other.deviceId}/rotate-token`)).status).toBe(409);
    expect((await adminRequest(t.app, "POST", "/admin/devices/00000000-0000-4000-8000-000000000000/rotate-token")).status).toBe(404);
    // Admins cannot send rotate_token commands themselves.
    expect((await adminRequest(t.app, "POST", "/admin/command", { deviceId: device.deviceId, type: "rotate_token", payload: {} })).status).toBe(400);
  });
});

// Over the WebSocket: the socket was opened with the old token, so the device proves it
// holds the new one by opening its socket again with it.
describeWithPostgres("rotating the token of a device connected by WebSocket", () => {
  let database: TestDatabase;
  let server: RunningServer | undefined;
  let device: SimulatedDevice | undefined;

  beforeAll(async () => {
    database = await createTestDatabase();
  });
  // Each test starts its own server and device: both stopped after it, or the next test's would replace them unclosed.
  afterEach(async () => {
    await device?.stop();
    await server?.close();
    device = undefined;
    server = undefined;
  });
  afterAll(() => database.close());

  it("completes when the device reconnects with the new token, and its result is recorded", async () => {
    server = await startServer(
      parseEnv({
        ...TEST_SERVER_SETTINGS,
        DATABASE_URL: database.url,
        REDIS_URL: process.env.TEST_REDIS_URL || process.env.REDIS_URL || "redis://127.0.0.1:6379",
      }),
    );
    const admin = new AdminClient(server.url, { adminKey: TEST_ADMIN_KEY, hmacSecret: TEST_HMAC_SECRET });
    device = await SimulatedDevice.enroll(server.url, (await admin.createEnrollmentToken({ maxUses: 1 })).token);
    const oldToken = device.registration.deviceToken;
    await device.connect();
    const rotated = await admin.rotateDeviceToken(device.deviceId);
    const result = await new Promise<{ requestId: string; status: string }>((resolve) => device!.on("result", resolve));
    expect(result).toMatchObject({ requestId: rotated.requestId, status: "succeeded" });
    expect(device.registration.commandKeyId).toBe(rotated.commandKeyId);
    const deadline = Date.now() + 5000;
    while ((await admin.getCommand(rotated.requestId)).status !== "succeeded" && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 50));
    expect(await admin.getCommand(rotated.requestId)).toMatchObject({ status: "succeeded", result: { rotated: true } });
    expect(await database.db.device.findUniqueOrThrow({ where: { id: device.deviceId } })).toMatchObject({ pendingTokenHash: null, commandKeyGeneration: 1 });
    expect(device.connected).toBe(true);
    const heartbeat = (token: string) =>
      fetch(`${server!.url}/v1/heartbeat`, {
        method: "POST",
        headers: { "content-type": "application/json", authorization: `Bearer ${token}` },
        body: JSON.stringify(heartbeatBody({ deviceTime: new Date().toISOString() })),
      }).then((res) => res.status);
    expect(await heartbeat(oldToken)).toBe(401);
    expect(await heartbeat(device.registration.deviceToken)).toBe(200);
  });

  it("closes a socket opened with the old token (4003) once the device takes its new token, so a leaked token keeps no socket", async () => {
    server = await startServer(
      parseEnv({
        ...TEST_SERVER_SETTINGS,
        DATABASE_URL: database.url,
        REDIS_URL: process.env.TEST_REDIS_URL || process.env.REDIS_URL || "redis://127.0.0.1:6379",
      }),
    );
    const admin = new AdminClient(server.url, { adminKey: TEST_ADMIN_KEY, hmacSecret: TEST_HMAC_SECRET });
    const { registration } = await SimulatedDevice.enroll(server.url, (await admin.createEnrollmentToken({ maxUses: 1 })).token);
    // Someone holding the leaked token (not the command key) holds the device's socket.
    const intruder = new WebSocket(`${server.url.replace("http", "ws")}/ws/devices`, [DEVICE_WS_PROTOCOL], {
      headers: { Authorization: `Bearer ${registration.deviceToken}` },
    });
    const frames: DeviceServerFrame[] = [];
    intruder.on("message", (data) => frames.push(JSON.parse(data.toString()) as DeviceServerFrame));
    const closed = new Promise<number>((resolve) => intruder.once("close", (code) => resolve(code)));
    await new Promise((resolve, reject) => intruder.once("open", resolve).once("error", reject));

    // The admin re-keys; the real device (here, the test with its command key) opens the new token and uses it.
    const rotated = await admin.rotateDeviceToken(registration.deviceId);
    const deadline = Date.now() + 5000;
    let command: DeviceCommand | undefined;
    while (!command && Date.now() < deadline) {
      command = frames.flatMap((frame) => (frame.type === "command" && frame.command.requestId === rotated.requestId ? [frame.command] : []))[0];
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const secrets = RotationSecrets.parse(JSON.parse(await openWithCommandKey(registration.commandKey, String(command!.payload.sealed))));
    const beat = await fetch(`${server.url}/v1/heartbeat`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${secrets.deviceToken}` },
      body: JSON.stringify(heartbeatBody({ deviceTime: new Date().toISOString() })),
    });
    expect(beat.status).toBe(200);

    const outcome = await settledWithin(closed, 5000, "still open");
    intruder.terminate();
    expect(outcome).toBe(WsCloseCode.unauthorized);
    // A socket with the new token is the device's, and stays.
    device = new SimulatedDevice(server.url, { ...registration, ...secrets });
    await device.connect();
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(device.connected).toBe(true);
  });
});
