import { apiRoutes } from "@mdm/contracts";
import { Router } from "express";
import type { AppDeps } from "../../deps";
import type { Guards } from "../../lib/guards";
import { HttpError } from "../../lib/http-error";
import { limiter } from "../../lib/rate-limits";
import { mount } from "../../lib/routing";
import { inputOf } from "../../lib/validate";
import { getDevice, listDevices, registerDevice } from "./devices.service";
import { handleHeartbeat } from "./heartbeat";

export function deviceRoutes(deps: AppDeps, guards: Guards): Router {
  const router = Router();

  // Enrollment is limited per enrollment token: a fleet enrolling behind one NAT shares an IP.
  const perEnrollmentToken = limiter({
    name: "enrollment",
    redis: deps.redis,
    perMinute: deps.env.RATE_LIMIT_ENROLLMENT_PER_MINUTE,
    keyGenerator: (_req, res) => `enroll:${String(inputOf(apiRoutes.register, res).body.enrollmentToken).split(".")[0]}`,
  });
  mount(
    router,
    apiRoutes.register,
    async (req, res) => {
      const { body } = inputOf(apiRoutes.register, res);
      try {
        const registered = await registerDevice(deps, body.enrollmentToken, body.device, { ip: req.ip });
        deps.metrics.register.inc({ outcome: "enrolled" });
        deps.logger.info("device registered", { deviceId: registered.deviceId, ip: req.ip });
        res.status(201).json(registered);
      } catch (error) {
        if (error instanceof HttpError) deps.metrics.register.inc({ outcome: "refused" });
        throw error;
      }
    },
    { afterValidation: [perEnrollmentToken] },
  );

  mount(
    router,
    apiRoutes.heartbeat,
    async (_req, res) => {
      const deviceId: string = res.locals.device.id;
      const response = await handleHeartbeat(deps, deviceId, inputOf(apiRoutes.heartbeat, res).body, "v1");
      deps.logger.debug("heartbeat", { deviceId, pendingCommands: response.commands.length });
      res.json(response);
    },
    { guards: guards.device },
  );

  mount(router, apiRoutes.listDevices, async (_req, res) => res.json(await listDevices(deps, inputOf(apiRoutes.listDevices, res).query)), {
    guards,
  });
  mount(router, apiRoutes.getDevice, async (_req, res) => res.json(await getDevice(deps, inputOf(apiRoutes.getDevice, res).params.deviceId)), {
    guards,
  });
  return router;
}
