import { apiRoutes } from "@mdm/contracts";
import { Router } from "express";
import type { AppDeps } from "../../deps";
import type { Guards } from "../../lib/guards";
import { mount } from "../../lib/routing";
import { inputOf } from "../../lib/validate";
import { createWebhook, deleteWebhook, listWebhookDeliveries, listWebhooks, pingWebhook } from "./webhooks.service";

export function webhookRoutes(deps: AppDeps, guards: Guards): Router {
  const router = Router();
  mount(
    router,
    apiRoutes.createWebhook,
    async (_req, res) => res.status(201).json(await createWebhook(deps, inputOf(apiRoutes.createWebhook, res).body, res.locals.actor)),
    {
      guards,
    },
  );
  mount(router, apiRoutes.listWebhooks, async (_req, res) => res.json(await listWebhooks(deps)), { guards });
  mount(
    router,
    apiRoutes.deleteWebhook,
    async (_req, res) => {
      await deleteWebhook(deps, inputOf(apiRoutes.deleteWebhook, res).params.webhookId, res.locals.actor);
      res.status(204).end();
    },
    { guards },
  );
  mount(
    router,
    apiRoutes.listWebhookDeliveries,
    async (_req, res) => res.json(await listWebhookDeliveries(deps, inputOf(apiRoutes.listWebhookDeliveries, res).params.webhookId)),
    { guards },
  );
  mount(
    router,
    apiRoutes.pingWebhook,
    async (_req, res) => res.status(202).json(await pingWebhook(deps, inputOf(apiRoutes.pingWebhook, res).params.webhookId, res.locals.actor)),
    { guards },
  );
  return router;
}
