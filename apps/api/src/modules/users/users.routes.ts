import { apiRoutes } from "@mdm/contracts";
import { Router } from "express";
import type { AppDeps } from "../../deps";
import type { Guards } from "../../lib/guards";
import { mount } from "../../lib/routing";
import { inputOf } from "../../lib/validate";
import { inviteUser, listUsers, updateUser } from "./users.service";

export function userRoutes(deps: AppDeps, guards: Guards): Router {
  const router = Router();
  const admins = { guards };

  mount(router, apiRoutes.listUsers, async (_req, res) => res.json(await listUsers(deps)), admins);
  mount(
    router,
    apiRoutes.inviteUser,
    async (_req, res) => res.status(201).json(await inviteUser(deps, inputOf(apiRoutes.inviteUser, res).body, res.locals.actor)),
    admins,
  );
  mount(
    router,
    apiRoutes.updateUser,
    async (_req, res) => {
      const { params, body } = inputOf(apiRoutes.updateUser, res);
      res.json(await updateUser(deps, params.userId, body, res.locals.actor));
    },
    admins,
  );
  return router;
}
