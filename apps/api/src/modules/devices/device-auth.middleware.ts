import type { NextFunction, Request, Response } from "express";
import type { AppDeps } from "../../deps";
import { authenticateDevice } from "./devices.service";

export function deviceAuth(deps: Pick<AppDeps, "db" | "clock" | "bus" | "env" | "metrics">) {
  return async (req: Request, res: Response, next: NextFunction) => {
    res.locals.device = { id: await authenticateDevice(deps, req.get("authorization")) };
    next();
  };
}

/** Rate-limit key for device routes: the device, not its IP (whole fleets share one NAT). */
export function deviceKey(_req: Request, res: Response): string {
  return deviceBudgetKey(res.locals.device.id);
}

export const deviceBudgetKey = (deviceId: string) => `device:${deviceId}`;
