import type Redis from "ioredis";
import { reportUncounted } from "./limits-redis";

// Counters of failures (failed authentications, failed sign-ins). In Redis when REDIS_URL
// is set, so every API instance counts against one budget; in this process otherwise.
// While Redis does not answer they let every attempt through uncounted (reported once per
// outage), as the rate limits do: an outage of the counters must not fail requests.

const MAX_LOCAL_KEYS = 100_000;

/** Forgets expired entries, and the oldest ones past MAX_LOCAL_KEYS, so memory stays bounded. */
function sweep<T extends { expiresAt: number }>(entries: Map<string, T>, now: number): void {
  if (entries.size < MAX_LOCAL_KEYS) return;
  for (const [key, entry] of entries) if (entry.expiresAt <= now) entries.delete(key);
  for (const key of entries.keys()) {
    if (entries.size < MAX_LOCAL_KEYS) break;
    entries.delete(key);
  }
}

export type WindowCount = { count: number; resetInMs: number };

/** Counts hits per key in fixed windows of `windowMs`. */
export type WindowCounter = { hit: (key: string) => Promise<WindowCount> };

const HIT_SCRIPT = `
local count = redis.call('INCR', KEYS[1])
if count == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
return {count, redis.call('PTTL', KEYS[1])}`;

/** Counts a hit on `key` in Redis (throws if Redis does not answer). */
export async function hitInRedis(redis: Redis, key: string, windowMs: number): Promise<WindowCount> {
  const [count, ttl] = (await redis.eval(HIT_SCRIPT, 1, key, String(windowMs))) as [number, number];
  return { count, resetInMs: ttl > 0 ? ttl : windowMs };
}

export function windowCounter(options: { name: string; windowMs: number; redis?: Redis }): WindowCounter {
  const { name, windowMs, redis } = options;
  if (redis) {
    return {
      hit: async (key) => {
        try {
          return await hitInRedis(redis, `mdm:${name}:${key}`, windowMs);
        } catch {
          reportUncounted(redis, name);
          return { count: 0, resetInMs: windowMs };
        }
      },
    };
  }
  const entries = new Map<string, { count: number; expiresAt: number }>();
  return {
    hit: async (key) => {
      const now = Date.now();
      sweep(entries, now);
      let entry = entries.get(key);
      if (!entry || entry.expiresAt <= now) {
        entry = { count: 0, expiresAt: now + windowMs };
        entries.set(key, entry);
      }
      entry.count += 1;
      return { count: entry.count, resetInMs: entry.expiresAt - now };
    },
  };
}

/**
 * Backoff per account rather than lock-out: the first `freeFailures` failures within
 * `windowMs` cost nothing; from then on every attempt must wait, `baseDelayMs` after the
 * last free failure, doubling per further failure up to `maxDelayMs`. A success, or
 * `windowMs` without a failure, clears it. While backing off, one attempt per delay gets
 * through, however many are sent at once.
 */
export type AttemptBackoff = {
  /** 0 when an attempt may go ahead now, else how long to wait. */
  begin: (key: string) => Promise<number>;
  /** Failures counted under `key` within the window. */
  failures: (key: string) => Promise<number>;
  failed: (key: string) => Promise<void>;
  succeeded: (key: string) => Promise<void>;
};

type BackoffOptions = {
  name: string;
  freeFailures: number;
  windowMs: number;
  baseDelayMs: number;
  maxDelayMs: number;
  redis?: Redis;
  /** Milliseconds since the epoch; the app's clock, so tests can move it. */
  now?: () => number;
};

/** The wait after `failures` failures, once they reach the free ones. */
function delayAfter(options: BackoffOptions, failures: number): number {
  return Math.min(options.maxDelayMs, options.baseDelayMs * 2 ** (failures - options.freeFailures));
}

// KEYS[1] the account; ARGV: now, free failures, base delay, max delay (and the window).
// An attempt while backing off reserves the current delay, so concurrent ones wait for it.
const BEGIN_SCRIPT = `
local state = redis.call('HMGET', KEYS[1], 'failures', 'blockedUntil')
local failures = tonumber(state[1]) or 0
local blockedUntil = tonumber(state[2]) or 0
local now = tonumber(ARGV[1])
if blockedUntil > now then return blockedUntil - now end
local free = tonumber(ARGV[2])
if failures >= free then
  redis.call('HSET', KEYS[1], 'blockedUntil', now + math.min(tonumber(ARGV[4]), tonumber(ARGV[3]) * 2 ^ (failures - free)))
end
return 0`;

const FAILED_SCRIPT = `
local failures = redis.call('HINCRBY', KEYS[1], 'failures', 1)
local free = tonumber(ARGV[2])
if failures >= free then
  redis.call('HSET', KEYS[1], 'blockedUntil', tonumber(ARGV[1]) + math.min(tonumber(ARGV[4]), tonumber(ARGV[3]) * 2 ^ (failures - free)))
end
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return failures`;

export function attemptBackoff(options: BackoffOptions): AttemptBackoff {
  const { redis, name, windowMs } = options;
  const clock = options.now ?? Date.now;
  if (redis) {
    const keyOf = (key: string) => `mdm:${name}:${key}`;
    const args = () => [String(clock()), String(options.freeFailures), String(options.baseDelayMs), String(options.maxDelayMs), String(windowMs)];
    const uncounted = () => reportUncounted(redis, name);
    return {
      begin: async (key) => {
        try {
          return Number(await redis.eval(BEGIN_SCRIPT, 1, keyOf(key), ...args()));
        } catch {
          uncounted();
          return 0;
        }
      },
      failures: async (key) => {
        try {
          return Number((await redis.hget(keyOf(key), "failures")) ?? 0);
        } catch {
          uncounted();
          return 0;
        }
      },
      failed: async (key) => {
        await redis.eval(FAILED_SCRIPT, 1, keyOf(key), ...args()).catch(uncounted);
      },
      succeeded: async (key) => {
        await redis.del(keyOf(key)).catch(uncounted);
      },
    };
  }
  const entries = new Map<string, { failures: number; blockedUntil: number; expiresAt: number }>();
  const live = (key: string, now: number) => {
    const entry = entries.get(key);
    return entry && entry.expiresAt > now ? entry : undefined;
  };
  return {
    begin: async (key) => {
      const now = clock();
      const entry = live(key, now);
      if (!entry) return 0;
      if (entry.blockedUntil > now) return entry.blockedUntil - now;
      if (entry.failures >= options.freeFailures) entry.blockedUntil = now + delayAfter(options, entry.failures);
      return 0;
    },
    failures: async (key) => live(key, clock())?.failures ?? 0,
    failed: async (key) => {
      const now = clock();
      sweep(entries, now);
      const entry = live(key, now) ?? { failures: 0, blockedUntil: 0, expiresAt: 0 };
      entry.failures += 1;
      if (entry.failures >= options.freeFailures) entry.blockedUntil = now + delayAfter(options, entry.failures);
      entry.expiresAt = now + windowMs;
      entries.set(key, entry);
    },
    succeeded: async (key) => {
      entries.delete(key);
    },
  };
}
