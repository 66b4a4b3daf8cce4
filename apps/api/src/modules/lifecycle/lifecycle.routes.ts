import { apiRoutes } from "@mdm/contracts";
import { Router } from "express";
import type { AppDeps } from "../../deps";
import type { Guards } from "../../lib/guards";
import { mount } from "../../lib/routing";
import { inputOf } from "../../lib/validate";
import { commandKeysStatus } from "./command-keys";
import { bulkEditDevices, deleteDevice, retireDevice, rotateDeviceToken } from "./lifecycle.service";

export function lifecycleRoutes(deps: AppDeps, guards: Guards): Router {
  const router = Router();
  const admin = { guards };
  mount(
    router,
    apiRoutes.bulkEditDevices,
    async (_req, res) => res.json(await bulkEditDevices(deps, inputOf(apiRoutes.bulkEditDevices, res).body, res.locals.actor)),
    admin,
  );
  mount(
    router,
    apiRoutes.retireDevice,
    async (_req, res) => res.json(await retireDevice(deps, inputOf(apiRoutes.retireDevice, res).params.deviceId, res.locals.actor)),
    admin,
  );
  mount(
    router,
    apiRoutes.rotateDeviceToken,
    async (_req, res) => res.status(202).json(await rotateDeviceToken(deps, inputOf(apiRoutes.rotateDeviceToken, res).params.deviceId, res.locals.actor)),
    admin,
  );
  mount(router, apiRoutes.commandKeysStatus, async (_req, res) => res.json(await commandKeysStatus(deps)), admin);
  mount(
    router,
    apiRoutes.deleteDevice,
    async (_req, res) => {
      await deleteDevice(deps, inputOf(apiRoutes.deleteDevice, res).params.deviceId, res.locals.actor);
      res.status(204).end();
    },
    admin,
  );
  return router;
}
