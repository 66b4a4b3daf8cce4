import { randomUUID } from "node:crypto";
import { type DeviceFacts, type LegacyHeartbeatResponse, apiRoutes } from "@mdm/contracts";
import { type NextFunction, type Request, type Response, Router } from "express";
import type { AppDeps } from "../../deps";
import { recordAudit } from "../../lib/audit";
import { addressKey } from "../../lib/client-ip";
import { deviceEventData, emitWebhookEvent } from "../webhooks/webhook-events";
import { HttpError } from "../../lib/http-error";
import { budgetSpent, sharedBudget } from "../../lib/rate-limits";
import { mount } from "../../lib/routing";
import { constantTimeEquals, formatToken, hashSecret, newSecret } from "../../lib/secrets";
import { inputOf } from "../../lib/validate";
import { deviceBudget, deviceBudgetKey } from "../devices/device-budget";
import { authenticateDevice, commandKeyFor } from "../devices/devices.service";
import { handleHeartbeat } from "../devices/heartbeat";

/**
 * Agents that predate enrollment tokens: a shared key and a self-chosen device id. Off
 * unless LEGACY_ENROLLMENT_KEY is set, because anyone holding that key can enroll; and
 * since the key is shared by every such device, it only ever enrolls: once a device has
 * its own token, the token is what identifies it.
 */
export function legacyRoutes(deps: AppDeps): Router {
  const router = Router();
  const legacyKey = deps.env.LEGACY_ENROLLMENT_KEY;
  // New enrollments per client address: one leaked key must not mint devices by the thousand.
  const enrollments = sharedBudget({ name: "legacy-enrollment", redis: deps.redis, perMinute: deps.env.RATE_LIMIT_LEGACY_ENROLLMENT_PER_MINUTE });

  const requireLegacyKey = (req: Request, _res: Response, next: NextFunction) => {
    if (!legacyKey) throw new HttpError("not_found", "No such route");
    const sunset = deps.env.LEGACY_SUNSET_AT;
    if (sunset && deps.clock.now() >= sunset)
      throw new HttpError("gone", `The legacy device API was retired on ${sunset.toISOString()}; update the agent to use /v1`);
    const presented = req.get("x-enrollment-key");
    if (!presented || !constantTimeEquals(presented, legacyKey)) throw new HttpError("unauthorized", "Missing or wrong X-Enrollment-Key");
    next();
  };

  mount(
    router,
    apiRoutes.legacyHeartbeat,
    async (req, res) => {
      const { deviceId: legacyId, device: facts, ...heartbeat } = inputOf(apiRoutes.legacyHeartbeat, res).body;
      const { deviceId, issued } = await identifyLegacyDevice(deps, legacyId, facts ?? {}, req, (ip) => enrollments.consume(`ip:${ip}`));
      res.locals.device = { id: deviceId };
      const budget = await deviceBudget(deps).consume(deviceBudgetKey(deviceId));
      if (!budget.allowed) throw budgetSpent(budget.retryAfterSeconds);
      const answer: LegacyHeartbeatResponse = { deviceId, ...(await handleHeartbeat(deps, deviceId, heartbeat, "legacy")), ...issued };
      res.json(answer);
    },
    { guards: [requireLegacyKey] },
  );
  return router;
}

type Issued = { deviceToken: string; commandKey: string; commandKeyId: string };

/**
 * Who is calling: a device with a token must present it; a device enrolled before tokens
 * existed gets one now (its first contact since); an unknown id is enrolled, within the
 * per-address budget, and gets its token. `issued` is set only when a token was just made.
 */
async function identifyLegacyDevice(
  deps: AppDeps,
  legacyId: string,
  facts: DeviceFacts,
  req: Request,
  spendEnrollment: (ip: string) => Promise<{ allowed: boolean; retryAfterSeconds: number }>,
): Promise<{ deviceId: string; issued?: Issued }> {
  const existing = await deps.db.device.findUnique({ where: { legacyId }, select: { id: true, legacyTokenIssuedAt: true, retiredAt: true } });
  if (existing?.legacyTokenIssuedAt) {
    const deviceId = await authenticateDevice(deps, req.get("authorization"));
    if (deviceId !== existing.id) throw new HttpError("unauthorized", "Send this device's token as Authorization: Bearer <deviceToken>");
    return { deviceId };
  }
  const secret = newSecret();
  const now = deps.clock.now();
  if (existing) {
    // A retired device is out of the fleet for good: it enrolls again, with an enrollment token.
    if (existing.retiredAt) throw new HttpError("unauthorized", "This device was retired: enroll it again");
    const claimUntil = deps.env.LEGACY_CLAIM_UNTIL;
    if (!claimUntil || now >= claimUntil) {
      deps.logger.warn("legacy device claim refused: outside LEGACY_CLAIM_UNTIL", { deviceId: existing.id });
      throw new HttpError(
        "unauthorized",
        "This device was enrolled before device tokens, and its token can no longer be claimed with the shared key (LEGACY_CLAIM_UNTIL): retire it and enroll it again",
      );
    }
    // Only one caller wins the token of a device enrolled before tokens existed.
    const { count } = await deps.db.device.updateMany({
      where: { id: existing.id, legacyTokenIssuedAt: null, retiredAt: null },
      // The key issued with the token is generation 0 under the current master key.
      data: { tokenHash: hashSecret(secret), legacyTokenIssuedAt: now, commandMasterKeyId: deps.env.COMMAND_KEY_ID, commandKeyGeneration: 0 },
    });
    if (count === 0) throw new HttpError("unauthorized", "Send this device's token as Authorization: Bearer <deviceToken>");
    deps.logger.info("legacy device token issued", { deviceId: existing.id });
    await recordAudit(deps.db, {
      actor: "legacy-enrollment-key",
      action: "device.legacy_token_issued",
      targetType: "device",
      targetId: existing.id,
      ip: req.ip,
      details: { legacyId },
    });
    return { deviceId: existing.id, issued: issuedFor(deps, existing.id, secret) };
  }
  const budget = await spendEnrollment(addressKey(req.ip));
  if (!budget.allowed) {
    throw new HttpError("rate_limited", "Too many legacy enrollments from this address; retry later", undefined, {
      "Retry-After": String(budget.retryAfterSeconds),
    });
  }
  const deviceId = randomUUID();
  const created = await deps.db.$transaction(async (tx) => {
    const rows = await tx.device.createManyAndReturn({
      data: [{ id: deviceId, legacyId, tokenHash: hashSecret(secret), legacyTokenIssuedAt: now, commandMasterKeyId: deps.env.COMMAND_KEY_ID, ...facts }],
      skipDuplicates: true,
    });
    if (rows[0]) await emitWebhookEvent(tx, "device.enrolled", { ...deviceEventData(rows[0]), enrollmentTokenId: null, legacy: true, legacyId }, now);
    return rows;
  });
  // Another request enrolled the same id a moment earlier and holds its token.
  if (created.length === 0) throw new HttpError("unauthorized", "Send this device's token as Authorization: Bearer <deviceToken>");
  deps.logger.info("legacy device enrolled", { deviceId });
  await recordAudit(deps.db, {
    actor: "legacy-enrollment-key",
    action: "device.enroll_legacy",
    targetType: "device",
    targetId: deviceId,
    ip: req.ip,
    details: { legacyId },
  });
  return { deviceId, issued: issuedFor(deps, deviceId, secret) };
}

function issuedFor(deps: AppDeps, deviceId: string, secret: string): Issued {
  return { deviceToken: formatToken(deviceId, secret), commandKey: commandKeyFor(deps.env, deviceId), commandKeyId: deps.env.COMMAND_KEY_ID };
}
