import http from "node:http";
import type { AddressInfo } from "node:net";
import express from "express";
import request from "supertest";
import { parseEnv } from "../config/env";
import { poolOf } from "../db/client";
import { type TestDatabase, createTestApp, createTestDatabase, describeWithPostgres, enrollDevice, heartbeatBody } from "../test";
import { createAdmission } from "./admission";
import { errorHandler } from "./error-handler";
import { createLogger } from "./logger";

describe("admission control", () => {
  let server: http.Server;
  let base: string;
  let release: () => void = () => undefined;
  let gate = Promise.resolve();

  beforeAll(async () => {
    const env = parseEnv({ NODE_ENV: "test", ADMISSION_MAX_IN_FLIGHT: "3", ADMISSION_MAX_EVENT_LOOP_LAG_MS: "0", ADMISSION_RETRY_AFTER_SECONDS: "4" });
    const app = express();
    app.use(createAdmission(env).middleware);
    app.get("/api/health", (_req, res) => void res.json({ status: "ok" }));
    app.get("/slow", async (_req, res) => {
      await gate;
      res.json({ done: true });
    });
    app.use(errorHandler(createLogger("error", { silent: true })));
    server = http.createServer(app);
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it("past the in-flight bound answers 503 service_unavailable with Retry-After at once, keeps health, and serves again once work drains", async () => {
    gate = new Promise((resolve) => (release = resolve));
    const held = Array.from({ length: 3 }, () => fetch(`${base}/slow`));
    // Wait until the three are in progress.
    for (let i = 0; i < 100; i++) {
      const probe = await fetch(`${base}/slow`);
      if (probe.status === 503) {
        expect(probe.headers.get("retry-after")).toBe("4");
        expect(((await probe.json()) as { error: { code: string } }).error.code).toBe("service_unavailable");
        break;
      }
      expect(i).toBeLessThan(99);
    }
    expect((await fetch(`${base}/api/health`)).status).toBe(200);
    release();
    for (const res of await Promise.all(held)) expect(res.status).toBe(200);
    const after = await Promise.all(Array.from({ length: 3 }, () => fetch(`${base}/slow`)));
    expect(after.map((res) => res.status)).toEqual([200, 200, 200]);
  });
});

describe("the cap of requests in progress per address", () => {
  it("answers 429 past it, except to APK downloads, which a site's devices make at once from one address", async () => {
    const env = parseEnv({ NODE_ENV: "test", HTTP_MAX_REQUESTS_PER_CLIENT: "2", ADMISSION_MAX_EVENT_LOOP_LAG_MS: "0" });
    let release: () => void = () => undefined;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const app = express();
    app.use(createAdmission(env).perClient);
    for (const route of ["/v1/app-files/:sha256", "/slow"]) {
      app.get(route, async (_req, res) => {
        await gate;
        res.json({ done: true });
      });
    }
    app.use(errorHandler(createLogger("error", { silent: true })));
    const server = http.createServer(app);
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const downloads = Array.from({ length: 5 }, (_, i) => fetch(`${base}/v1/app-files/${i}`));
      const others = Array.from({ length: 3 }, () => fetch(`${base}/slow`));
      // The third `/slow` is refused while the first two wait; every download waits its turn.
      const refused = await Promise.race(others);
      expect(refused.status).toBe(429);
      release();
      expect((await Promise.all(downloads)).map((res) => res.status)).toEqual([200, 200, 200, 200, 200]);
      expect((await Promise.all(others)).map((res) => res.status).sort()).toEqual([200, 200, 429]);
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

describeWithPostgres("the bound on queries waiting for a database connection", () => {
  let database: TestDatabase;
  beforeAll(async () => {
    database = await createTestDatabase();
  });
  afterAll(() => database?.close());

  // Device sockets put work on the pool that ADMISSION_MAX_IN_FLIGHT never counts: without
  // this bound, a fleet's heartbeat frames queued hundreds of queries ahead of the admitted
  // requests, which waited past their clients' timeouts instead of being shed.
  it("past it, a heartbeat answers 503 with Retry-After before any work, and is served once the queue drains", async () => {
    const t = createTestApp(database.db, { env: { ADMISSION_MAX_DATABASE_QUEUE: "3" } });
    const device = await enrollDevice(t.app);
    // Set to 0, the bound is off: the same heartbeat waits its turn instead.
    const unbounded = createTestApp(database.db, { env: { ADMISSION_MAX_DATABASE_QUEUE: "0" } });
    const heartbeat = (app = t.app) => request(app).post("/v1/heartbeat").set("Authorization", `Bearer ${device.deviceToken}`).send(heartbeatBody());
    const pool = poolOf(database.db);
    const held = await Promise.all(Array.from({ length: pool.options.max }, () => pool.connect()));
    const waiting = Array.from({ length: 3 }, () => pool.query("SELECT 1"));
    let waited: Promise<request.Response> | undefined;
    try {
      expect(pool.waitingCount).toBe(3);

      const shed = await heartbeat().timeout(5000);
      expect(shed.status).toBe(503);
      expect(shed.headers["retry-after"]).toBe("2");
      expect(shed.body.error).toMatchObject({ code: "service_unavailable", message: expect.stringContaining("waiting for a database connection") });
      expect(await t.deps.metrics.shed.get()).toMatchObject({ values: [{ labels: { reason: "database_queue" }, value: 1 }] });
      waited = heartbeat(unbounded.app).then((res) => res);
    } finally {
      for (const client of held) client.release();
      await Promise.all(waiting);
    }
    expect((await waited)?.status).toBe(200);
    expect((await heartbeat()).status).toBe(200);
    expect(await database.db.telemetryEvent.count({ where: { deviceId: device.deviceId } })).toBe(2);
  });
});
