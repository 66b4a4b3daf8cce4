import request from "supertest";
import { claimJobRun, expireCommands } from "../../jobs/maintenance";
import type { PushGateway, PushMessage, PushResult } from "../../push/push-gateway";
import type { FleetEvent } from "../../realtime/event-bus";
import { sweepSocketLeases } from "../../realtime/presence";
import { type TestApp, type TestDatabase, adminRequest, createTestApp, createTestDatabase, enrollDevice, heartbeatBody, resetTables } from "../../test";
import { retryDelaySeconds } from "./delivery";

// The delivery engine against real PostgreSQL, one worker round at a time (t.deliver()).

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

/** A push gateway that never answers, counting the calls: FCM hanging, or an instance dying mid-send. */
class HangingPushGateway implements PushGateway {
  readonly name = "hanging";
  readonly calls: PushMessage[] = [];
  send(message: PushMessage): Promise<PushResult> {
    this.calls.push(message);
    return new Promise(() => undefined);
  }
}

const commandRow = (requestId: string) => database.db.command.findUniqueOrThrow({ where: { requestId } });

describe("the delivery worker", () => {
  it("claims a due command once, with its next attempt already scheduled: an attempt that dies midway is due again then", async () => {
    const crashing: PushGateway = {
      name: "crashing",
      send: async () => {
        throw new Error("the instance died while sending");
      },
    };
    t = createTestApp(database.db, { push: crashing });
    const device = await enrollDevice(t.app, { fcmToken: "tok" });
    const created = await adminRequest(t.app, "POST", "/admin/command", { deviceId: device.deviceId, type: "ping" });

    const before = Date.now();
    expect(await t.deliver()).toBe(1);
    const claimed = await commandRow(created.body.requestId);
    expect(claimed).toMatchObject({ status: "queued", deliveryAttempts: 1 });
    // Backoff with ±20% jitter around the first retry delay.
    const delayMs = claimed.nextAttemptAt!.getTime() - before;
    const base = retryDelaySeconds(t.deps.env.COMMAND_RETRY_BASE_SECONDS, 1) * 1000;
    expect(delayMs).toBeGreaterThanOrEqual(base * 0.8 - 50);
    expect(delayMs).toBeLessThanOrEqual(base * 1.2 + 1000);
    // Not due yet: no second claim.
    expect(await t.deliver()).toBe(0);

    // Time passes (past the longest jittered delay); a healthy worker (another instance,
    // or this one restarted) takes it over.
    const later = (base * 1.2) / 1000 + 1;
    t.clock.advance(later);
    const healthy = createTestApp(database.db, { push: t.push });
    healthy.clock.advance(later);
    expect(await healthy.deliver()).toBe(1);
    expect(await commandRow(created.body.requestId)).toMatchObject({ status: "sent", pushOutcome: "sent", deliveryAttempts: 2 });
    expect(t.push.sent.map((message) => message.data.requestId)).toEqual([created.body.requestId]);
  });

  it("spreads concurrent workers over the due commands: each command claimed by exactly one", async () => {
    const device = await enrollDevice(t.app, { fcmToken: "tok" });
    const bulk = await adminRequest(t.app, "POST", "/admin/commands/bulk", { target: { deviceIds: [device.deviceId] }, type: "ping" });
    expect(bulk.status).toBe(202);
    for (let i = 0; i < 30; i++) await adminRequest(t.app, "POST", "/admin/command", { deviceId: device.deviceId, type: "ping" });
    const workers = Array.from({ length: 4 }, () => createTestApp(database.db, { push: t.push }));
    const attempted = await Promise.all(workers.map((worker) => worker.deliver()));
    expect(attempted.reduce((sum, count) => sum + count, 0)).toBe(31);
    expect(t.push.sent).toHaveLength(31);
    expect(new Set(t.push.sent.map((message) => message.data.requestId)).size).toBe(31);
  });

  it("writes bulk commands due at once, so the workers send them even if nobody wakes them", async () => {
    await enrollDevice(t.app, { fcmToken: "a" });
    await enrollDevice(t.app, { fcmToken: "b" });
    const bulk = await adminRequest(t.app, "POST", "/admin/commands/bulk", { target: { all: true }, type: "lock" });
    const rows = await database.db.command.findMany({ where: { batchId: bulk.body.batchId } });
    expect(rows).toHaveLength(2);
    for (const row of rows) expect(row.nextAttemptAt!.getTime()).toBeLessThanOrEqual(Date.now());
    expect(await t.deliver()).toBe(2);
    expect(t.push.sent.map((message) => message.token).sort()).toEqual(["a", "b"]);
  });

  it("picks the channel from presence: a live socket lease gets the socket, a lapsed one a push, `both` both", async () => {
    const device = await enrollDevice(t.app, { fcmToken: "tok" });
    const events: FleetEvent[] = [];
    t.deps.bus.subscribe((event) => events.push(event));
    const lease = (seconds: number) =>
      database.db.device.update({
        where: { id: device.deviceId },
        data: { socketInstanceId: "another-instance", socketLeaseExpiresAt: new Date(Date.now() + seconds * 1000) },
      });
    const deliveries = () => events.filter((event) => event.kind === "deliver").map((event) => (event as { requestId: string }).requestId);

    await lease(60);
    const viaSocket = await adminRequest(t.app, "POST", "/admin/command", { deviceId: device.deviceId, type: "ping" });
    await t.deliver();
    expect(deliveries()).toEqual([viaSocket.body.requestId]);
    expect(t.push.sent).toHaveLength(0);
    expect((await adminRequest(t.app, "GET", `/admin/devices/${device.deviceId}`)).body.connected).toBe(true);

    const both = await adminRequest(t.app, "POST", "/admin/command", { deviceId: device.deviceId, type: "ping", delivery: "both" });
    await t.deliver();
    expect(deliveries()).toEqual([viaSocket.body.requestId, both.body.requestId]);
    expect(t.push.sent.map((message) => message.data.requestId)).toEqual([both.body.requestId]);

    // The holder died: its lease lapsed without anyone clearing the row.
    await lease(-1);
    expect((await adminRequest(t.app, "GET", `/admin/devices/${device.deviceId}`)).body.connected).toBe(false);
    const orphan = await adminRequest(t.app, "POST", "/admin/command", { deviceId: device.deviceId, type: "ping" });
    await t.deliver();
    expect(deliveries()).not.toContain(orphan.body.requestId);
    expect(t.push.sent.map((message) => message.data.requestId)).toContain(orphan.body.requestId);
  });

  it("sweeps lapsed leases and makes the orphaned devices' commands due at once", async () => {
    const device = await enrollDevice(t.app);
    const created = await adminRequest(t.app, "POST", "/admin/command", { deviceId: device.deviceId, type: "ping" });
    const later = new Date(Date.now() + 3600_000);
    await database.db.command.update({ where: { requestId: created.body.requestId }, data: { nextAttemptAt: later } });
    await database.db.device.update({ where: { id: device.deviceId }, data: { socketInstanceId: "dead", socketLeaseExpiresAt: new Date(Date.now() - 1000) } });
    const live = await enrollDevice(t.app);
    await database.db.device.update({ where: { id: live.deviceId }, data: { socketInstanceId: "alive", socketLeaseExpiresAt: new Date(Date.now() + 60_000) } });

    expect(await sweepSocketLeases(t.deps)).toBe(1);
    expect(await database.db.device.findUniqueOrThrow({ where: { id: device.deviceId } })).toMatchObject({
      socketInstanceId: null,
      socketLeaseExpiresAt: null,
    });
    expect(await database.db.device.findUniqueOrThrow({ where: { id: live.deviceId } })).toMatchObject({ socketInstanceId: "alive" });
    expect((await commandRow(created.body.requestId)).nextAttemptAt!.getTime()).toBeLessThan(later.getTime());
  });
});

describe("deadlines of the command lifecycle", () => {
  it("expires a command acknowledged without a result, with the reason, and its batch reaches done", async () => {
    const device = await enrollDevice(t.app, { fcmToken: "tok" });
    const bulk = await adminRequest(t.app, "POST", "/admin/commands/bulk", { target: { deviceIds: [device.deviceId] }, type: "reboot" });
    await t.deliver();
    const [command] = (await adminRequest(t.app, "GET", `/admin/commands?batchId=${bulk.body.batchId}`)).body.commands;
    await request(t.app).post("/v1/action-result").auth(device.deviceToken, bearer).send({ requestId: command.requestId, status: "acknowledged" });

    expect(await expireCommands(t.deps)).toBe(0);
    t.clock.advance(t.deps.env.COMMAND_RESULT_TIMEOUT_SECONDS + 1);
    expect(await expireCommands(t.deps)).toBe(1);

    // Read with a fresh clock: admin signatures must be within minutes of the server's.
    const reader = createTestApp(database.db);
    const expired = (await adminRequest(reader.app, "GET", `/admin/commands/${command.requestId}`)).body;
    expect(expired).toMatchObject({
      status: "expired",
      errorMessage: `no result within ${t.deps.env.COMMAND_RESULT_TIMEOUT_SECONDS} s of the acknowledgement`,
    });
    expect(expired.events.map((event: { status: string }) => event.status)).toEqual(["queued", "sent", "acknowledged", "expired"]);
    expect(expired.events.at(-1).detail).toMatch(/^no result within/);
    expect((await adminRequest(reader.app, "GET", `/admin/batches/${bulk.body.batchId}`)).body).toMatchObject({ done: true, counts: { expired: 1 } });
  });

  it("expires a command sent but never acknowledged when its TTL elapses, saying so", async () => {
    const device = await enrollDevice(t.app, { fcmToken: "tok" });
    const created = await adminRequest(t.app, "POST", "/admin/command", { deviceId: device.deviceId, type: "ping", ttlSeconds: 60 });
    await t.deliver();
    expect((await commandRow(created.body.requestId)).status).toBe("sent");
    t.clock.advance(61);
    expect(await expireCommands(t.deps)).toBe(1);
    expect(await commandRow(created.body.requestId)).toMatchObject({
      status: "expired",
      errorMessage: "not acknowledged before its TTL elapsed",
      nextAttemptAt: null,
    });
  });
});

describe("auto-relaunch inside the heartbeat", () => {
  const LEGACY_KEY = "legacy-key-0123456789abcdef0123456789abcdef";

  it.each(["v1", "legacy"] as const)(
    "rides in the answer to the %s heartbeat that reported the app stopped; no push happens inside the request",
    async (channel) => {
      const push = new HangingPushGateway();
      t = createTestApp(database.db, { push, env: { LEGACY_ENROLLMENT_KEY: LEGACY_KEY } });
      const stopped = heartbeatBody({
        apps: [{ packageName: "com.example.kiosk", versionName: "2.1.0", versionCode: 210, running: false, foreground: false }],
      });
      let send: () => request.Test;
      let deviceId: string;
      if (channel === "v1") {
        const device = await enrollDevice(t.app, { fcmToken: "tok" });
        deviceId = device.deviceId;
        send = () => request(t.app).post("/v1/heartbeat").auth(device.deviceToken, bearer).send(stopped);
      } else {
        const first = await request(t.app)
          .post("/api/devices/heartbeat")
          .set("X-Enrollment-Key", LEGACY_KEY)
          .send({ deviceId: "kiosk-7", device: { fcmToken: "tok" }, ...heartbeatBody() });
        deviceId = first.body.deviceId;
        send = () =>
          request(t.app)
            .post("/api/devices/heartbeat")
            .set("X-Enrollment-Key", LEGACY_KEY)
            .set("Authorization", `Bearer ${first.body.deviceToken}`)
            .send({ deviceId: "kiosk-7", ...stopped });
      }
      expect((await adminRequest(t.app, "POST", "/admin/policies", { deviceId, packageName: "com.example.kiosk" })).status).toBe(201);

      // The push gateway never answers: had the request waited on it, this would time out.
      const answer = await send().timeout(5000);
      expect(answer.status).toBe(200);
      expect(answer.body.commands).toEqual([expect.objectContaining({ type: "relaunch_app", payload: { packageName: "com.example.kiosk" } })]);
      expect(push.calls).toHaveLength(0);

      const command = await commandRow(answer.body.commands[0].requestId);
      expect(command).toMatchObject({ status: "sent", createdBy: "policy:auto-relaunch" });
      // The worker tries again only if no acknowledgement follows within a retry interval.
      expect(command.nextAttemptAt!.getTime()).toBeGreaterThan(Date.now());
      expect(await t.deliver()).toBe(0);
    },
  );
});

describe("auto-relaunch under load", () => {
  const stoppedKiosk = () =>
    heartbeatBody({ apps: [{ packageName: "com.example.kiosk", versionName: "2.1.0", versionCode: 210, running: false, foreground: false }] });

  it("puts the relaunch first in the answer even when a full page of older commands waits", async () => {
    const device = await enrollDevice(t.app);
    for (let i = 0; i < 25; i++) await adminRequest(t.app, "POST", "/admin/command", { deviceId: device.deviceId, type: "ping" });
    await adminRequest(t.app, "POST", "/admin/policies", { deviceId: device.deviceId, packageName: "com.example.kiosk" });
    const answer = await request(t.app).post("/v1/heartbeat").auth(device.deviceToken, bearer).send(stoppedKiosk());
    expect(answer.body.commands).toHaveLength(20);
    expect(answer.body.commands[0]).toMatchObject({ type: "relaunch_app", payload: { packageName: "com.example.kiosk" } });
  });

  it("queues one relaunch for concurrent heartbeats reporting the app stopped, not one each", async () => {
    const device = await enrollDevice(t.app);
    await adminRequest(t.app, "POST", "/admin/policies", { deviceId: device.deviceId, packageName: "com.example.kiosk" });
    const answers = await Promise.all(
      Array.from({ length: 6 }, () => request(t.app).post("/v1/heartbeat").auth(device.deviceToken, bearer).send(stoppedKiosk())),
    );
    expect(answers.map((answer) => answer.status)).toEqual(Array(6).fill(200));
    expect(await database.db.command.count({ where: { deviceId: device.deviceId, type: "relaunch_app" } })).toBe(1);

    // The next window allows the next one.
    t.clock.advance(t.deps.env.AUTO_RELAUNCH_DEBOUNCE_SECONDS + 1);
    await request(t.app).post("/v1/heartbeat").auth(device.deviceToken, bearer).send(stoppedKiosk());
    expect(await database.db.command.count({ where: { deviceId: device.deviceId, type: "relaunch_app" } })).toBe(2);
  });
});

describe("background jobs", () => {
  it("run once per period across instances: of two instances asking at once, one runs the job", async () => {
    const instances = [createTestApp(database.db), createTestApp(database.db)];
    for (let period = 0; period < 5; period++) {
      const claims = await Promise.all(instances.map((instance) => claimJobRun(instance.deps, "offline sweep", 10_000)));
      expect(claims.filter(Boolean)).toHaveLength(1);
      // Within the period nobody else gets it.
      expect(await claimJobRun(instances[period % 2]!.deps, "offline sweep", 10_000)).toBe(false);
      for (const instance of instances) instance.clock.advance(10);
    }
    expect(await database.db.jobLease.findUniqueOrThrow({ where: { name: "offline sweep" } })).toMatchObject({ runs: 5 });
    // Another job has its own slot.
    expect(await claimJobRun(instances[0]!.deps, "housekeeping", 10_000)).toBe(true);
  });
});
