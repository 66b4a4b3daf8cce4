import type { Request, Response } from "express";
import { rateLimit } from "express-rate-limit";
import { HttpError } from "./http-error";

type Limiter = {
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
    handler: (req, _res, next) => {
      const resetTime = (req as Request & { rateLimit?: { resetTime?: Date } }).rateLimit?.resetTime;
      const retryAfter = Math.max(1, Math.ceil(((resetTime?.getTime() ?? Date.now() + windowMs) - Date.now()) / 1000));
      next(new HttpError("rate_limited", "Too many requests; retry later", undefined, { "Retry-After": String(retryAfter) }));
    },
  });
}
