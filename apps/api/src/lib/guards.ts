import type { RequestHandler } from "express";
import type { AppDeps } from "../deps";
import { adminAuth } from "../modules/admin-auth/admin-auth.middleware";
import { deviceAuth, deviceKey } from "../modules/devices/device-auth.middleware";
import { limiter } from "./rate-limits";

/** The guard chains routes put in front of themselves, by who may call them. */
export type Guards = {
  /** Unauthenticated routes: per client IP. */
  public: RequestHandler[];
  /** `/admin/*`: rate-limited per IP, then signature-checked. */
  admin: RequestHandler[];
  /** Device routes: authenticated, then rate-limited per device. */
  device: RequestHandler[];
};

export function createGuards(deps: AppDeps): Guards {
  const { env } = deps;
  return {
    public: [limiter({ perMinute: env.RATE_LIMIT_GENERAL_PER_MINUTE })],
    admin: [limiter({ perMinute: env.RATE_LIMIT_ADMIN_PER_MINUTE }), adminAuth(deps)],
    device: [deviceAuth(deps), limiter({ perMinute: env.RATE_LIMIT_DEVICE_PER_MINUTE, keyGenerator: deviceKey })],
  };
}
