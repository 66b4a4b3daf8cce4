import type { ErrorRequestHandler } from "express";
import type { AppDeps } from "../deps";
import { addressKey } from "./client-ip";
import { windowCounter } from "./failure-limits";
import { HttpError } from "./http-error";

/**
 * Failed device authentications per client IP (bad device tokens, enrollment tokens, the
 * legacy key; on HTTP and on WebSocket upgrades), at most RATE_LIMIT_AUTH_FAILURES_PER_MINUTE.
 *
 * Past the budget, further failures from the address answer 429 with Retry-After instead
 * of 401, so scanners and broken agents are told to back off. Requests that authenticate
 * are served whatever their address's count: a thousand devices behind one NAT must not
 * lose their service because a neighbour (or an attacker on the same network) keeps
 * failing. Refusing the whole address would be a lever to cut a site off; the secrets it
 * guards are 256-bit random tokens, which counting guesses does not make safer.
 */
export type AuthFailures = {
  /** Counts a failed authentication from `ip` and returns what to answer: `error` itself, or 429 past the budget. */
  refusal: (ip: string | undefined, error: HttpError) => Promise<HttpError>;
  /** Express error middleware doing the same for the 401s of the routes it is mounted on. */
  middleware: ErrorRequestHandler;
};

// One counter per app, shared by its HTTP routes and WebSocket upgrades.
const perApp = new WeakMap<AppDeps, AuthFailures>();

export function authFailuresOf(deps: AppDeps): AuthFailures {
  const existing = perApp.get(deps);
  if (existing) return existing;
  const limit = deps.env.RATE_LIMIT_AUTH_FAILURES_PER_MINUTE;
  const counter = windowCounter({ name: "auth-failures", windowMs: 60_000, redis: deps.redis });
  const refusal = async (ip: string | undefined, error: HttpError): Promise<HttpError> => {
    if (error.status !== 401) return error;
    const { count, resetInMs } = await counter.hit(addressKey(ip));
    if (count <= limit) return error;
    const retryAfter = String(Math.max(1, Math.ceil(resetInMs / 1000)));
    return new HttpError("rate_limited", "Too many failed authentications from this address; retry later", undefined, { "Retry-After": retryAfter });
  };
  const created: AuthFailures = {
    refusal,
    middleware: (error, req, _res, next) => {
      if (!(error instanceof HttpError) || error.status !== 401) return next(error);
      refusal(req.ip, error).then(next, () => next(error));
    },
  };
  perApp.set(deps, created);
  return created;
}
