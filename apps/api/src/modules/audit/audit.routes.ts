import { apiRoutes } from "@mdm/contracts";
import { Router } from "express";
import type { AppDeps } from "../../deps";
import type { Guards } from "../../lib/guards";
import { mount } from "../../lib/routing";
import { inputOf } from "../../lib/validate";
import { listAuditLog } from "./audit.service";

export function auditRoutes(deps: AppDeps, guards: Guards): Router {
  const router = Router();
  mount(router, apiRoutes.listAuditLog, async (_req, res) => res.json(await listAuditLog(deps, inputOf(apiRoutes.listAuditLog, res).query)), {
    guards,
  });
  return router;
}
