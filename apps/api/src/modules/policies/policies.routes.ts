import { apiRoutes } from "@mdm/contracts";
import { Router } from "express";
import type { AppDeps } from "../../deps";
import type { Guards } from "../../lib/guards";
import { mount } from "../../lib/routing";
import { inputOf } from "../../lib/validate";
import {
  createDevicePolicy,
  createPolicyAssignment,
  deleteDevicePolicy,
  deletePolicyAssignment,
  deviceEffectivePolicy,
  getDevicePolicy,
  listDevicePolicies,
  listDevicePolicyVersions,
  policyComplianceSummary,
  revertDevicePolicy,
  updateDevicePolicy,
} from "./policies.service";

export function policiesRoutes(deps: AppDeps, guards: Guards): Router {
  const router = Router();
  const admin = { guards };

  mount(router, apiRoutes.listDevicePolicies, async (_req, res) => res.json(await listDevicePolicies(deps)), admin);
  mount(
    router,
    apiRoutes.createDevicePolicy,
    async (_req, res) => {
      res.status(201).json(await createDevicePolicy(deps, inputOf(apiRoutes.createDevicePolicy, res).body, res.locals.actor));
    },
    admin,
  );
  mount(
    router,
    apiRoutes.getDevicePolicy,
    async (_req, res) => res.json(await getDevicePolicy(deps, inputOf(apiRoutes.getDevicePolicy, res).params.policyId)),
    admin,
  );
  mount(
    router,
    apiRoutes.updateDevicePolicy,
    async (_req, res) => {
      const { params, body } = inputOf(apiRoutes.updateDevicePolicy, res);
      res.json(await updateDevicePolicy(deps, params.policyId, body, res.locals.actor));
    },
    admin,
  );
  mount(
    router,
    apiRoutes.deleteDevicePolicy,
    async (_req, res) => {
      await deleteDevicePolicy(deps, inputOf(apiRoutes.deleteDevicePolicy, res).params.policyId, res.locals.actor);
      res.status(204).end();
    },
    admin,
  );
  mount(
    router,
    apiRoutes.listDevicePolicyVersions,
    async (_req, res) => {
      res.json(await listDevicePolicyVersions(deps, inputOf(apiRoutes.listDevicePolicyVersions, res).params.policyId));
    },
    admin,
  );
  mount(
    router,
    apiRoutes.revertDevicePolicy,
    async (_req, res) => {
      const { params } = inputOf(apiRoutes.revertDevicePolicy, res);
      res.json(await revertDevicePolicy(deps, params.policyId, params.version, res.locals.actor));
    },
    admin,
  );
  mount(
    router,
    apiRoutes.createPolicyAssignment,
    async (_req, res) => {
      const { params, body } = inputOf(apiRoutes.createPolicyAssignment, res);
      res.status(201).json(await createPolicyAssignment(deps, params.policyId, body, res.locals.actor));
    },
    admin,
  );
  mount(
    router,
    apiRoutes.deletePolicyAssignment,
    async (_req, res) => {
      const { params } = inputOf(apiRoutes.deletePolicyAssignment, res);
      await deletePolicyAssignment(deps, params.policyId, params.assignmentId, res.locals.actor);
      res.status(204).end();
    },
    admin,
  );
  mount(
    router,
    apiRoutes.deviceEffectivePolicy,
    async (_req, res) => {
      res.json(await deviceEffectivePolicy(deps, inputOf(apiRoutes.deviceEffectivePolicy, res).params.deviceId));
    },
    admin,
  );
  mount(router, apiRoutes.policyCompliance, async (_req, res) => res.json(await policyComplianceSummary(deps)), admin);
  return router;
}
