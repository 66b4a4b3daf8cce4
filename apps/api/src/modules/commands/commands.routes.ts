import { apiRoutes } from "@mdm/contracts";
import { Router } from "express";
import type { AppDeps } from "../../deps";
import type { Guards } from "../../lib/guards";
import { mount } from "../../lib/routing";
import { inputOf } from "../../lib/validate";
import {
  cancelBatch,
  cancelCommand,
  createBulkCommand,
  createCommand,
  getBatch,
  getCommand,
  listBatches,
  listCommands,
  recordActionResult,
} from "./commands.service";

export function commandRoutes(deps: AppDeps, guards: Guards): Router {
  const router = Router();
  const admin = { guards };
  mount(
    router,
    apiRoutes.createCommand,
    async (_req, res) => res.status(201).json(await createCommand(deps, inputOf(apiRoutes.createCommand, res).body, res.locals.actor)),
    admin,
  );
  mount(
    router,
    apiRoutes.createBulkCommand,
    async (_req, res) => res.status(202).json(await createBulkCommand(deps, inputOf(apiRoutes.createBulkCommand, res).body, res.locals.actor)),
    admin,
  );
  mount(router, apiRoutes.listCommands, async (_req, res) => res.json(await listCommands(deps, inputOf(apiRoutes.listCommands, res).query)), admin);
  mount(router, apiRoutes.getCommand, async (_req, res) => res.json(await getCommand(deps, inputOf(apiRoutes.getCommand, res).params.requestId)), admin);
  mount(
    router,
    apiRoutes.cancelCommand,
    async (_req, res) => res.json(await cancelCommand(deps, inputOf(apiRoutes.cancelCommand, res).params.requestId, res.locals.actor)),
    admin,
  );
  mount(router, apiRoutes.listBatches, async (_req, res) => res.json(await listBatches(deps)), admin);
  mount(
    router,
    apiRoutes.cancelBatch,
    async (_req, res) => res.json(await cancelBatch(deps, inputOf(apiRoutes.cancelBatch, res).params.batchId, res.locals.actor)),
    admin,
  );
  mount(router, apiRoutes.getBatch, async (_req, res) => res.json(await getBatch(deps, inputOf(apiRoutes.getBatch, res).params.batchId)), admin);
  mount(
    router,
    apiRoutes.actionResult,
    async (_req, res) => {
      const deviceId: string = res.locals.device.id;
      const input = inputOf(apiRoutes.actionResult, res).body;
      const outcome = await recordActionResult(deps, deviceId, input);
      deps.logger.info("action result", { deviceId, requestId: input.requestId, reported: input.status, status: outcome.status, changed: outcome.changed });
      res.json(outcome);
    },
    { guards: guards.device },
  );
  return router;
}
