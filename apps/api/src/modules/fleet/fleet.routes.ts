import { apiRoutes } from "@mdm/contracts";
import { Router } from "express";
import type { AppDeps } from "../../deps";
import type { Guards } from "../../lib/guards";
import { mount } from "../../lib/routing";
import { inputOf } from "../../lib/validate";
import {
  createPolicy,
  deletePolicy,
  deviceTelemetry,
  fleetSummary,
  getAlertSettings,
  listAlerts,
  listGroups,
  listPolicies,
  updateAlertSettings,
  updateDevice,
  updatePolicy,
} from "./fleet.service";
import { acknowledgeIncident, getIncident, listIncidents } from "./incidents.service";

export function fleetRoutes(deps: AppDeps, guards: Guards): Router {
  const router = Router();
  const admin = { guards };

  mount(
    router,
    apiRoutes.updateDevice,
    async (_req, res) => {
      const { params, body } = inputOf(apiRoutes.updateDevice, res);
      res.json(await updateDevice(deps, params.deviceId, body, res.locals.actor));
    },
    admin,
  );
  mount(
    router,
    apiRoutes.deviceTelemetry,
    async (_req, res) => {
      const { params, query } = inputOf(apiRoutes.deviceTelemetry, res);
      res.json(await deviceTelemetry(deps, params.deviceId, query.hours));
    },
    admin,
  );
  mount(router, apiRoutes.fleetSummary, async (_req, res) => res.json(await fleetSummary(deps)), admin);
  mount(router, apiRoutes.listGroups, async (_req, res) => res.json(await listGroups(deps)), admin);

  mount(router, apiRoutes.listPolicies, async (_req, res) => res.json(await listPolicies(deps)), admin);
  mount(
    router,
    apiRoutes.createPolicy,
    async (_req, res) => {
      res.status(201).json(await createPolicy(deps, inputOf(apiRoutes.createPolicy, res).body, res.locals.actor));
    },
    admin,
  );
  mount(
    router,
    apiRoutes.updatePolicy,
    async (_req, res) => {
      const { params, body } = inputOf(apiRoutes.updatePolicy, res);
      res.json(await updatePolicy(deps, params.policyId, body, res.locals.actor));
    },
    admin,
  );
  mount(
    router,
    apiRoutes.deletePolicy,
    async (_req, res) => {
      await deletePolicy(deps, inputOf(apiRoutes.deletePolicy, res).params.policyId, res.locals.actor);
      res.status(204).end();
    },
    admin,
  );

  mount(router, apiRoutes.getAlertSettings, async (_req, res) => res.json(await getAlertSettings(deps)), admin);
  mount(
    router,
    apiRoutes.updateAlertSettings,
    async (_req, res) => {
      res.json(await updateAlertSettings(deps, inputOf(apiRoutes.updateAlertSettings, res).body, res.locals.actor));
    },
    admin,
  );
  mount(router, apiRoutes.listAlerts, async (_req, res) => res.json(await listAlerts(deps)), admin);
  mount(router, apiRoutes.listIncidents, async (_req, res) => res.json(await listIncidents(deps, inputOf(apiRoutes.listIncidents, res).query)), admin);
  mount(router, apiRoutes.getIncident, async (_req, res) => res.json(await getIncident(deps, inputOf(apiRoutes.getIncident, res).params.incidentId)), admin);
  mount(
    router,
    apiRoutes.acknowledgeIncident,
    async (_req, res) => {
      res.json(await acknowledgeIncident(deps, inputOf(apiRoutes.acknowledgeIncident, res).params.incidentId, res.locals.actor));
    },
    admin,
  );
  return router;
}
