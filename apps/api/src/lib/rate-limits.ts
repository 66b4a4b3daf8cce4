import type { Request, Response } from "express";
import { rateLimit } from "express-rate-limit";
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
};

/** An express-rate-limit limiter whose refusal is the contract's 429 with Retry-After. */
export function limiter(options: Limiter) {
  const windowMs = options.windowMs ?? 60_000;
  return rateLimit({
    windowMs,
    limit: options.limit ?? options.perMinute ?? 60,
    standardHeaders: "draft-7",
    legacyHeaders: false,
    ...(options.keyGenerator ? { keyGenerator: options.keyGenerator } : {}),
    ...(options.redis ? { store: redisStore(options.redis, options.name) } : {}),
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
