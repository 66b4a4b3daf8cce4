import type { ApiRoute, UserRole } from "@mdm/contracts";
import type { RequestHandler } from "express";
import type { AppDeps } from "../deps";
import { adminAuth } from "../modules/admin-auth/admin-auth.middleware";
import { requireSession } from "../modules/auth/session";
import { deviceAuth } from "../modules/devices/device-auth.middleware";
import { deviceBudget } from "../modules/devices/device-budget";
import { metricsAccess } from "./metrics-access";
import { limiter } from "./rate-limits";

/** The guard chains routes put in front of themselves, by who may call them. */
export type Guards = {
  /** Unauthenticated routes: per client IP. */
  public: RequestHandler[];
  /**
   * `/admin/*`: rate-limited per IP, then signature-checked (with `X-Admin`: the bootstrap key,
   * or an API key of at least the route's `minRole`) or the session of a user of at least
   * that role (admin when the route names none).
   */
  admin: (route: ApiRoute) => RequestHandler[];
  /** Device routes: authenticated, then rate-limited per device. */
  device: RequestHandler[];
  /** Signed-in users of at least `minRole`: rate-limited per IP, then the session (and CSRF) checked. */
  session: (minRole?: UserRole) => RequestHandler[];
  /** `/api/metrics`: METRICS_TOKEN, or a direct call from this host. */
  metrics: RequestHandler[];
};

export function createGuards(deps: AppDeps): Guards {
  const { env } = deps;
  const signedAdmin = adminAuth(deps);
  const sessions = { viewer: requireSession(deps, "viewer"), operator: requireSession(deps, "operator"), admin: requireSession(deps, "admin") };
  // One counter for every admin and session route, whatever its role.
  const { redis } = deps;
  const adminLimiter = limiter({ name: "admin", redis, perMinute: env.RATE_LIMIT_ADMIN_PER_MINUTE });
  const sessionLimiter = limiter({ name: "session", redis, perMinute: env.RATE_LIMIT_ADMIN_PER_MINUTE });
  return {
    public: [limiter({ name: "public", redis, perMinute: env.RATE_LIMIT_GENERAL_PER_MINUTE })],
    admin: (route) => {
      const userSession = sessions[route.minRole ?? "admin"];
      const signedForRole = signedAdmin(route.minRole ?? "admin");
      return [
        adminLimiter,
        // Scripts sign with the admin key; the dashboard's users have a session.
        (req, res, next) => (req.get("x-admin") === undefined ? userSession : signedForRole)(req, res, next),
      ];
    },
    device: [deviceAuth(deps), deviceBudget(deps).middleware],
    session: (minRole) => [sessionLimiter, requireSession(deps, minRole)],
    metrics: [metricsAccess(env)],
  };
}
