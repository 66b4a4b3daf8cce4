import { once } from "node:events";
import { BEARER_PROTOCOL_PREFIX, DEVICE_WS_PROTOCOL, DeviceServerFrame } from "@mdm/contracts";
import { AdminClient, KIOSK_APP, SimulatedDevice, parseArgs, runFleet } from "@mdm/simulator";
import WebSocket from "ws";
import { type RunningServer, startServer } from "../../server";
import {
  TEST_ADMIN_KEY,
  TEST_HMAC_SECRET,
  type TestDatabase,
  createTestDatabase,
  describeWithPostgres,
  heartbeatBody,
  testServerEnv,
  waitFor,
} from "../../test";
import { type FakeFcm, startFakeFcm } from "../../test/fake-fcm";

// Policies reaching real devices: a listening server, devices played by the simulator over
// real WebSockets (and HTTP heartbeats), compliance read back through the admin API.

// Generous deadlines: a busy machine may be slow, and nothing here measures speed.
jest.setTimeout(120_000);

describeWithPostgres("policy delivery to devices", () => {
  let database: TestDatabase;
  let server: RunningServer;
  let admin: AdminClient;
  let enrollmentToken: string;
  const devices: SimulatedDevice[] = [];

  const enroll = async (options: ConstructorParameters<typeof SimulatedDevice>[2] = {}) => {
    const device = await SimulatedDevice.enroll(server.url, enrollmentToken, options);
    devices.push(device);
    return device;
  };
  const compliance = (deviceId: string) => admin.getEffectivePolicy(deviceId).then((effective) => effective.compliance);

  beforeAll(async () => {
    database = await createTestDatabase();
    server = await startServer(testServerEnv({ DATABASE_URL: database.url }));
    admin = new AdminClient(server.url, { adminKey: TEST_ADMIN_KEY, hmacSecret: TEST_HMAC_SECRET });
    enrollmentToken = (await admin.createEnrollmentToken({ maxUses: 100 })).token;
  });
  afterEach(async () => {
    await Promise.all(devices.splice(0).map((device) => device.stop()));
  });
  afterAll(async () => {
    await server?.close();
    await database?.close();
  });

  it("a new version reaches a connected device over its socket, which applies it, reports it, and is compliant", async () => {
    const device = await enroll();
    // The till app is installed (in the background): lock-task mode brings it to the front.
    device.state = { ...device.state, apps: [...device.state.apps, { packageName: "com.example.till", versionCode: 7, running: false, foreground: false }] };
    await device.connect();
    const policy = await admin.createDevicePolicy({
      name: "Kiosk over socket",
      settings: { kiosk: { lockTaskPackages: ["com.example.till"] }, screen: { timeoutSeconds: 60 } },
    });
    await admin.assignDevicePolicy(policy.id, { deviceId: device.deviceId });
    const first = await admin.getEffectivePolicy(device.deviceId);
    await device.waitForPolicy(first.hash!, 20_000);
    // Lock-task mode: the first lock-task app runs in front.
    expect(device.state.apps.find((app) => app.foreground)?.packageName).toBe("com.example.till");
    expect(device.state.apps.find((app) => app.packageName === KIOSK_APP)?.foreground).toBe(false);
    await waitFor(
      () => compliance(device.deviceId),
      (state) => state.status === "compliant",
      20_000,
      "compliant",
    );

    const updated = await admin.updateDevicePolicy(policy.id, {
      settings: { kiosk: { lockTaskPackages: ["com.example.till"] }, screen: { timeoutSeconds: 120 } },
    });
    expect(updated.version).toBe(2);
    const second = await admin.getEffectivePolicy(device.deviceId);
    expect(second.hash).not.toBe(first.hash);
    expect(second.sources.find((source) => source.path === "screen.timeoutSeconds")).toMatchObject({ policyVersion: 2, value: 120 });
    // No heartbeat is sent meanwhile: the frame the change triggered brings it.
    await device.waitForPolicy(second.hash!, 20_000);
    expect(device.appliedPolicy?.policy.settings.screen).toEqual({ timeoutSeconds: 120 });
    const state = await waitFor(
      () => compliance(device.deviceId),
      (current) => current.status === "compliant" && current.appliedHash === second.hash,
      20_000,
      "compliant with v2",
    );
    expect(state.failures).toEqual([]);
  });

  it("a device without a socket gets the policy in its heartbeat answer; a setting it refuses makes it failed with the reason", async () => {
    const device = await enroll({ refuseSettings: ["restrictions.camera"] });
    const policy = await admin.createDevicePolicy({ name: "No camera", settings: { restrictions: { camera: false, debugging: false } } });
    await admin.assignDevicePolicy(policy.id, { deviceId: device.deviceId });
    expect((await compliance(device.deviceId)).status).toBe("pending");

    await device.heartbeat();
    const effective = await admin.getEffectivePolicy(device.deviceId);
    expect(device.appliedPolicyHash).toBe(effective.hash);
    const state = await waitFor(
      () => compliance(device.deviceId),
      (current) => current.status === "failed",
      20_000,
      "failed",
    );
    expect(state.failures).toEqual([{ setting: "restrictions.camera", reason: expect.stringContaining("does not support") }]);
    expect(state.appliedHash).toBe(effective.hash);
  });

  it("a fleet started from the simulator's command line with --refuse-settings refuses those settings, and its devices read failed with the reason", async () => {
    const { token, id: tokenId } = await admin.createEnrollmentToken({ label: "refusing fleet", maxUses: 2 });
    const parsed = parseArgs([
      "--url",
      server.url,
      "--devices",
      "2",
      "--interval",
      "60s",
      "--enrollment-token",
      token,
      "--refuse-settings",
      "restrictions.camera,screen.brightness",
    ]);
    if (parsed.help) throw new Error("not a run");
    const stop = new AbortController();
    const run = runFleet({ ...parsed.options, log: () => undefined, signal: stop.signal });
    try {
      const enrolled = await waitFor(
        () => database.db.device.findMany({ where: { enrollmentTokenId: tokenId }, select: { id: true } }),
        (rows) => rows.length === 2,
        20_000,
        "two devices enrolled",
      );
      const policy = await admin.createDevicePolicy({
        name: "Refused by the fleet",
        settings: { restrictions: { camera: false, debugging: false }, screen: { brightness: 50, timeoutSeconds: 60 } },
      });
      for (const { id } of enrolled) await admin.assignDevicePolicy(policy.id, { deviceId: id });
      for (const { id } of enrolled) {
        // Connected over their sockets, the devices get the policy frame and report at once.
        const state = await waitFor(
          () => compliance(id),
          (current) => current.status === "failed",
          20_000,
          "failed",
        );
        expect(state.failures).toEqual([
          { setting: "restrictions.camera", reason: expect.stringContaining("--refuse-settings") },
          { setting: "screen.brightness", reason: expect.stringContaining("--refuse-settings") },
        ]);
      }
    } finally {
      stop.abort();
      await run;
    }
  });

  it("over the socket, heartbeat_ok names reported failures that are not settings of the device's effective policy; the others are kept and the socket stays open", async () => {
    const device = await enroll();
    const policy = await admin.createDevicePolicy({ name: "Camera over socket", settings: { restrictions: { camera: false } } });
    await admin.assignDevicePolicy(policy.id, { deviceId: device.deviceId });
    const { hash } = await admin.getEffectivePolicy(device.deviceId);
    const ws = new WebSocket(`${server.url.replace(/^http/, "ws")}/ws/devices`, [
      DEVICE_WS_PROTOCOL,
      `${BEARER_PROTOCOL_PREFIX}${device.registration.deviceToken}`,
    ]);
    const frames: DeviceServerFrame[] = [];
    ws.on("message", (data) => frames.push(DeviceServerFrame.parse(JSON.parse(data.toString()))));
    await once(ws, "open");
    try {
      const failures = [
        { setting: "restrictions.camera", reason: "No camera" },
        { setting: "kiosk.nonexistent", reason: "?" },
      ];
      ws.send(JSON.stringify({ type: "heartbeat", heartbeat: heartbeatBody({ policy: { appliedHash: hash, failures } }) }));
      const ok = await waitFor(
        async () => frames.find((frame) => frame.type === "heartbeat_ok"),
        (frame) => frame !== undefined,
        20_000,
        "heartbeat_ok",
      );
      expect(ok).toEqual({
        type: "heartbeat_ok",
        serverTime: expect.any(String),
        ignoredPolicyFailures: [{ path: "policy.failures.1.setting", message: "kiosk.nonexistent is not a setting of the device's effective policy" }],
      });
      expect(ws.readyState).toBe(WebSocket.OPEN);
      expect(await compliance(device.deviceId)).toMatchObject({ status: "failed", appliedHash: hash, failures: [failures[0]] });
    } finally {
      ws.close();
      await once(ws, "close");
    }
  });
});

describeWithPostgres("policy wake-ups through FCM", () => {
  let database: TestDatabase;
  let fcm: FakeFcm;
  let server: RunningServer;
  let admin: AdminClient;
  const devices: SimulatedDevice[] = [];

  beforeAll(async () => {
    database = await createTestDatabase();
    fcm = await startFakeFcm();
    // The real firebase-admin SDK, talking to the fake FCM server.
    server = await startServer(testServerEnv({ DATABASE_URL: database.url }), { push: fcm.createGateway() });
    admin = new AdminClient(server.url, { adminKey: TEST_ADMIN_KEY, hmacSecret: TEST_HMAC_SECRET });
  });
  afterAll(async () => {
    await Promise.all(devices.splice(0).map((device) => device.stop()));
    await server?.close();
    await fcm?.close();
    await database?.close();
  });

  it("wakes a device without a socket by FCM when its effective policy changes; a device holding a socket gets the frame and no push", async () => {
    const enrollmentToken = (await admin.createEnrollmentToken({ maxUses: 10 })).token;
    const asleep = await SimulatedDevice.enroll(server.url, enrollmentToken, { facts: { fcmToken: "fcm-asleep" } });
    const awake = await SimulatedDevice.enroll(server.url, enrollmentToken, { facts: { fcmToken: "fcm-awake" } });
    devices.push(asleep, awake);
    await awake.connect();

    const policy = await admin.createDevicePolicy({ name: "Wake", settings: { screen: { timeoutSeconds: 90 } } });
    await admin.assignDevicePolicy(policy.id, { deviceId: asleep.deviceId });
    await admin.assignDevicePolicy(policy.id, { deviceId: awake.deviceId });
    const hash = (await admin.getEffectivePolicy(asleep.deviceId)).hash!;

    await awake.waitForPolicy(hash, 20_000);
    await waitFor(
      async () => fcm.requests.map((request) => request.body.message),
      (messages) => messages.length > 0,
      20_000,
      "a wake-up push",
    );
    // Both rows worked through: the one push there is went to the device without a socket.
    await waitFor(
      () => server.deps.db.policyDispatch.count(),
      (count) => count === 0,
      20_000,
      "the policy worker done",
    );
    expect(fcm.requests.map((request) => request.body.message)).toEqual([
      expect.objectContaining({ token: "fcm-asleep", data: { kind: "policy", hash }, android: expect.objectContaining({ priority: "high" }) }),
    ]);

    // Woken, the device heartbeats and gets the policy in the answer.
    await asleep.heartbeat();
    expect(asleep.appliedPolicyHash).toBe(hash);
  });
});
