import { randomUUID } from "node:crypto";
import type { RegisterResponse } from "@mdm/contracts";
import { AdminClient, SimulatedDevice } from "@mdm/simulator";
import { Client } from "pg";
import request from "supertest";
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
} from "../../test";
import { type ChildApi, startChildApi } from "../../test/child-api";
import { deviceTokenLookupsOf } from "./devices.service";

// The device-token lookups this instance's cache cannot answer are batched as heartbeats
// are (HEARTBEAT_BATCH_*): the requests arriving together share one SELECT ... = ANY($1).

let database: TestDatabase;
let t: TestApp;

beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(() => database.close());
beforeEach(async () => {
  await resetTables(database.db);
});

/** An app whose batches go when `max` lookups (or heartbeats) wait, or after a second: a test's concurrent requests share statements. */
const batchingApp = (max: number, extra: Record<string, string> = {}) =>
  createTestApp(database.db, { env: { HEARTBEAT_BATCH_MAX: String(max), HEARTBEAT_BATCH_WAIT_MS: "1000", ...extra } });

async function enrollMany(app: TestApp["app"], count: number): Promise<RegisterResponse[]> {
  const enrollmentToken = await createEnrollmentToken(app, { maxUses: count });
  const devices: RegisterResponse[] = [];
  for (let i = 0; i < count; i++) {
    const res = await request(app)
      .post("/v1/register")
      .send({ enrollmentToken, device: { model: `Lookup ${i}` } });
    if (res.status !== 201) throw new Error(`register: ${res.status} ${JSON.stringify(res.body)}`);
    devices.push(res.body);
  }
  return devices;
}

const heartbeatWith = (app: TestApp["app"], deviceToken: string) =>
  request(app).post("/v1/heartbeat").set("Authorization", `Bearer ${deviceToken}`).send(heartbeatBody());

/** What the lookup batch-size histogram counted: statements run and the tokens they looked up. */
async function lookups(app: TestApp): Promise<{ statements: number; tokens: number }> {
  const { values } = await app.deps.metrics.deviceTokenLookupBatchSize.get();
  const value = (name: string) => values.find((entry) => entry.metricName === name)?.value ?? 0;
  return { statements: value("mdm_device_token_lookup_batch_size_count"), tokens: value("mdm_device_token_lookup_batch_size_sum") };
}

async function waitFor<T>(read: () => Promise<T | undefined>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    const value = await read();
    if (value !== undefined) return value;
    if (attempt > 300) throw new Error("condition never met");
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** A token for the same device with another secret of the same shape. */
const withWrongSecret = (deviceToken: string) => `${deviceToken.split(".")[0]}.${"x".repeat(43)}`;

describeWithPostgres("device-token lookups", () => {
  it("concurrent heartbeats of devices this instance has not cached share one lookup statement, as PostgreSQL sees it", async () => {
    t = batchingApp(10);
    const devices = await enrollMany(t.app, 10);
    // The table is locked, so the lookups wait inside PostgreSQL, where they can be counted.
    const holder = new Client({ connectionString: database.url });
    await holder.connect();
    let answers: Promise<request.Response[]> | undefined;
    try {
      await holder.query("BEGIN");
      await holder.query(`LOCK TABLE "Device" IN ACCESS EXCLUSIVE MODE`);
      answers = Promise.all(devices.map((device) => heartbeatWith(t.app, device.deviceToken)));
      const blocked = await waitFor(async () => {
        const counted = await lookups(t);
        const rows = await database.db.$queryRaw<Array<{ query: string }>>`
          SELECT query FROM pg_stat_activity
          WHERE datname = current_database() AND wait_event_type = 'Lock' AND query LIKE '%"tokenHash"%= ANY(%'`;
        return counted.tokens === 10 && rows.length === counted.statements ? rows : undefined;
      });
      expect(blocked).toHaveLength(1);
      await holder.query("COMMIT");
    } finally {
      await holder.query("ROLLBACK").catch(() => undefined);
      await holder.end();
    }
    for (const res of await answers!) expect(res.status).toBe(200);
    expect(await lookups(t)).toEqual({ statements: 1, tokens: 10 });
    expect(await database.db.telemetryEvent.count()).toBe(10);

    // Verified tokens are cached: the next heartbeats look nothing up.
    for (const res of await Promise.all(devices.map((device) => heartbeatWith(t.app, device.deviceToken)))) expect(res.status).toBe(200);
    expect(await lookups(t)).toEqual({ statements: 1, tokens: 10 });
  });

  it("refuses a wrong secret, an unknown device and a retired device looked up in the same statement as valid tokens, which are served", async () => {
    t = batchingApp(6);
    const [first, second, victim, retired] = await enrollMany(t.app, 4);
    await adminRequest(t.app, "POST", `/admin/devices/${retired!.deviceId}/retire`);
    const tokens = [
      first!.deviceToken,
      withWrongSecret(victim!.deviceToken),
      second!.deviceToken,
      `${randomUUID()}.${"y".repeat(43)}`,
      retired!.deviceToken,
      // The same device as the wrong secret, with its own: the lookup is shared, the verdicts are not.
      victim!.deviceToken,
    ];
    const answers = await Promise.all(tokens.map((token) => heartbeatWith(t.app, token)));
    expect(answers.map((res) => res.status)).toEqual([200, 401, 200, 401, 401, 200]);
    for (const res of [answers[1]!, answers[3]!, answers[4]!]) expect(res.body.error.code).toBe("unauthorized");
    expect(await lookups(t)).toEqual({ statements: 1, tokens: 6 });
    expect(await database.db.telemetryEvent.count({ where: { deviceId: victim!.deviceId } })).toBe(1);
    expect(await database.db.telemetryEvent.count({ where: { deviceId: retired!.deviceId } })).toBe(0);

    // A wrong secret stays refused when the device's real token is cached.
    expect((await heartbeatWith(t.app, withWrongSecret(first!.deviceToken))).status).toBe(401);
  });

  it("refuses a device right after its retirement: its cached token, and a lookup that was waiting for its batch when it was retired", async () => {
    t = batchingApp(3);
    const [kept, cached, waiting] = await enrollMany(t.app, 3);
    // Two tokens verified together, and cached.
    for (const res of await Promise.all([kept, cached].map((device) => heartbeatWith(t.app, device!.deviceToken)))) expect(res.status).toBe(200);
    expect(await lookups(t)).toEqual({ statements: 1, tokens: 2 });

    expect((await adminRequest(t.app, "POST", `/admin/devices/${cached!.deviceId}/retire`)).status).toBe(200);
    expect((await heartbeatWith(t.app, cached!.deviceToken)).status).toBe(401);
    expect((await heartbeatWith(t.app, kept!.deviceToken)).status).toBe(200);
    expect(await database.db.telemetryEvent.count({ where: { deviceId: cached!.deviceId } })).toBe(1);

    // A token not cached yet: its lookup waits up to a second for company, and the device is retired meanwhile.
    const pending = heartbeatWith(t.app, waiting!.deviceToken).then((res) => res);
    await waitFor(async () => (deviceTokenLookupsOf(t.deps).queued === 1 ? true : undefined));
    expect((await adminRequest(t.app, "POST", `/admin/devices/${waiting!.deviceId}/retire`)).status).toBe(200);
    expect((await pending).status).toBe(401);
    expect(await lookups(t)).toEqual({ statements: 3, tokens: 4 });
    expect(await database.db.telemetryEvent.count({ where: { deviceId: waiting!.deviceId } })).toBe(0);
  });

  it("past HEARTBEAT_QUEUE_MAX lookups waiting answers 503 with Retry-After, counted as shed, and serves again once they are read", async () => {
    t = batchingApp(10, { HEARTBEAT_QUEUE_MAX: "2" });
    const devices = await enrollMany(t.app, 3);
    const answers = await Promise.all(devices.map((device) => heartbeatWith(t.app, device.deviceToken)));
    expect(answers.map((res) => res.status).sort()).toEqual([200, 200, 503]);
    const refused = answers.find((res) => res.status === 503)!;
    expect(refused.body.error).toMatchObject({ code: "service_unavailable", message: expect.stringMatching(/too many device tokens waiting/) });
    expect(refused.headers["retry-after"]).toBe("2");
    expect(await t.deps.metrics.shed.get()).toMatchObject({ values: [{ labels: { reason: "device_token_queue" }, value: 1 }] });
    expect(await lookups(t)).toEqual({ statements: 1, tokens: 2 });

    const again = devices[answers.indexOf(refused)]!;
    expect((await heartbeatWith(t.app, again.deviceToken)).status).toBe(200);
    expect(await database.db.telemetryEvent.count()).toBe(3);
  });

  it("looks each token up alone when batching is off (HEARTBEAT_BATCH_WAIT_MS=0)", async () => {
    t = createTestApp(database.db, { env: { HEARTBEAT_BATCH_WAIT_MS: "0" } });
    const devices = await enrollMany(t.app, 3);
    for (const res of await Promise.all(devices.map((device) => heartbeatWith(t.app, device.deviceToken)))) expect(res.status).toBe(200);
    expect(await lookups(t)).toEqual({ statements: 3, tokens: 3 });
  });
});

// Two API processes sharing one PostgreSQL database and one Redis, as a deployment runs,
// each with its own token cache and batched lookups.
describeWithPostgres("a device secret rotated through another instance", () => {
  const children: ChildApi[] = [];
  const devices: SimulatedDevice[] = [];
  afterAll(async () => {
    await Promise.all(devices.splice(0).map((device) => device.stop()));
    await Promise.all(children.splice(0).map((child) => child.kill()));
  });

  async function heartbeatOver(baseUrl: string, deviceToken: string): Promise<number> {
    const res = await fetch(`${baseUrl}/v1/heartbeat`, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${deviceToken}` },
      body: JSON.stringify(heartbeatBody({ deviceTime: new Date().toISOString() })),
    });
    await res.arrayBuffer();
    return res.status;
  }

  it("is refused by the instance that had the old token cached as soon as the device takes its new one, which works there at once", async () => {
    const env = {
      ...TEST_SERVER_SETTINGS,
      DATABASE_URL: database.url,
      REDIS_URL: process.env.TEST_REDIS_URL || process.env.REDIS_URL || "redis://127.0.0.1:6379",
      HEARTBEAT_BATCH_WAIT_MS: "5",
    };
    const [first, second] = await Promise.all([startChildApi(env), startChildApi(env)]);
    children.push(first!, second!);
    const admin = new AdminClient(first!.url, { adminKey: TEST_ADMIN_KEY, hmacSecret: TEST_HMAC_SECRET });
    const { token } = await admin.createEnrollmentToken({ maxUses: 1 });
    const device = await SimulatedDevice.enroll(first!.url, token, { facts: { model: "Kiosk" } });
    devices.push(device);
    const old = device.registration.deviceToken;

    // The second instance verifies, and so caches, the old token.
    expect(await heartbeatOver(second!.url, old)).toBe(200);
    expect(await heartbeatOver(second!.url, old)).toBe(200);

    await admin.rotateDeviceToken(device.deviceId);
    // Within the grace period the old token still works, on either instance.
    expect(await heartbeatOver(second!.url, old)).toBe(200);
    // The device fetches its rotate_token command from the first instance and takes the new token there.
    await device.heartbeat();
    expect(device.registration.deviceToken).not.toBe(old);
    expect(await heartbeatOver(first!.url, device.registration.deviceToken)).toBe(200);

    expect(await heartbeatOver(second!.url, old)).toBe(401);
    expect(await heartbeatOver(first!.url, old)).toBe(401);
    expect(await heartbeatOver(second!.url, device.registration.deviceToken)).toBe(200);
  });
});
