import { randomUUID } from "node:crypto";
import { type DeviceFacts, apiRoutes } from "@mdm/contracts";
import { type NextFunction, type Request, type Response, Router } from "express";
import type { AppDeps } from "../../deps";
import { recordAudit } from "../../lib/audit";
import { HttpError } from "../../lib/http-error";
import { limiter } from "../../lib/rate-limits";
import { mount } from "../../lib/routing";
import { constantTimeEquals, hashSecret, newSecret } from "../../lib/secrets";
import { inputOf } from "../../lib/validate";
import { handleHeartbeat } from "../devices/heartbeat";

/**
 * Agents that predate enrollment tokens: a shared key and a self-chosen device id. Off
 * unless LEGACY_ENROLLMENT_KEY is set, because anyone holding that key can enroll.
 */
export function legacyRoutes(deps: AppDeps): Router {
  const router = Router();
  const legacyKey = deps.env.LEGACY_ENROLLMENT_KEY;

  const requireLegacyKey = (req: Request, _res: Response, next: NextFunction) => {
    if (!legacyKey) throw new HttpError("not_found", "No such route");
    const presented = req.get("x-enrollment-key");
    if (!presented || !constantTimeEquals(presented, legacyKey)) throw new HttpError("unauthorized", "Missing or wrong X-Enrollment-Key");
    next();
  };
  const perLegacyDevice = limiter({
    name: "legacy-device",
    redis: deps.redis,
    perMinute: deps.env.RATE_LIMIT_DEVICE_PER_MINUTE,
    keyGenerator: (_req, res) => `legacy:${inputOf(apiRoutes.legacyHeartbeat, res).body.deviceId}`,
  });

  mount(
    router,
    apiRoutes.legacyHeartbeat,
    async (req, res) => {
      const { deviceId: legacyId, device: facts, ...heartbeat } = inputOf(apiRoutes.legacyHeartbeat, res).body;
      const deviceId = await findOrEnrollLegacyDevice(deps, legacyId, facts ?? {}, req.ip);
      res.locals.device = { id: deviceId };
      res.json({ deviceId, ...(await handleHeartbeat(deps, deviceId, heartbeat, "legacy")) });
    },
    { guards: [requireLegacyKey], afterValidation: [perLegacyDevice] },
  );
  return router;
}

async function findOrEnrollLegacyDevice(deps: AppDeps, legacyId: string, facts: DeviceFacts, ip: string | undefined): Promise<string> {
  const existing = await deps.db.device.findUnique({ where: { legacyId }, select: { id: true } });
  if (existing) return existing.id;
  // Legacy devices never see a device token; an unusable random hash keeps the column honest.
  const device = await deps.db.device.upsert({
    where: { legacyId },
    update: {},
    create: { id: randomUUID(), legacyId, tokenHash: hashSecret(newSecret()), ...facts },
    select: { id: true },
  });
  deps.logger.info("legacy device enrolled", { deviceId: device.id });
  await recordAudit(deps.db, { actor: "legacy-enrollment-key", action: "device.enroll_legacy", targetType: "device", targetId: device.id, ip, details: { legacyId } });
  return device.id;
}
