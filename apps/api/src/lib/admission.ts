import type { NextFunction, Request, Response } from "express";
import client from "prom-client";
import type { Env } from "../config/env";
import { poolOf } from "../db/client";
import type { AppDeps } from "../deps";
import { addressKey } from "./client-ip";
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
export function admissionOf(deps: Pick<AppDeps, "env" | "metrics" | "db">): Admission {
  const existing = perApp.get(deps);
  if (existing) return existing;
  const pool = poolOf(deps.db);
  const created = createAdmission(deps.env, deps.metrics, () => pool.waitingCount);
  perApp.set(deps, created);
  return created;
}

/** The gauge of what the database bound watches (once per instance, with its other gauges). */
export function registerAdmissionGauges(deps: Pick<AppDeps, "db" | "metrics">): void {
  const pool = poolOf(deps.db);
  new client.Gauge({
    name: "mdm_database_queries_waiting",
    help: "Queries waiting for a connection of this instance's database pool (new work is shed at ADMISSION_MAX_DATABASE_QUEUE).",
    registers: [deps.metrics.registry],
    collect() {
      this.set(pool.waitingCount);
    },
  });
}

type Middleware = (req: Request, res: Response, next: NextFunction) => void;

export type Admission = {
  /**
   * Express middleware for before the body is read: at most HTTP_MAX_REQUESTS_PER_CLIENT
   * requests per client address (an IPv6 address counts by its subnet, as the rate limits
   * do) are being received or worked on at once; past it, 429 and the connection closed.
   */
  perClient: Middleware;
  /**
   * Express middleware for once the body has been read: answers 503 with Retry-After
   * before any work when the instance is saturated. A request still uploading is not work
   * in progress; counting it would let a client that trickles its bodies fill the bound.
   */
  middleware: Middleware;
  /** Why new work should be refused now, or undefined to accept it (for transports other than HTTP). */
  overloaded: () => string | undefined;
  readonly inFlight: number;
};

// Why an instance sheds, by the `reason` label of mdm_requests_shed_total.
const OVERLOADS = {
  in_flight: "too many requests in progress",
  event_loop_lag: "the event loop is saturated",
  database_queue: "too many queries waiting for a database connection",
} as const;

/**
 * Bounded admission: at most ADMISSION_MAX_IN_FLIGHT requests are worked on at once, and
 * none is started while the event loop lags more than ADMISSION_MAX_EVENT_LOOP_LAG_MS or
 * ADMISSION_MAX_DATABASE_QUEUE queries (or more) wait for a connection of the database
 * pool. Beyond that a request costs a 503 with Retry-After instead of a place in a queue
 * that would grow (memory, and latency past every client's timeout) until the load falls.
 *
 * The pool's queue is bounded apart from the requests in flight because device sockets add
 * work the in-flight count never sees (a fleet's heartbeat frames): with the database the
 * bottleneck, they queued hundreds of queries ahead of every admitted request, which then
 * waited past its client's timeout without ever being shed.
 */
export function createAdmission(
  env: Pick<
    Env,
    | "ADMISSION_MAX_IN_FLIGHT"
    | "ADMISSION_MAX_EVENT_LOOP_LAG_MS"
    | "ADMISSION_MAX_DATABASE_QUEUE"
    | "ADMISSION_RETRY_AFTER_SECONDS"
    | "HTTP_MAX_REQUESTS_PER_CLIENT"
  >,
  metrics?: Metrics,
  databaseQueue: () => number = () => 0,
): Admission {
  const lag = env.ADMISSION_MAX_EVENT_LOOP_LAG_MS > 0 ? eventLoopLag() : undefined;
  let inFlight = 0;
  const reasonToShed = (): keyof typeof OVERLOADS | undefined => {
    if (inFlight >= env.ADMISSION_MAX_IN_FLIGHT) return "in_flight";
    if (lag && lag.lagMs > env.ADMISSION_MAX_EVENT_LOOP_LAG_MS) return "event_loop_lag";
    if (env.ADMISSION_MAX_DATABASE_QUEUE > 0 && databaseQueue() >= env.ADMISSION_MAX_DATABASE_QUEUE) return "database_queue";
    return undefined;
  };
  const overloaded = () => {
    const reason = reasonToShed();
    return reason && OVERLOADS[reason];
  };
  const retryAfter = String(env.ADMISSION_RETRY_AFTER_SECONDS);
  // Only addresses with a request in progress have an entry, so the map is bounded by the
  // open connections (HTTP_MAX_CONNECTIONS).
  const perClient = new Map<string, number>();
  return {
    get inFlight() {
      return inFlight;
    },
    overloaded,
    perClient: (req, res, next) => {
      // APK downloads last minutes each, and a site's devices share one address behind NAT:
      // a rollout to 100 of them must not meet this cap (the instance-wide bound still holds).
      if (EXEMPT_PATHS.has(req.path) || req.path.startsWith("/v1/app-files/")) return next();
      const client = addressKey(req.ip);
      const count = perClient.get(client) ?? 0;
      if (count >= env.HTTP_MAX_REQUESTS_PER_CLIENT) {
        metrics?.shed.inc({ reason: "per_client" });
        // Closed once answered: reading the rest of a body nobody wants would keep the socket busy.
        res.setHeader("Connection", "close");
        return next(new HttpError("rate_limited", "Too many requests in progress from this address; retry later", undefined, { "Retry-After": retryAfter }));
      }
      perClient.set(client, count + 1);
      res.once("close", () => {
        const left = (perClient.get(client) ?? 1) - 1;
        if (left > 0) perClient.set(client, left);
        else perClient.delete(client);
      });
      next();
    },
    middleware: (req, res, next) => {
      if (EXEMPT_PATHS.has(req.path)) return next();
      const reason = reasonToShed();
      if (reason) {
        metrics?.shed.inc({ reason });
        return next(
          new HttpError("service_unavailable", `This instance is overloaded (${OVERLOADS[reason]}); retry later`, undefined, { "Retry-After": retryAfter }),
        );
      }
      inFlight++;
      res.once("close", () => inFlight--);
      next();
    },
  };
}
