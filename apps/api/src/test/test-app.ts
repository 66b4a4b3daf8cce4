import { randomUUID } from "node:crypto";
import { type RegisterResponse, signAdminRequest } from "@mdm/contracts";
import type { Express } from "express";
import type Redis from "ioredis";
import request from "supertest";
import { createApp } from "../app";
import { parseEnv } from "../config/env";
import type { Db } from "../db/client";
import type { AppDeps, Clock } from "../deps";
import { createLogger } from "../lib/logger";
import { createMetrics } from "../lib/metrics";
import type { Mailer } from "../mail/mailer";
import { processDueMails } from "../mail/outbox";
import { deliverDueCommands } from "../modules/commands/delivery";
import { dispatchDuePolicies } from "../modules/policies/policy-dispatch";
import { recomputeQueued } from "../modules/policies/policies.service";
import { LocalPushGateway } from "../push/local-push-gateway";
import { type EventBus, LocalEventBus } from "../realtime/event-bus";
import { DashboardWatch } from "../realtime/dashboard-watch";
import type { PushGateway } from "../push/push-gateway";

export const TEST_ADMIN_KEY = "test-admin-key-0123456789abcdef0123456789";
export const TEST_HMAC_SECRET = "test-hmac-secret-0123456789abcdef012345678";
/** The Host test requests are sent (and admin requests signed) for. */
export const TEST_HOST = "api.mdm.test";
export const TEST_JWT_SECRET = "test-jwt-secret-0123456789abcdef0123456789";
export const TEST_COMMAND_MASTER_KEY = "test-command-master-key-0123456789abcdef";

/** The secrets every test instance shares, as the instances of one deployment do. */
export const TEST_SECRETS = {
  ADMIN_KEY: TEST_ADMIN_KEY,
  HMAC_SECRET: TEST_HMAC_SECRET,
  JWT_SECRET: TEST_JWT_SECRET,
  COMMAND_MASTER_KEY: TEST_COMMAND_MASTER_KEY,
};

/**
 * bcrypt's lowest cost, which only NODE_ENV=test accepts: at the default 12, every app
 * created paid a dummy hash (auth.routes.ts) and every sign-in a real one, a third of the
 * auth suites' CPU time. Production defaults to 12.
 */
export const TEST_BCRYPT_COST = "4";

/** A clock tests can move. */
export class TestClock implements Clock {
  private offsetMs = 0;
  now = () => new Date(Date.now() + this.offsetMs);
  advance(seconds: number) {
    this.offsetMs += seconds * 1000;
  }
}

/**
 * What a listening test server runs with: test secrets, loopback on a free port, the
 * pinger and the offline sweep out of the way, and limits no test reaches by accident
 * (the tests of limits lower them again).
 */
export const TEST_SERVER_SETTINGS: Record<string, string> = {
  NODE_ENV: "test",
  PORT: "0",
  HOST: "127.0.0.1",
  ...TEST_SECRETS,
  WS_PING_INTERVAL_SECONDS: "3600",
  OFFLINE_SWEEP_SECONDS: "3600",
  RATE_LIMIT_GENERAL_PER_MINUTE: "100000",
  RATE_LIMIT_ADMIN_PER_MINUTE: "100000",
  RATE_LIMIT_DEVICE_PER_MINUTE: "100000",
  RATE_LIMIT_ENROLLMENT_PER_MINUTE: "100000",
  HTTP_MAX_REQUESTS_PER_CLIENT: "100000",
  ADMISSION_MAX_EVENT_LOOP_LAG_MS: "0",
  BCRYPT_COST: TEST_BCRYPT_COST,
};

export const testServerEnv = (extra: Record<string, string> = {}) => parseEnv({ ...TEST_SERVER_SETTINGS, ...extra });

export type TestApp = {
  app: Express;
  deps: AppDeps;
  push: LocalPushGateway;
  clock: TestClock;
  /** The outbox, oldest first: every mail the app asked for. */
  outbox: () => ReturnType<Db["outboxMail"]["findMany"]>;
  /** Runs the mail worker once (a listening server runs it by itself): attempts every due mail. */
  sendMail: () => Promise<number>;
  /** Runs the delivery worker once (a listening server runs it by itself): attempts every due command. */
  deliver: () => Promise<number>;
  /** Runs the policy worker once (a listening server runs it by itself): FCM wake-ups and required app installs after policy changes. */
  dispatchPolicies: () => Promise<number>;
  /** Runs the recompute worker once (a listening server runs it by itself): every queued effective-policy recompute. */
  recomputePolicies: () => Promise<number>;
};

export function createTestApp(
  db: Db,
  options: { env?: Record<string, string>; push?: PushGateway; bus?: EventBus; redis?: Redis; mailer?: Mailer } = {},
): TestApp {
  const env = parseEnv({
    NODE_ENV: "test",
    ...TEST_SECRETS,
    // Tests send many requests from one address; the rate-limit tests lower these again.
    RATE_LIMIT_GENERAL_PER_MINUTE: "100000",
    RATE_LIMIT_ADMIN_PER_MINUTE: "100000",
    RATE_LIMIT_DEVICE_PER_MINUTE: "100000",
    RATE_LIMIT_ENROLLMENT_PER_MINUTE: "100000",
    HTTP_MAX_REQUESTS_PER_CLIENT: "100000",
    // A busy test machine lags: shedding on event-loop lag is the fault runs' to test.
    ADMISSION_MAX_EVENT_LOOP_LAG_MS: "0",
    // The test-only bcrypt cost is for servers no other machine can reach.
    HOST: "127.0.0.1",
    BCRYPT_COST: TEST_BCRYPT_COST,
    ...options.env,
  });
  const push = new LocalPushGateway({ actAsFcm: true });
  const clock = new TestClock();
  const bus = options.bus ?? new LocalEventBus();
  const deps: AppDeps = {
    env,
    db,
    push: options.push ?? push,
    logger: createLogger("error", { silent: true }),
    metrics: createMetrics(),
    clock,
    mailer: options.mailer,
    bus,
    dashboards: new DashboardWatch(bus),
    redis: options.redis,
    instanceId: randomUUID(),
  };
  return {
    app: createApp(deps),
    deps,
    push,
    clock,
    deliver: () => deliverDueCommands(deps),
    dispatchPolicies: () => dispatchDuePolicies(deps),
    recomputePolicies: () => recomputeQueued(deps),
    outbox: () => db.outboxMail.findMany({ orderBy: { id: "asc" } }),
    sendMail: () => processDueMails(deps),
  };
}

/** Sends a correctly signed admin request; the body is sent byte for byte as signed. */
export async function adminRequest(app: Express, method: "GET" | "POST" | "PATCH" | "DELETE", pathWithQuery: string, body?: unknown) {
  const raw = body === undefined ? "" : JSON.stringify(body);
  const headers = await signAdminRequest({ adminKey: TEST_ADMIN_KEY, hmacSecret: TEST_HMAC_SECRET, method, host: TEST_HOST, pathWithQuery, body: raw });
  const call = request(app)[method.toLowerCase() as "get" | "post" | "patch" | "delete"](pathWithQuery).set(headers).set("Host", TEST_HOST);
  return body === undefined ? call : call.set("Content-Type", "application/json").send(raw);
}

export async function createEnrollmentToken(app: Express, body: Record<string, unknown> = {}): Promise<string> {
  const res = await adminRequest(app, "POST", "/admin/enrollment-tokens", { maxUses: 100, ...body });
  if (res.status !== 201) throw new Error(`enrollment token: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body.token;
}

export async function enrollDevice(app: Express, device: Record<string, unknown> = {}): Promise<RegisterResponse> {
  const enrollmentToken = await createEnrollmentToken(app);
  const res = await request(app)
    .post("/v1/register")
    .send({ enrollmentToken, device: { model: "Pixel 8", osVersion: "14", ...device } });
  if (res.status !== 201) throw new Error(`register: ${res.status} ${JSON.stringify(res.body)}`);
  return res.body;
}

export function heartbeatBody(overrides: Record<string, unknown> = {}) {
  return {
    deviceTime: new Date().toISOString(),
    battery: { level: 81, charging: false },
    memory: { total: 4_000_000_000, available: 1_500_000_000 },
    storage: { total: 64_000_000_000, available: 20_000_000_000 },
    network: { type: "wifi", signal: -55, ip: "10.0.0.12" },
    apps: [{ packageName: "com.example.kiosk", versionName: "2.1.0", versionCode: 210, running: true, foreground: true }],
    uptimeSeconds: 3600,
    ...overrides,
  };
}
