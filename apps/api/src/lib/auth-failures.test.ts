import { randomBytes, randomUUID } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { DEVICE_WS_PROTOCOL } from "@mdm/contracts";
import request from "supertest";
import WebSocket from "ws";
import { dashboardAuthenticator } from "../modules/auth/session";
import { attachRealtime } from "../realtime/attach";
import { type TestDatabase, createTestApp, createTestDatabase, enrollDevice, heartbeatBody, resetTables } from "../test";

// RATE_LIMIT_AUTH_FAILURES_PER_MINUTE: failed device authentications per client IP, on
// /v1/*, the legacy route and WebSocket upgrades. Client addresses come from
// X-Forwarded-For, which the default TRUST_PROXY (loopback) takes from supertest's socket.

const LEGACY_KEY = "legacy-key-0123456789abcdef0123456789abcdef";
const LIMIT = 20;
const env = { RATE_LIMIT_AUTH_FAILURES_PER_MINUTE: String(LIMIT), LEGACY_ENROLLMENT_KEY: LEGACY_KEY };

let database: TestDatabase;
beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(() => database.close());
beforeEach(() => resetTables(database.db));

const octet = () => Math.floor(Math.random() * 250) + 1;
// What a client claims, then what the trusted proxy saw: only the last one counts.
const randomIp = () => `198.51.100.${octet()}, 10.${octet()}.${octet()}.${octet()}`;
const randomDeviceToken = () => `${randomUUID()}.${randomBytes(32).toString("base64url")}`;

describe("failed authentications per client IP", () => {
  it("answer 429 with Retry-After past the budget: random device and enrollment tokens", async () => {
    const { app } = createTestApp(database.db, { env });
    const ip = randomIp();
    const statuses: number[] = [];
    for (let i = 0; i < 15; i++) {
      statuses.push(
        (await request(app).post("/v1/heartbeat").set("X-Forwarded-For", ip).auth(randomDeviceToken(), { type: "bearer" }).send(heartbeatBody())).status,
      );
      statuses.push((await request(app).post("/v1/register").set("X-Forwarded-For", ip).send({ enrollmentToken: randomDeviceToken(), device: {} })).status);
    }
    expect(statuses.slice(0, LIMIT).every((status) => status === 401)).toBe(true);
    expect(statuses.slice(LIMIT).every((status) => status === 429)).toBe(true);
    const refused = await request(app).post("/v1/heartbeat").set("X-Forwarded-For", ip).auth(randomDeviceToken(), { type: "bearer" }).send(heartbeatBody());
    expect(refused.status).toBe(429);
    expect(refused.body.error.code).toBe("rate_limited");
    expect(Number(refused.headers["retry-after"])).toBeGreaterThan(0);
  });

  it("never block a valid device behind the same address, nor another address", async () => {
    const { app } = createTestApp(database.db, { env });
    const device = await enrollDevice(app);
    const ip = randomIp();
    for (let i = 0; i <= LIMIT; i++)
      await request(app).post("/v1/heartbeat").set("X-Forwarded-For", ip).auth(randomDeviceToken(), { type: "bearer" }).send(heartbeatBody());
    expect(
      (await request(app).post("/v1/heartbeat").set("X-Forwarded-For", ip).auth(randomDeviceToken(), { type: "bearer" }).send(heartbeatBody())).status,
    ).toBe(429);

    const valid = await request(app).post("/v1/heartbeat").set("X-Forwarded-For", ip).auth(device.deviceToken, { type: "bearer" }).send(heartbeatBody());
    expect(valid.status).toBe(200);
    const neighbour = await request(app)
      .post("/v1/heartbeat")
      .set("X-Forwarded-For", randomIp())
      .auth(randomDeviceToken(), { type: "bearer" })
      .send(heartbeatBody());
    expect(neighbour.status).toBe(401);
  });

  it("count a wrong legacy key", async () => {
    const { app } = createTestApp(database.db, { env });
    const ip = randomIp();
    const statuses: number[] = [];
    for (let i = 0; i < LIMIT + 3; i++) {
      statuses.push(
        (await request(app).post("/api/devices/heartbeat").set("X-Forwarded-For", ip).set("X-Enrollment-Key", `wrong-${i}`).send({ deviceId: "legacy-1" }))
          .status,
      );
    }
    expect(statuses.filter((status) => status === 401)).toHaveLength(LIMIT);
    expect(statuses.slice(LIMIT)).toEqual([429, 429, 429]);
  });

  it("count failed WebSocket upgrades, refused with 429 before any socket", async () => {
    const t = createTestApp(database.db, { env });
    const server = http.createServer(t.app);
    const realtime = attachRealtime(server, t.deps, dashboardAuthenticator(t.deps));
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const url = `ws://127.0.0.1:${(server.address() as AddressInfo).port}/ws/devices`;
    const upgrade = (token: string) =>
      new Promise<number>((resolve) => {
        const socket = new WebSocket(url, [DEVICE_WS_PROTOCOL], { headers: { Authorization: `Bearer ${token}` } });
        socket.on("unexpected-response", (_req, res) => resolve(res.statusCode ?? 0));
        socket.on("open", () => {
          socket.close();
          resolve(101);
        });
        socket.on("error", () => undefined);
      });
    try {
      const device = await enrollDevice(t.app);
      const statuses: number[] = [];
      for (let i = 0; i < LIMIT + 2; i++) statuses.push(await upgrade(randomDeviceToken()));
      expect(statuses.slice(0, LIMIT).every((status) => status === 401)).toBe(true);
      expect(statuses.slice(LIMIT)).toEqual([429, 429]);
      // The device that holds a valid token still connects from the same address.
      expect(await upgrade(device.deviceToken)).toBe(101);
    } finally {
      await realtime.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  const withRedis = process.env.REDIS_URL ? it : it.skip;
  withRedis("are counted in Redis, one budget for every instance", async () => {
    const { default: Redis } = await import("ioredis");
    const redis = new Redis(`${process.env.REDIS_URL}/8`);
    try {
      const first = createTestApp(database.db, { env, redis }).app;
      const second = createTestApp(database.db, { env, redis }).app;
      const ip = randomIp();
      const statuses: number[] = [];
      for (let i = 0; i <= LIMIT; i++) {
        const app = i % 2 === 0 ? first : second;
        statuses.push(
          (await request(app).post("/v1/heartbeat").set("X-Forwarded-For", ip).auth(randomDeviceToken(), { type: "bearer" }).send(heartbeatBody())).status,
        );
      }
      expect(statuses.slice(0, LIMIT).every((status) => status === 401)).toBe(true);
      expect(statuses[LIMIT]).toBe(429);
    } finally {
      redis.disconnect();
    }
  });
});
