import type { AppDeps } from "../../deps";
import { type SharedBudget, sharedBudget } from "../../lib/rate-limits";
import { deviceKey } from "./device-auth.middleware";

export { deviceBudgetKey } from "./device-auth.middleware";

const budgets = new WeakMap<AppDeps, SharedBudget>();

/**
 * The per-device request budget (RATE_LIMIT_DEVICE_PER_MINUTE), one per app: the device
 * routes and the device WebSocket spend it together (in Redis when configured, so across
 * instances too).
 */
export function deviceBudget(deps: AppDeps): SharedBudget {
  let budget = budgets.get(deps);
  if (!budget) {
    budget = sharedBudget({ name: "device", redis: deps.redis, perMinute: deps.env.RATE_LIMIT_DEVICE_PER_MINUTE, keyGenerator: deviceKey });
    budgets.set(deps, budget);
  }
  return budget;
}
