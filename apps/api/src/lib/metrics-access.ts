import { createHash, timingSafeEqual } from "node:crypto";
import type { RequestHandler } from "express";
import type { Env } from "../config/env";
import { isDirectFromThisHost } from "./client-ip";
import { HttpError } from "./http-error";

const digest = (value: string) => createHash("sha256").update(value).digest();

/**
 * Who may read /api/metrics: with METRICS_TOKEN, whoever sends it as a bearer token;
 * without, only a caller on this host that reaches the API directly. The socket's own
 * address is used, never `req.ip`, which a trusted proxy's headers decide.
 */
export function metricsAccess(env: Env): RequestHandler {
  const expected = env.METRICS_TOKEN === undefined ? undefined : digest(env.METRICS_TOKEN);
  return (req, _res, next) => {
    if (expected) {
      const token = /^Bearer\s+(\S+)$/i.exec(req.get("authorization") ?? "")?.[1];
      // Compared as digests: equal lengths, and no timing signal about the token.
      if (token && timingSafeEqual(digest(token), expected)) return next();
      throw new HttpError("unauthorized", "Send METRICS_TOKEN as a bearer token", undefined, { "WWW-Authenticate": "Bearer" });
    }
    if (isDirectFromThisHost(req)) return next();
    throw new HttpError("forbidden", "Metrics answer only to this host unless METRICS_TOKEN is set");
  };
}
