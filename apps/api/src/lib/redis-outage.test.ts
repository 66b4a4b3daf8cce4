import { execFileSync } from "node:child_process";
import net from "node:net";
import { AdminClient, SimulatedDevice } from "@mdm/simulator";
import { type PrivateRedis, startPrivateRedis } from "../faults/private-services";
import { type RunningServer, startServer } from "../server";
import { TEST_ADMIN_KEY, TEST_HMAC_SECRET, type TestDatabase, createTestDatabase, describeWithPostgres, heartbeatBody, testServerEnv } from "../test";
import { TEST_PASSWORD, createUser } from "../test/sessions";

// The shared limit counters' Redis (a private redis-server of this test's own: the shared
// one must never be stopped) dies under a running API: every limit lets requests through
// uncounted and says so, instead of failing them or making them wait for Redis.

const redisServerInstalled = (() => {
  try {
    execFileSync("redis-server", ["--version"], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
})();
const suite = redisServerInstalled ? describeWithPostgres : describe.skip;

async function freePort(): Promise<number> {
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const { port } = probe.address() as net.AddressInfo;
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

/** `mdm_rate_limit_uncounted_total` per limit, from the instance's own metrics endpoint. */
async function uncountedByLimit(url: string): Promise<Record<string, number>> {
  const text = await (await fetch(`${url}/api/metrics`)).text();
  return Object.fromEntries([...text.matchAll(/^mdm_rate_limit_uncounted_total\{limiter="([^"]+)"\} (\d+)/gm)].map((match) => [match[1]!, Number(match[2])]));
}

suite("a Redis outage", () => {
  let database: TestDatabase;
  let redis: PrivateRedis;
  let server: RunningServer;

  beforeAll(async () => {
    database = await createTestDatabase();
    redis = await startPrivateRedis(await freePort());
    server = await startServer(testServerEnv({ DATABASE_URL: database.url, REDIS_URL: redis.url }));
  });
  afterAll(async () => {
    await server?.close();
    await redis?.close();
    await database.close();
  });

  it("lets sign-in, device and admin requests through uncounted (200/401, never 500), reports it, and counts again once Redis is back", async () => {
    const user = await createUser(server.deps.db, { role: "admin" });
    const admin = new AdminClient(server.url, { adminKey: TEST_ADMIN_KEY, hmacSecret: TEST_HMAC_SECRET });
    const { token } = await admin.createEnrollmentToken({ maxUses: 10 });
    const device = await SimulatedDevice.enroll(server.url, token);
    const signIn = (password: string) =>
      fetch(`${server.url}/auth/login`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ email: user.email, password }),
      });
    expect((await signIn(TEST_PASSWORD)).status).toBe(200);
    expect(await uncountedByLimit(server.url)).toEqual({});

    await redis.stop();

    expect((await signIn("not the password")).status).toBe(401);
    expect((await signIn(TEST_PASSWORD)).status).toBe(200);
    const heartbeat = await fetch(`${server.url}/v1/heartbeat`, {
      method: "POST",
      headers: { authorization: `Bearer ${device.registration.deviceToken}`, "content-type": "application/json" },
      body: JSON.stringify(heartbeatBody()),
    });
    expect(heartbeat.status).toBe(200);
    const badToken = await fetch(`${server.url}/v1/heartbeat`, {
      method: "POST",
      headers: { authorization: "Bearer not-a-device-token", "content-type": "application/json" },
      body: JSON.stringify(heartbeatBody()),
    });
    expect(badToken.status).toBe(401);
    expect((await SimulatedDevice.enroll(server.url, token)).deviceId).toEqual(expect.any(String));
    const reset = await fetch(`${server.url}/auth/password-reset`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ email: user.email }),
    });
    expect(reset.status).toBe(202);
    expect((await admin.getDevice(device.deviceId)).id).toBe(device.deviceId);

    // Each limit on the way said it let the request through uncounted.
    expect(await uncountedByLimit(server.url)).toEqual(
      expect.objectContaining({
        public: expect.any(Number),
        login: expect.any(Number),
        "login-account-address": expect.any(Number),
        "login-account": expect.any(Number),
        device: expect.any(Number),
        "auth-failures": expect.any(Number),
        "password-reset": expect.any(Number),
        admin: expect.any(Number),
      }),
    );

    // Back: the limits count in Redis again (and stop reporting requests uncounted).
    await redis.start();
    const countedAgain = async () => {
      const before = await uncountedByLimit(server.url);
      const status = (await fetch(`${server.url}/api/openapi.json`)).status;
      const after = await uncountedByLimit(server.url);
      return status === 200 && after.public === before.public;
    };
    const deadline = Date.now() + 20_000;
    while (!(await countedAgain())) {
      expect(Date.now()).toBeLessThan(deadline);
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    const keys = execFileSync("redis-cli", ["-u", redis.url, "--scan", "--pattern", "mdm:rate:public:*"]).toString().trim();
    expect(keys).not.toBe("");
  }, 60_000);
});
