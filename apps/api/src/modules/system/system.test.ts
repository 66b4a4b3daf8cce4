import request from "supertest";
import { createDb, poolOf } from "../../db/client";
import { type TestDatabase, createTestApp, createTestDatabase, enrollDevice, heartbeatBody, resetTables } from "../../test";

let database: TestDatabase;

beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(() => database.close());
beforeEach(() => resetTables(database.db));

it("GET /api/health answers 200 when the database answers", async () => {
  const { app } = createTestApp(database.db);
  const res = await request(app).get("/api/health");
  expect(res.status).toBe(200);
  expect(res.body).toEqual({ status: "ok", database: "ok", uptimeSeconds: expect.any(Number) });
});

it("GET /api/health answers 503 when the database is down", async () => {
  // Port 9 (discard) has nothing listening: every connection is refused.
  const unreachable = createDb("postgresql://postgres@127.0.0.1:9/none?connect_timeout=2");
  const { app } = createTestApp(unreachable);
  const res = await request(app).get("/api/health");
  expect(res.status).toBe(503);
  expect(res.body).toMatchObject({ status: "unavailable", database: "unreachable" });
  await unreachable.$disconnect();
});

it("GET /api/health probes the database once for concurrent checks: a flood of them (never shed) cannot fill the pool's queue and shed every device", async () => {
  const { app } = createTestApp(database.db);
  const pool = poolOf(database.db);
  const held = await Promise.all(Array.from({ length: pool.options.max }, () => pool.connect()));
  const checks = Array.from({ length: 50 }, () =>
    request(app)
      .get("/api/health")
      .then((res) => res),
  );
  // Every check has reached the probe once one query waits and the count holds still.
  for (let i = 0; i < 100 && pool.waitingCount === 0; i++) await new Promise((resolve) => setTimeout(resolve, 20));
  await new Promise((resolve) => setTimeout(resolve, 200));
  expect(pool.waitingCount).toBe(1);
  for (const client of held) client.release();
  const answers = await Promise.all(checks);
  expect(answers.map((res) => res.status)).toEqual(Array(50).fill(200));
  expect(answers.every((res) => res.body.database === "ok")).toBe(true);
  // The next check probes again (the shared answer is not cached).
  const heldAgain = await Promise.all(Array.from({ length: pool.options.max }, () => pool.connect()));
  const again = request(app)
    .get("/api/health")
    .then((res) => res);
  for (let i = 0; i < 100 && pool.waitingCount === 0; i++) await new Promise((resolve) => setTimeout(resolve, 20));
  expect(pool.waitingCount).toBe(1);
  for (const client of heldAgain) client.release();
  expect((await again).status).toBe(200);
});

it("GET /api/metrics counts registrations, heartbeats and request latency in Prometheus format", async () => {
  const { app } = createTestApp(database.db);
  const device = await enrollDevice(app);
  await request(app).post("/v1/heartbeat").auth(device.deviceToken, { type: "bearer" }).send(heartbeatBody());
  const res = await request(app).get("/api/metrics");
  expect(res.status).toBe(200);
  expect(res.headers["content-type"]).toMatch(/^text\/plain/);
  expect(res.text).toMatch(/^mdm_register_total\{outcome="enrolled"\} 1$/m);
  expect(res.text).toMatch(/^mdm_heartbeat_total\{source="v1"\} 1$/m);
  expect(res.text).toMatch(/^mdm_http_request_duration_seconds_count\{method="POST",route="\/v1\/heartbeat",status="200"\} 1$/m);
  expect(res.text).toContain("# TYPE mdm_command_send_total counter");
  expect(res.text).toContain("# TYPE mdm_action_result_total counter");
});

it("echoes a sane X-Request-Id and replaces an unsafe one", async () => {
  const { app } = createTestApp(database.db);
  const kept = await request(app).get("/api/health").set("X-Request-Id", "client-req-12345");
  expect(kept.headers["x-request-id"]).toBe("client-req-12345");
  const replaced = await request(app).get("/nope").set("X-Request-Id", "bad id\twith spaces");
  expect(replaced.headers["x-request-id"]).toMatch(/^[0-9a-f-]{36}$/);
  expect(replaced.body.error.requestId).toBe(replaced.headers["x-request-id"]);
});

it("limits unauthenticated routes per IP with 429 and Retry-After", async () => {
  const { app } = createTestApp(database.db, { env: { RATE_LIMIT_GENERAL_PER_MINUTE: "2" } });
  const statuses = [];
  for (let i = 0; i < 3; i++) statuses.push((await request(app).get("/api/openapi.json")).status);
  expect(statuses).toEqual([200, 200, 429]);
  const limited = await request(app).get("/auth/setup");
  expect(limited.status).toBe(429);
  expect(limited.body.error.code).toBe("rate_limited");
  expect(Number(limited.headers["retry-after"])).toBeGreaterThan(0);
});

it("never rate-limits health, metrics or logout, even after a burst from the same address", async () => {
  const { app } = createTestApp(database.db, { env: { RATE_LIMIT_GENERAL_PER_MINUTE: "2" } });
  for (let i = 0; i < 3; i++) await request(app).get("/api/openapi.json");
  expect((await request(app).get("/api/openapi.json")).status).toBe(429);
  const statuses = [];
  for (let i = 0; i < 5; i++) {
    statuses.push(
      (await request(app).get("/api/health")).status,
      (await request(app).get("/api/metrics")).status,
      (await request(app).post("/auth/logout")).status,
    );
  }
  expect(new Set(statuses)).toEqual(new Set([200, 204]));
});

describe("GET /api/metrics", () => {
  it("answers a direct call from this host when METRICS_TOKEN is unset", async () => {
    const { app } = createTestApp(database.db);
    expect((await request(app).get("/api/metrics")).status).toBe(200);
  });

  it.each([
    ["X-Forwarded-For", "203.0.113.9"],
    // Even one claiming loopback: the dashboard's proxy passes a client's own header on.
    ["X-Forwarded-For", "127.0.0.1"],
    ["Forwarded", "for=203.0.113.9"],
    ["X-Real-IP", "203.0.113.9"],
  ])("refuses with 403 a call relayed by a proxy (%s: %s) when METRICS_TOKEN is unset", async (header, value) => {
    const { app } = createTestApp(database.db);
    const res = await request(app).get("/api/metrics").set(header, value);
    expect(res.status).toBe(403);
    expect(res.body.error.code).toBe("forbidden");
    expect(res.text).not.toContain("mdm_");
  });

  it("refuses a local call under a Host that is not this host's (a page rebound to 127.0.0.1)", async () => {
    const { app } = createTestApp(database.db);
    expect((await request(app).get("/api/metrics").set("Host", "attacker.example")).status).toBe(403);
    expect((await request(app).get("/api/metrics").set("Host", "[::1]:8000")).status).toBe(200);
  });

  it("with METRICS_TOKEN set, requires it from every caller, this host included", async () => {
    const token = "m".repeat(40);
    const { app } = createTestApp(database.db, { env: { METRICS_TOKEN: token } });
    const missing = await request(app).get("/api/metrics");
    expect(missing.status).toBe(401);
    expect(missing.headers["www-authenticate"]).toBe("Bearer");
    expect((await request(app).get("/api/metrics").auth("m".repeat(39), { type: "bearer" })).status).toBe(401);
    expect((await request(app).get("/api/metrics").auth(`${token}x`, { type: "bearer" })).status).toBe(401);
    const scraped = await request(app).get("/api/metrics").auth(token, { type: "bearer" }).set("X-Forwarded-For", "203.0.113.9");
    expect(scraped.status).toBe(200);
    expect(scraped.text).toContain("# TYPE mdm_command_send_total counter");
  });
});

describe("rate limits across instances", () => {
  const redisUrl = process.env.REDIS_URL;
  const withRedis = redisUrl ? it : it.skip;

  withRedis("count against one budget when the instances share Redis", async () => {
    const { default: Redis } = await import("ioredis");
    // A database of its own, emptied first: counters outlive a test run for their window.
    const redis = new Redis(`${redisUrl}/7`);
    await redis.flushdb();
    try {
      const env = { RATE_LIMIT_GENERAL_PER_MINUTE: "3" };
      const first = createTestApp(database.db, { env, redis }).app;
      const second = createTestApp(database.db, { env, redis }).app;
      const statuses = [];
      for (const app of [first, second, first, second]) statuses.push((await request(app).get("/api/openapi.json")).status);
      expect(statuses).toEqual([200, 200, 200, 429]);
      expect(await redis.keys("mdm:rate:public:*")).toHaveLength(1);
    } finally {
      redis.disconnect();
    }
  });
});
