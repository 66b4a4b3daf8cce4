import type { NextFunction, Request, Response } from "express";
import type { Env } from "../config/env";
import type { AppDeps } from "../deps";
import { HttpError } from "./http-error";
import type { Metrics } from "./metrics";

// Paths never shed: the load balancer must see the instance's real health, and an
// overloaded instance is exactly when its metrics matter.
const EXEMPT_PATHS = new Set(["/api/health", "/api/metrics"]);
const LAG_SAMPLE_MS = 100;
// Smoothed, so a single pause (a garbage collection, a large JSON body) does not shed; a
// sustained backlog does within a few samples.
const LAG_SMOOTHING = 0.3;

let lagMonitor: { lagMs: number } | undefined;

/** How late the event loop runs timers, smoothed; one sampler per process. */
function eventLoopLag(): { lagMs: number } {
  if (lagMonitor) return lagMonitor;
  const monitor = { lagMs: 0 };
  let expected = Date.now() + LAG_SAMPLE_MS;
  const timer = setInterval(() => {
    const now = Date.now();
    monitor.lagMs = monitor.lagMs * (1 - LAG_SMOOTHING) + Math.max(0, now - expected) * LAG_SMOOTHING;
    expected = now + LAG_SAMPLE_MS;
  }, LAG_SAMPLE_MS);
  timer.unref();
  lagMonitor = monitor;
  return monitor;
}

const perApp = new WeakMap<object, Admission>();

/** The admission control of one app (shared by its HTTP routes and its WebSocket hub). */
export function admissionOf(deps: Pick<AppDeps, "env" | "metrics">): Admission {
  const existing = perApp.get(deps);
  if (existing) return existing;
  const created = createAdmission(deps.env, deps.metrics);
  perApp.set(deps, created);
  return created;
}

export type Admission = {
  /** Express middleware: answers 503 with Retry-After before any work when the instance is saturated. */
  middleware: (req: Request, res: Response, next: NextFunction) => void;
  /** Why new work should be refused now, or undefined to accept it (for transports other than HTTP). */
  overloaded: () => string | undefined;
  readonly inFlight: number;
};

/**
 * Bounded admission: at most ADMISSION_MAX_IN_FLIGHT requests are worked on at once, and
 * none is started while the event loop lags more than ADMISSION_MAX_EVENT_LOOP_LAG_MS.
 * Beyond that a request costs a 503 with Retry-After instead of a place in a queue that
 * would grow (memory, and latency past every client's timeout) until the load falls.
 */
export function createAdmission(env: Pick<Env, "ADMISSION_MAX_IN_FLIGHT" | "ADMISSION_MAX_EVENT_LOOP_LAG_MS" | "ADMISSION_RETRY_AFTER_SECONDS">, metrics?: Metrics): Admission {
  const lag = env.ADMISSION_MAX_EVENT_LOOP_LAG_MS > 0 ? eventLoopLag() : undefined;
  let inFlight = 0;
  const overloaded = () => {
    if (inFlight >= env.ADMISSION_MAX_IN_FLIGHT) return "too many requests in progress";
    if (lag && lag.lagMs > env.ADMISSION_MAX_EVENT_LOOP_LAG_MS) return "the event loop is saturated";
    return undefined;
  };
  const retryAfter = String(env.ADMISSION_RETRY_AFTER_SECONDS);
  return {
    get inFlight() {
      return inFlight;
    },
    overloaded,
    middleware: (req, res, next) => {
      if (EXEMPT_PATHS.has(req.path)) return next();
      const reason = overloaded();
      if (reason) {
        metrics?.shed.inc({ reason: reason === "too many requests in progress" ? "in_flight" : "event_loop_lag" });
        return next(new HttpError("service_unavailable", `This instance is overloaded (${reason}); retry later`, undefined, { "Retry-After": retryAfter }));
      }
      inFlight++;
      res.once("close", () => inFlight--);
      next();
    },
  };
}
