import type { Request, RequestHandler, Response } from "express";
import { MemoryStore, type Store, rateLimit } from "express-rate-limit";
import type Redis from "ioredis";
import { RedisStore } from "rate-limit-redis";
import { HttpError } from "./http-error";

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
    // Custom keys count client addresses through addressKey (IPv6 by its /56, as
    // ipKeyGenerator does), which the library's source-text check cannot see.
    ...(options.keyGenerator ? { keyGenerator: options.keyGenerator, validate: { keyGeneratorIpFallback: false } } : {}),
    ...(options.store ? { store: options.store } : options.redis ? { store: redisStore(options.redis, options.name) } : {}),
    handler: (req, _res, next) => {
      const resetTime = (req as Request & { rateLimit?: { resetTime?: Date } }).rateLimit?.resetTime;
      const retryAfter = Math.max(1, Math.ceil(((resetTime?.getTime() ?? Date.now() + windowMs) - Date.now()) / 1000));
      next(new HttpError("rate_limited", "Too many requests; retry later", undefined, { "Retry-After": String(retryAfter) }));
    },
  });
}

function redisStore(redis: Redis, name: string): RedisStore {
  return new RedisStore({
    prefix: `mdm:rate:${name}:`,
    sendCommand: (command: string, ...args: string[]) => redis.call(command, ...args) as Promise<number>,
  });
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

export function sharedBudget(options: Limiter & { perMinute: number }): SharedBudget {
  const store = options.redis ? redisStore(options.redis, options.name) : new MemoryStore();
  // Creating the middleware initialises the store with the window.
  const middleware = limiter({ ...options, store });
  return {
    middleware,
    async consume(key) {
      // As for the middleware: if the store is unreachable, the request goes through.
      const counted = await store.increment(key).catch(() => undefined);
      if (!counted) return { allowed: true, retryAfterSeconds: 0 };
      const { totalHits, resetTime } = counted;
      const retryAfterSeconds = Math.max(1, Math.ceil(((resetTime?.getTime() ?? Date.now() + 60_000) - Date.now()) / 1000));
      return { allowed: totalHits <= options.perMinute, retryAfterSeconds };
    },
  };
}
