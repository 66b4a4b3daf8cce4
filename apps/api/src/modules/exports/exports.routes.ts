import { apiRoutes } from "@mdm/contracts";
import { Router } from "express";
import type { AppDeps } from "../../deps";
import type { Guards } from "../../lib/guards";
import { mount } from "../../lib/routing";
import { inputOf } from "../../lib/validate";
import { exportAuditLog, exportCommands, exportDevices } from "./exports.service";

/** Mounted before the routes with `{deviceId}` paths, so `/admin/devices/export` is not taken for a device id. */
export function exportRoutes(deps: AppDeps, guards: Guards): Router {
  const router = Router();
  mount(router, apiRoutes.exportDevices, (_req, res) => exportDevices(deps, res, inputOf(apiRoutes.exportDevices, res).query), { guards });
  mount(router, apiRoutes.exportCommands, (_req, res) => exportCommands(deps, res, inputOf(apiRoutes.exportCommands, res).query), { guards });
  mount(router, apiRoutes.exportAuditLog, (_req, res) => exportAuditLog(deps, res, inputOf(apiRoutes.exportAuditLog, res).query), { guards });
  return router;
}
