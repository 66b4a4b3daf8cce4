import { apiRoutes } from "@mdm/contracts";
import { Router } from "express";
import type { AppDeps } from "../../deps";
import type { Guards } from "../../lib/guards";
import { mount } from "../../lib/routing";
import { inputOf } from "../../lib/validate";
import { createEnrollmentToken, listEnrollmentTokens, revokeEnrollmentToken } from "./enrollment.service";
import { provisioningPayload } from "./provisioning.service";

export function enrollmentRoutes(deps: AppDeps, guards: Guards): Router {
  const router = Router();
  mount(
    router,
    apiRoutes.createEnrollmentToken,
    async (_req, res) => res.status(201).json(await createEnrollmentToken(deps, inputOf(apiRoutes.createEnrollmentToken, res).body, res.locals.actor)),
    { guards },
  );
  mount(router, apiRoutes.listEnrollmentTokens, async (_req, res) => res.json(await listEnrollmentTokens(deps)), { guards });
  mount(
    router,
    apiRoutes.revokeEnrollmentToken,
    async (_req, res) => res.json(await revokeEnrollmentToken(deps, inputOf(apiRoutes.revokeEnrollmentToken, res).params.tokenId, res.locals.actor)),
    { guards },
  );
  mount(
    router,
    apiRoutes.enrollmentProvisioning,
    async (_req, res) => {
      const { params, body } = inputOf(apiRoutes.enrollmentProvisioning, res);
      res.json(await provisioningPayload(deps, params.tokenId, body));
    },
    { guards },
  );
  return router;
}
