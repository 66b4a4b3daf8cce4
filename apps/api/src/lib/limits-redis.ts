import Redis from "ioredis";
import type { Logger } from "./logger";
import type { Metrics } from "./metrics";

// A reply from Redis on the same network takes well under a millisecond; one that takes
// this long comes from a connection that is gone without having been closed.
const COMMAND_TIMEOUT_MS = 500;

const outageReporters = new WeakMap<Redis, (limiter: string) => void>();

/**
 * The Redis connection of the shared limit counters (rate limits, failure budgets,
 * sign-in backoff). While Redis is unreachable its commands fail at once instead of
 * waiting in a queue for reconnections (no offline queue, no retries, a short timeout),
 * and every limit lets requests through uncounted: an outage of the counters must cost
 * neither errors nor seconds per request. ioredis keeps reconnecting meanwhile. The
 * outage is logged once when it starts and once when it ends.
 */
export function connectLimitsRedis(url: string, logger: Logger, metrics: Metrics): Redis {
  const redis = new Redis(url, { enableOfflineQueue: false, maxRetriesPerRequest: 0, commandTimeout: COMMAND_TIMEOUT_MS });
  let down = false;
  const wentDown = (reason: string) => {
    if (down) return;
    down = true;
    logger.warn("rate-limit store (redis) unreachable: limits let requests through uncounted until it is back", { reason });
  };
  // Also keeps ioredis from printing "Unhandled error event" for every reconnection attempt.
  redis.on("error", (error: Error) => wentDown(error.message));
  redis.on("ready", () => {
    if (!down) return;
    down = false;
    logger.info("rate-limit store (redis) reachable again: limits count again");
  });
  outageReporters.set(redis, (limiter) => {
    metrics.limitUncounted.inc({ limiter });
    wentDown(`the ${limiter} limit could not count`);
  });
  return redis;
}

/**
 * A limit let a request through without counting it, because Redis did not answer: counted
 * in `mdm_rate_limit_uncounted_total`, and logged once per outage. (A connection made
 * elsewhere than connectLimitsRedis, as in tests, reports nowhere.)
 */
export function reportUncounted(redis: Redis, limiter: string): void {
  outageReporters.get(redis)?.(limiter);
}
