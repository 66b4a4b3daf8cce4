import type Redis from "ioredis";
import type { Env } from "./config/env";
import type { Db } from "./db/client";
import type { Logger } from "./lib/logger";
import type { Metrics } from "./lib/metrics";
import type { Mailer } from "./mail/mailer";
import type { PushGateway } from "./push/push-gateway";
import type { DashboardWatch } from "./realtime/dashboard-watch";
import type { EventBus } from "./realtime/event-bus";

export type Clock = { now: () => Date };
export const systemClock: Clock = { now: () => new Date() };

/** Everything the app needs from the outside, so tests can build it with their own parts. */
export type AppDeps = {
  env: Env;
  db: Db;
  push: PushGateway;
  /** The mail provider; none configured: mail is only recorded in the outbox (see mail/outbox.ts). */
  mailer?: Mailer;
  logger: Logger;
  metrics: Metrics;
  clock: Clock;
  /** Carries fleet events between API instances (in-process, or Redis when REDIS_URL is set). */
  bus: EventBus;
  /** Whether a dashboard is open on some instance: a heartbeat's device state goes on the bus only then. */
  dashboards: DashboardWatch;
  /** Shared rate-limit counters across instances, when REDIS_URL is set. */
  redis?: Redis;
  /** Identifies this process among API instances, e.g. as the holder of a device's socket. */
  instanceId: string;
};
