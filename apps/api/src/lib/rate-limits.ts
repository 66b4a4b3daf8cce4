import type { Request, RequestHandler, Response } from "express";
import { type ClientRateLimitInfo, MemoryStore, type Options, type Store, rateLimit } from "express-rate-limit";
import type Redis from "ioredis";
import { addressKey } from "./client-ip";
import { hitInRedis } from "./failure-limits";
import { HttpError } from "./http-error";
import { reportUncounted } from "./limits-redis";

type Limiter = {
  /** Names the counter in Redis; unique per limiter. */
  name: string;
  /** With Redis, every API instance counts against the same budget; without, per instance. */
  redis?: Redis;
  perMinute?: number;
  windowMs?: number;
  limit?: number;
  keyGenerator?: (req: Request, res: Response) => string;
  /** Counts in this store (shared with another transport) instead of a store of its own. */
  store?: Store;
};

/** The contract's 429 for a spent budget, with the seconds until the window resets (at least 1). */
export const budgetSpent = (retryAfterSeconds: number) =>
  new HttpError("rate_limited", "Too many requests; retry later", undefined, { "Retry-After": String(Math.max(1, retryAfterSeconds)) });

/** Whole seconds until a window that ends at `resetTime` resets (a whole window when the store gave no time). */
const secondsUntilReset = (resetTime: Date | undefined, windowMs: number) => Math.ceil(((resetTime?.getTime() ?? Date.now() + windowMs) - Date.now()) / 1000);

/** An express-rate-limit limiter whose refusal is the contract's 429 with Retry-After. */
export function limiter(options: Limiter) {
  const windowMs = options.windowMs ?? 60_000;
  return rateLimit({
    windowMs,
    limit: options.limit ?? options.perMinute ?? 60,
    standardHeaders: "draft-7",
    legacyHeaders: false,
    // Redis down: serve without the shared limit rather than fail every request.
    passOnStoreError: true,
    logger: quietAboutOutages,
    // Custom keys count client addresses through addressKey (IPv6 by its /56, as
    // ipKeyGenerator does), which the library's source-text check cannot see.
    ...(options.keyGenerator ? { keyGenerator: options.keyGenerator, validate: { keyGeneratorIpFallback: false } } : {}),
    ...(options.store ? { store: options.store } : options.redis ? { store: redisStore(options.redis, options.name) } : {}),
    handler: (req, _res, next) => {
      const resetTime = (req as Request & { rateLimit?: { resetTime?: Date } }).rateLimit?.resetTime;
      next(budgetSpent(secondsUntilReset(resetTime, windowMs)));
    },
  });
}

/** A store's failure already reported (once per outage) by the store itself. */
class StoreUnreachable extends Error {}

// express-rate-limit logs every failure of its store, so once per request during an outage.
const quietAboutOutages = {
  warn: (error: unknown, message?: string) => console.warn(message ?? "express-rate-limit", error),
  error: (error: unknown, message?: string) => {
    if (!(error instanceof StoreUnreachable)) console.error(message ?? "express-rate-limit", error);
  },
};

/**
 * Counters in Redis, one per key and window, shared by every instance. Each call is a
 * single command that fails at once when Redis is unreachable (see limits-redis.ts):
 * the request then passes uncounted, and the outage is reported once.
 */
class RedisCounterStore implements Store {
  readonly prefix: string;
  private windowMs = 60_000;

  constructor(
    private readonly redis: Redis,
    private readonly name: string,
  ) {
    this.prefix = `mdm:rate:${name}:`;
  }

  init(options: Options): void {
    this.windowMs = options.windowMs;
  }

  async increment(key: string): Promise<ClientRateLimitInfo> {
    try {
      const { count, resetInMs } = await hitInRedis(this.redis, this.prefix + key, this.windowMs);
      return { totalHits: count, resetTime: new Date(Date.now() + resetInMs) };
    } catch (error) {
      reportUncounted(this.redis, this.name);
      throw new StoreUnreachable(error instanceof Error ? error.message : String(error));
    }
  }

  async decrement(key: string): Promise<void> {
    await this.redis.decr(this.prefix + key).catch(() => reportUncounted(this.redis, this.name));
  }

  async resetKey(key: string): Promise<void> {
    await this.redis.del(this.prefix + key).catch(() => reportUncounted(this.redis, this.name));
  }
}

function redisStore(redis: Redis, name: string): RedisCounterStore {
  return new RedisCounterStore(redis, name);
}

/**
 * One budget per key, spent by HTTP requests (through `middleware`) and by any other
 * transport (through `consume`), so a client cannot double its allowance by switching
 * channels: a device's heartbeats over HTTP and over its WebSocket count together.
 */
export type SharedBudget = {
  middleware: RequestHandler;
  consume(key: string): Promise<{ allowed: boolean; retryAfterSeconds: number }>;
};

export function sharedBudget(options: Pick<Limiter, "name" | "redis" | "keyGenerator"> & { perMinute: number }): SharedBudget {
  const windowMs = 60_000;
  const store = options.redis ? redisStore(options.redis, options.name) : new MemoryStore();
  store.init({ windowMs } as Options);
  // Per client address unless the budget is keyed otherwise, as express-rate-limit's default.
  const keyOf = options.keyGenerator ?? ((req: Request) => addressKey(req.ip));
  // As for the other limiters: if the store is unreachable, the request goes through (reported by the store).
  const count = (key: string) => store.increment(key).catch(() => undefined);
  return {
    // What limiter()'s express-rate-limit middleware does (the same store, draft-7 headers,
    // the contract's 429), without its per-request validations and bookkeeping: this guard
    // runs on every heartbeat, where the library's middleware was 3.5% of the API's CPU.
    middleware: (req, res, next) => {
      // Returned, so Express 5 passes anything thrown in here to the error handler.
      return count(keyOf(req, res)).then((counted) => {
        if (!counted) return next();
        const { totalHits, resetTime } = counted;
        if (!res.headersSent) {
          res.setHeader("RateLimit-Policy", `${options.perMinute};w=${windowMs / 1000}`);
          res.setHeader(
            "RateLimit",
            `limit=${options.perMinute}, remaining=${Math.max(0, options.perMinute - totalHits)}, reset=${Math.max(0, secondsUntilReset(resetTime, windowMs))}`,
          );
        }
        next(totalHits <= options.perMinute ? undefined : budgetSpent(secondsUntilReset(resetTime, windowMs)));
      }, next);
    },
    async consume(key) {
      const counted = await count(key);
      if (!counted) return { allowed: true, retryAfterSeconds: 0 };
      return { allowed: counted.totalHits <= options.perMinute, retryAfterSeconds: Math.max(1, secondsUntilReset(counted.resetTime, windowMs)) };
    },
  };
}
