import { HeartbeatRequest, type RegisterResponse } from "@mdm/contracts";
import { Client } from "pg";
import request from "supertest";
import { Prisma } from "../../generated/prisma/client";
import { type RunningServer, startServer } from "../../server";
import {
  type TestApp,
  type TestDatabase,
  adminRequest,
  createEnrollmentToken,
  createTestApp,
  createTestDatabase,
  describeWithPostgres,
  heartbeatBody,
  resetTables,
  testServerEnv,
} from "../../test";
import { DeviceRevokedError, authenticateDevice, heartbeatCommitOf, recordHeartbeat } from "./devices.service";

// Group commit (HEARTBEAT_BATCH_*): heartbeats arriving together are written by one
// statement, each answered with its own outcome once that statement has committed.

let database: TestDatabase;
let t: TestApp;

beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(() => database.close());
beforeEach(async () => {
  await resetTables(database.db);
});

const bearer = { type: "bearer" } as const;

/** An app whose batches go when `max` heartbeats wait (or after a second): a test's concurrent heartbeats share statements. */
const batchingApp = (max: number, extra: Record<string, string> = {}) =>
  createTestApp(database.db, { env: { HEARTBEAT_BATCH_MAX: String(max), HEARTBEAT_BATCH_WAIT_MS: "1000", ...extra } });

async function enrollMany(app: TestApp["app"], count: number): Promise<RegisterResponse[]> {
  const enrollmentToken = await createEnrollmentToken(app, { maxUses: count });
  const devices: RegisterResponse[] = [];
  for (let i = 0; i < count; i++) {
    const res = await request(app)
      .post("/v1/register")
      .send({ enrollmentToken, device: { model: `Batch ${i}` } });
    if (res.status !== 201) throw new Error(`register: ${res.status} ${JSON.stringify(res.body)}`);
    devices.push(res.body);
  }
  return devices;
}

const heartbeat = (overrides: Record<string, unknown> = {}) => HeartbeatRequest.parse(heartbeatBody(overrides));

/** What the batch-size histogram counted: statements run and the heartbeats they carried. */
async function statements(app: TestApp): Promise<{ statements: number; heartbeats: number }> {
  const { values } = await app.deps.metrics.heartbeatBatchSize.get();
  const value = (name: string) => values.find((entry) => entry.metricName === name)?.value ?? 0;
  return { statements: value("mdm_heartbeat_batch_size_count"), heartbeats: value("mdm_heartbeat_batch_size_sum") };
}

async function telemetryOf(deviceId: string) {
  return database.db.telemetryEvent.findMany({ where: { deviceId }, orderBy: { id: "asc" } });
}

async function waitFor<T>(read: () => Promise<T | undefined>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    const value = await read();
    if (value !== undefined) return value;
    if (attempt > 300) throw new Error("condition never met");
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

describeWithPostgres("heartbeat group commit", () => {
  it("writes concurrent heartbeats of many devices in fewer statements: one telemetry row each, each device's own state and answer", async () => {
    t = batchingApp(10);
    const devices = await enrollMany(t.app, 30);
    // One device has a command waiting: only its answer carries it.
    const withCommand = devices[7]!;
    const created = await adminRequest(t.app, "POST", "/admin/command", { deviceId: withCommand.deviceId, type: "ping" });
    expect(created.status).toBe(201);

    const answers = await Promise.all(
      devices.map((device, index) =>
        request(t.app)
          .post("/v1/heartbeat")
          .auth(device.deviceToken, bearer)
          .send(heartbeatBody({ battery: { level: index, charging: index % 2 === 0 }, uptimeSeconds: 1000 + index })),
      ),
    );

    for (const [index, res] of answers.entries()) {
      expect(res.status).toBe(200);
      expect(res.body.commands).toHaveLength(devices[index] === withCommand ? 1 : 0);
    }
    expect(answers[7]!.body.commands[0]).toMatchObject({ requestId: created.body.requestId, type: "ping" });
    for (const [index, device] of devices.entries()) {
      const row = await database.db.device.findUniqueOrThrow({ where: { id: device.deviceId } });
      expect(row).toMatchObject({ batteryLevel: index, batteryCharging: index % 2 === 0, uptimeSeconds: BigInt(1000 + index), online: true });
      const events = await telemetryOf(device.deviceId);
      expect(events).toHaveLength(1);
      expect(events[0]).toMatchObject({ batteryLevel: index });
    }
    const counted = await statements(t);
    expect(counted.heartbeats).toBe(30);
    expect(counted.statements).toBeLessThan(30);
  });

  it("records two heartbeats of one device submitted together, in order, in two statements", async () => {
    t = batchingApp(10, { HEARTBEAT_BATCH_WAIT_MS: "5" });
    const [device, other] = await enrollMany(t.app, 2);
    const first = recordHeartbeat(t.deps, device!.deviceId, heartbeat({ battery: { level: 10, charging: false } }));
    const second = recordHeartbeat(t.deps, device!.deviceId, heartbeat({ battery: { level: 20, charging: true } }));
    const alongside = recordHeartbeat(t.deps, other!.deviceId, heartbeat({ battery: { level: 30, charging: false } }));
    const [a, b, c] = await Promise.all([first, second, alongside]);
    expect([a.device.batteryLevel, b.device.batteryLevel, c.device.batteryLevel]).toEqual([10, 20, 30]);

    expect((await telemetryOf(device!.deviceId)).map((event) => event.batteryLevel)).toEqual([10, 20]);
    expect(await database.db.device.findUniqueOrThrow({ where: { id: device!.deviceId } })).toMatchObject({ batteryLevel: 20, batteryCharging: true });
    expect(await statements(t)).toEqual({ statements: 2, heartbeats: 3 });
  });

  it("refuses only the heartbeat of a device retired or deleted meanwhile; the rest of its batch is recorded", async () => {
    t = batchingApp(4);
    const [kept, retired, deleted, alsoKept] = await enrollMany(t.app, 4);
    await database.db.device.update({ where: { id: retired!.deviceId }, data: { retiredAt: new Date() } });
    await database.db.device.delete({ where: { id: deleted!.deviceId } });

    const outcomes = await Promise.allSettled([kept, retired, deleted, alsoKept].map((device) => recordHeartbeat(t.deps, device!.deviceId, heartbeat())));
    expect(outcomes.map((outcome) => outcome.status)).toEqual(["fulfilled", "rejected", "rejected", "fulfilled"]);
    for (const outcome of [outcomes[1], outcomes[2]]) expect((outcome as PromiseRejectedResult).reason).toBeInstanceOf(DeviceRevokedError);
    expect(await database.db.telemetryEvent.count()).toBe(2);
    expect(await database.db.device.findUniqueOrThrow({ where: { id: retired!.deviceId } })).toMatchObject({ lastSeenAt: null, online: false });
    expect(await statements(t)).toEqual({ statements: 1, heartbeats: 4 });
  });

  it("a heartbeat PostgreSQL refuses fails alone: its batch is retried one heartbeat per statement", async () => {
    t = batchingApp(3);
    const [first, faulty, last] = await enrollMany(t.app, 3);
    // Past the contract's checks only by skipping them (the routes validate first): an int column overflows.
    const overflowing = { ...heartbeat(), battery: { level: 2 ** 40, charging: false } } as HeartbeatRequest;
    const outcomes = await Promise.allSettled([
      recordHeartbeat(t.deps, first!.deviceId, heartbeat()),
      recordHeartbeat(t.deps, faulty!.deviceId, overflowing),
      recordHeartbeat(t.deps, last!.deviceId, heartbeat()),
    ]);
    expect(outcomes.map((outcome) => outcome.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
    expect((outcomes[1] as PromiseRejectedResult).reason).toMatchObject({ code: "22003" });
    expect(await database.db.telemetryEvent.count()).toBe(2);
    expect(await telemetryOf(faulty!.deviceId)).toEqual([]);
    // The batch, then each of its heartbeats alone.
    expect(await statements(t)).toEqual({ statements: 4, heartbeats: 6 });
  });

  it("a batch the database fails answers 503 with Retry-After to every heartbeat in it, and writes none of them", async () => {
    t = batchingApp(5);
    const devices = await enrollMany(t.app, 5);
    const send = (device: RegisterResponse) => request(t.app).post("/v1/heartbeat").auth(device.deviceToken, bearer).send(heartbeatBody());
    // A first heartbeat each: the tokens are verified and cached, so the next ones reach the batch together.
    for (const res of await Promise.all(devices.map(send))) expect(res.status).toBe(200);
    const seen = await database.db.device.findMany({ select: { id: true, lastSeenAt: true }, orderBy: { id: "asc" } });
    const before = await statements(t);

    // The devices' rows are locked, so the batch waits inside PostgreSQL; its connection is then cut.
    const holder = new Client({ connectionString: database.url });
    await holder.connect();
    try {
      await holder.query("BEGIN");
      await holder.query(`SELECT 1 FROM "Device" FOR UPDATE`);
      const answers = Promise.all(devices.map(send));
      const blocked = await waitFor(async () => {
        const now = await statements(t);
        // Not on the holder's connection: within its transaction, the view would not change.
        const rows = await database.db.$queryRaw<Array<{ pid: number }>>`
          SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%json_to_recordset%'`;
        const sent = now.statements - before.statements;
        return now.heartbeats === before.heartbeats + 5 && rows.length === sent ? rows : undefined;
      });
      // The five went in fewer statements than heartbeats: the failure is a batch's.
      expect(blocked.length).toBeLessThan(5);
      for (const { pid } of blocked) await holder.query("SELECT pg_terminate_backend($1)", [pid]);
      for (const res of await answers) {
        expect(res.status).toBe(503);
        expect(res.body.error.code).toBe("service_unavailable");
        expect(Number(res.headers["retry-after"])).toBeGreaterThan(0);
      }
    } finally {
      await holder.query("ROLLBACK");
      await holder.end();
    }
    expect(await database.db.telemetryEvent.count()).toBe(5);
    expect(await database.db.device.findMany({ select: { id: true, lastSeenAt: true }, orderBy: { id: "asc" } })).toEqual(seen);
  });

  it("past HEARTBEAT_QUEUE_MAX waiting heartbeats answers 503 with Retry-After, and serves again once they are written", async () => {
    t = batchingApp(10, { HEARTBEAT_QUEUE_MAX: "2" });
    const [a, b, c] = await enrollMany(t.app, 3);
    // c's token verified (and cached) first: its heartbeat then reaches the queue at once, while it is full.
    await authenticateDevice(t.deps, `Bearer ${c!.deviceToken}`);
    const waiting = [recordHeartbeat(t.deps, a!.deviceId, heartbeat()), recordHeartbeat(t.deps, b!.deviceId, heartbeat())];
    const refused = await request(t.app).post("/v1/heartbeat").auth(c!.deviceToken, bearer).send(heartbeatBody());
    expect(refused.status).toBe(503);
    expect(refused.body.error).toMatchObject({ code: "service_unavailable", message: expect.stringMatching(/too many heartbeats waiting/) });
    expect(refused.headers["retry-after"]).toBe("2");
    expect(await t.deps.metrics.shed.get()).toMatchObject({ values: [{ labels: { reason: "heartbeat_queue" }, value: 1 }] });

    await heartbeatCommitOf(t.deps).drain();
    await Promise.all(waiting);
    expect(await database.db.telemetryEvent.count()).toBe(2);
    const served = await request(t.app).post("/v1/heartbeat").auth(c!.deviceToken, bearer).send(heartbeatBody());
    expect(served.status).toBe(200);
    expect(await database.db.telemetryEvent.count()).toBe(3);
  });

  it("checks reported policy failures inside the batched statement, against the policy on the row: no read of its own per heartbeat", async () => {
    t = batchingApp(4);
    const devices = await enrollMany(t.app, 4);
    const settings = { restrictions: { camera: false }, systemUpdate: { type: "automatic" } };
    await database.db.device.updateMany({ data: { policyDesired: settings, policyDesiredHash: "h1" } });
    await database.db.device.update({ where: { id: devices[3]!.deviceId }, data: { policyDesired: Prisma.DbNull, policyDesiredHash: null } });
    // Tokens verified first, so nothing but the heartbeats' own statements reads the table.
    for (const device of devices) await authenticateDevice(t.deps, `Bearer ${device.deviceToken}`);
    const before = await statements(t);
    const failures = [
      { setting: "restrictions.camera", reason: "No camera" },
      { setting: "kiosk.statusBar", reason: "not in the policy" },
      { setting: "systemUpdate", reason: "No OTA client" },
    ];

    // The table is locked: a read of the policy before the heartbeat joins its batch would wait
    // here, and the heartbeats would never reach their statement.
    const holder = new Client({ connectionString: database.url });
    await holder.connect();
    let answers: Promise<request.Response[]> | undefined;
    try {
      await holder.query("BEGIN");
      await holder.query(`LOCK TABLE "Device" IN ACCESS EXCLUSIVE MODE`);
      answers = Promise.all(
        devices.map((device) =>
          request(t.app)
            .post("/v1/heartbeat")
            .auth(device.deviceToken, bearer)
            .send(heartbeatBody({ policy: { appliedHash: "h1", failures } })),
        ),
      );
      const blocked = await waitFor(async () => {
        const now = await statements(t);
        const rows = await database.db.$queryRaw<Array<{ pid: number }>>`
          SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%json_to_recordset%'`;
        return now.heartbeats === before.heartbeats + 4 && rows.length === now.statements - before.statements ? rows : undefined;
      });
      expect(blocked).toHaveLength(1);
      await holder.query("COMMIT");
    } finally {
      await holder.query("ROLLBACK").catch(() => undefined);
      await holder.end();
    }

    const responses = await answers!;
    for (const res of responses.slice(0, 3)) {
      expect(res.status).toBe(200);
      expect(res.body.ignoredPolicyFailures).toEqual([
        { path: "policy.failures.1.setting", message: "kiosk.statusBar is not a setting of the device's effective policy" },
      ]);
    }
    expect(responses[3]!.body.ignoredPolicyFailures).toEqual(
      failures.map(({ setting }, index) => ({
        path: `policy.failures.${index}.setting`,
        message: `The device has no effective policy: ${setting} is not one of its settings`,
      })),
    );
    const stored = await database.db.device.findMany({ select: { id: true, policyFailures: true, policyAppliedHash: true } });
    for (const device of devices.slice(0, 3)) {
      expect(stored.find((row) => row.id === device.deviceId)).toMatchObject({ policyAppliedHash: "h1", policyFailures: [failures[0], failures[2]] });
    }
    expect(stored.find((row) => row.id === devices[3]!.deviceId)).toMatchObject({ policyAppliedHash: "h1", policyFailures: [] });
    const recorded = await recordHeartbeat(t.deps, devices[0]!.deviceId, heartbeat({ policy: { appliedHash: "h1", failures } }));
    expect(recorded).toMatchObject({ ignoredFailures: [1], hasPolicy: true });
  });

  it("writes each heartbeat alone when batching is off (HEARTBEAT_BATCH_WAIT_MS=0)", async () => {
    t = createTestApp(database.db, { env: { HEARTBEAT_BATCH_WAIT_MS: "0" } });
    const devices = await enrollMany(t.app, 3);
    await Promise.all(devices.map((device) => recordHeartbeat(t.deps, device.deviceId, heartbeat())));
    expect(await statements(t)).toEqual({ statements: 3, heartbeats: 3 });
    expect(await database.db.telemetryEvent.count()).toBe(3);
  });
});

describeWithPostgres("heartbeat group commit at shutdown", () => {
  let server: RunningServer | undefined;
  afterEach(async () => {
    await server?.close();
    server = undefined;
  });

  it("writes the heartbeats still waiting for their batch before the pool closes", async () => {
    t = createTestApp(database.db);
    const [device] = await enrollMany(t.app, 1);
    server = await startServer(testServerEnv({ DATABASE_URL: database.url, HEARTBEAT_BATCH_MAX: "10", HEARTBEAT_BATCH_WAIT_MS: "1000" }));
    const waiting = recordHeartbeat(server.deps, device!.deviceId, heartbeat({ battery: { level: 42, charging: true } }));
    const closing = server;
    server = undefined;
    await closing.close();
    await expect(waiting).resolves.toMatchObject({ device: { id: device!.deviceId, batteryLevel: 42 } });
    expect(await telemetryOf(device!.deviceId)).toHaveLength(1);
  });
});
