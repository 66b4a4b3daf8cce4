import type { Env } from "./config/env";
import type { Db } from "./db/client";
import type { Logger } from "./lib/logger";
import type { Metrics } from "./lib/metrics";
import type { PushGateway } from "./push/push-gateway";

export type Clock = { now: () => Date };
export const systemClock: Clock = { now: () => new Date() };

/** Everything the app needs from the outside, so tests can build it with their own parts. */
export type AppDeps = {
  env: Env;
  db: Db;
  push: PushGateway;
  logger: Logger;
  metrics: Metrics;
  clock: Clock;
};
