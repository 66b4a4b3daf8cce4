import { apiRoutes } from "@mdm/contracts";
import { Router } from "express";
import type { AppDeps } from "../deps";
import type { Guards } from "../lib/guards";
import { mount } from "../lib/routing";
import { inputOf } from "../lib/validate";
import { listOutbox } from "./outbox";

export function mailRoutes(deps: AppDeps, guards: Guards): Router {
  const router = Router();
  mount(router, apiRoutes.listMailOutbox, async (_req, res) => res.json(await listOutbox(deps, inputOf(apiRoutes.listMailOutbox, res).query)), { guards });
  return router;
}
