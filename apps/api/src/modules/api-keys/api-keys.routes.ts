import { apiRoutes } from "@mdm/contracts";
import { Router } from "express";
import type { AppDeps } from "../../deps";
import type { Guards } from "../../lib/guards";
import { mount } from "../../lib/routing";
import { inputOf } from "../../lib/validate";
import { createApiKey, listApiKeys, revokeApiKey } from "./api-keys.service";

export function apiKeyRoutes(deps: AppDeps, guards: Guards): Router {
  const router = Router();
  mount(
    router,
    apiRoutes.createApiKey,
    async (_req, res) => res.status(201).json(await createApiKey(deps, inputOf(apiRoutes.createApiKey, res).body, res.locals.actor)),
    {
      guards,
    },
  );
  mount(router, apiRoutes.listApiKeys, async (_req, res) => res.json(await listApiKeys(deps)), { guards });
  mount(
    router,
    apiRoutes.revokeApiKey,
    async (_req, res) => res.json(await revokeApiKey(deps, inputOf(apiRoutes.revokeApiKey, res).params.keyId, res.locals.actor)),
    { guards },
  );
  return router;
}
