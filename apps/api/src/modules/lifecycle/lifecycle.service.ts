import { randomUUID } from "node:crypto";
import { UNFINISHED_COMMAND_STATUSES, announceCancelled, cancelCommands } from "../commands/command-transitions";
import { deviceEventData, emitWebhookEvents } from "../webhooks/webhook-events";
import {
  type BulkEditDevicesRequest,
  type BulkEditDevicesResponse,
  type DeviceSelection,
  MAX_BULK_EDIT_DEVICES,
  type RetireDeviceResponse,
  type RotateTokenResponse,
  type RotationSecrets,
  sealWithCommandKey,
} from "@mdm/contracts";
import { Prisma } from "../../generated/prisma/client";
import type { AppDeps } from "../../deps";
import { devicesLockedInIdOrder } from "../../db/device-locks";
import type { DbOrTx } from "../../db/types";
import { recordAudit } from "../../lib/audit";
import { HttpError } from "../../lib/http-error";
import { formatToken, hashSecret, newSecret } from "../../lib/secrets";
import { wakeDelivery } from "../commands/delivery";
import { type RevocationReason, forgetDeviceToken, recordTokenRevocation } from "../devices/device-token-cache";
import {
  type CommandKeyRef,
  commandKeyFor,
  commandKeyIdFor,
  currentKeyRef,
  deviceFilters,
  getDevice,
  hasCommandKey,
  masterKeyIdOf,
} from "../devices/devices.service";
import { toLiveState } from "../fleet/fleet.service";
import { queueRecomputeOf, recomputeQueuedSoon } from "../policies/policies.service";

type LifecycleDeps = Pick<AppDeps, "db" | "clock" | "bus" | "logger">;
type Actor = { name: string; ip?: string };

/**
 * Retires a device: from the commit on, its token is refused (authentication reads
 * `retiredAt`); its pending commands are cancelled in the same transaction; then every
 * instance is told to drop the token from its cache and close the device's socket, before
 * the caller gets its answer.
 */
export async function retireDevice(deps: LifecycleDeps, deviceId: string, actor: Actor): Promise<RetireDeviceResponse> {
  const { db, clock, bus } = deps;
  const now = clock.now();
  const reason = `device retired by ${actor.name}`;
  const outcome = await db.$transaction(async (tx) => {
    // The row lock orders concurrent retirements: the second sees the first's retiredAt.
    const locked = await tx.$queryRaw<Array<{ retiredAt: Date | null }>>`SELECT "retiredAt" FROM "Device" WHERE id = ${deviceId}::uuid FOR UPDATE`;
    if (locked.length === 0) throw new HttpError("not_found", "No device has this id");
    if (locked[0]!.retiredAt) return undefined;
    const device = await tx.device.update({ where: { id: deviceId }, data: { retiredAt: now, retiredBy: actor.name, online: false, offlineSince: now } });
    const cancelled = await cancelCommands(tx, { deviceId, status: { in: UNFINISHED_COMMAND_STATUSES } }, reason, now);
    await emitWebhookEvents(tx, [
      { type: "device.retired", at: now, data: { ...deviceEventData(device), retiredBy: actor.name, cancelledCommands: cancelled.length } },
    ]);
    await recordTokenRevocation(tx, deviceId, "retired");
    await recordAudit(tx, {
      actor: actor.name,
      action: "device.retire",
      targetType: "device",
      targetId: deviceId,
      ip: actor.ip,
      details: { cancelledCommands: cancelled.length },
    });
    return { device, cancelled };
  });
  if (!outcome) return { device: await getDevice(deps, deviceId), cancelledCommands: 0, alreadyRetired: true };
  forgetDeviceToken(deps, deviceId);
  await announceRevocation(deps, deviceId, "retired");
  announceCancelled(bus, outcome.cancelled, now);
  bus.publish({ kind: "device_state", state: toLiveState(outcome.device) });
  deps.logger.info("device retired", { deviceId, cancelledCommands: outcome.cancelled.length });
  return { device: await getDevice(deps, deviceId), cancelledCommands: outcome.cancelled.length, alreadyRetired: false };
}

const ERASED_SWEEP_BATCH = 100;
// How far back the sweep looks: running every minute, it has retried a failed retirement
// thousands of times within it, and erases of devices retired long ago are not read again.
const ERASED_SWEEP_DAYS = 7;

/**
 * Retires the devices that reported an erasing command (wipe, factory_reset) succeeded and
 * are still in service: the result's status and the retirement commit apart, so an instance
 * that died (or a database that failed) between them leaves such a device, and an erased
 * device may never report again. Run by the maintenance job, through every such device of
 * the last ERASED_SWEEP_DAYS (a failover during a fleet-wide wipe can leave thousands); one
 * that fails is logged and left for the next run, not in the way of the others. Returns
 * how many it retired.
 */
export async function retireErasedDevices(deps: LifecycleDeps, batchSize = ERASED_SWEEP_BATCH): Promise<number> {
  const since = new Date(deps.clock.now().getTime() - ERASED_SWEEP_DAYS * 24 * 3600_000);
  let retired = 0;
  let after = "00000000-0000-0000-0000-000000000000";
  for (;;) {
    // The partial index Command_erased_idx holds just these commands, by completion; the
    // first erase to succeed names the actor.
    const erased = await deps.db.$queryRaw<Array<{ deviceId: string; type: string }>>`
      SELECT DISTINCT ON (c."deviceId") c."deviceId"::text AS "deviceId", c.type::text AS type
      FROM "Command" c JOIN "Device" d ON d.id = c."deviceId"
      WHERE c.type IN ('wipe', 'factory_reset') AND c.status = 'succeeded' AND c."completedAt" >= ${since}
        AND d."retiredAt" IS NULL AND c."deviceId" > ${after}::uuid
      ORDER BY c."deviceId", c."completedAt"
      LIMIT ${batchSize}`;
    for (const { deviceId, type } of erased) {
      try {
        if (!(await retireDevice(deps, deviceId, { name: `command:${type}` })).alreadyRetired) retired++;
      } catch (error) {
        deps.logger.error("erased device not retired; the next sweep tries again", {
          deviceId,
          message: error instanceof Error ? error.message : String(error),
        });
      }
    }
    if (erased.length < batchSize) return retired;
    after = erased.at(-1)!.deviceId;
  }
}

/**
 * Tells every instance a device's token is revoked. The database already refuses it; this
 * reaches the token caches and sockets at once. Should the bus be down, the caches hear of
 * it through their revocation feed within seconds (device-token-cache.ts), so the caller is
 * not failed for it.
 */
export async function announceRevocation(deps: Pick<AppDeps, "bus" | "logger">, deviceId: string, reason: RevocationReason): Promise<void> {
  await deps.bus.publishNow({ kind: "device_token_revoked", deviceId, reason }).catch((error: unknown) => {
    deps.logger.warn("token revocation not announced; other instances' caches drop it at their next revocation poll", {
      deviceId,
      message: error instanceof Error ? error.message : String(error),
    });
  });
}

/** Deletes a retired device with its commands and telemetry; the audit log keeps the fact. */
export async function deleteDevice(deps: LifecycleDeps, deviceId: string, actor: Actor): Promise<void> {
  const { db } = deps;
  await db.$transaction(async (tx) => {
    const device = await tx.device.findUnique({
      where: { id: deviceId },
      select: { retiredAt: true, alias: true, model: true, serialNumber: true, enrolledAt: true },
    });
    if (!device) throw new HttpError("not_found", "No device has this id");
    if (!device.retiredAt) throw new HttpError("conflict", "Only a retired device can be deleted: retire it first (POST /admin/devices/{deviceId}/retire)");
    // Counted before the cascade, so the audit says what went with the device.
    const [appPolicies, commands] = await Promise.all([tx.appPolicy.count({ where: { deviceId } }), tx.command.count({ where: { deviceId } })]);
    // Its commands leave their batches with it, so each batch's total counts only the
    // commands it still has: a finished batch stays finished (the batch rows are locked in
    // id order).
    await tx.$executeRaw`
      UPDATE "CommandBatch" b SET total = b.total - c.removed
      FROM (SELECT "batchId", count(*)::int AS removed FROM "Command" WHERE "deviceId" = ${deviceId}::uuid AND "batchId" IS NOT NULL GROUP BY "batchId" ORDER BY "batchId") c
      WHERE b.id = c."batchId"`;
    await tx.device.delete({ where: { id: deviceId } });
    await recordTokenRevocation(tx, deviceId, "deleted");
    await recordAudit(tx, {
      actor: actor.name,
      action: "device.delete",
      targetType: "device",
      targetId: deviceId,
      ip: actor.ip,
      details: {
        alias: device.alias,
        model: device.model,
        serialNumber: device.serialNumber,
        enrolledAt: device.enrolledAt.toISOString(),
        retiredAt: device.retiredAt.toISOString(),
        removed: { appPolicies, commands },
      },
    });
  });
  forgetDeviceToken(deps, deviceId);
  await announceRevocation(deps, deviceId, "deleted");
  deps.logger.info("device deleted", { deviceId });
}

/**
 * Starts re-keying a device through its own channel: a `rotate_token` command, signed with
 * the current command key like any other, carries the new token and command key sealed
 * with the current key. The new key is the next generation under the current master key
 * (COMMAND_KEY_ID), whichever master key the current one derives from: this is also how
 * the fleet-wide master key rotation moves each device (`rotateFleetCommandKeys`). The old
 * token keeps working until the device uses the new one (then it is dropped at once: proof
 * of possession, see `authenticateDevice`; a `succeeded` result alone completes nothing), at
 * most until the grace period ends. Only the new token's hash
 * is stored. A pending rotation that can no longer complete (see `rotationIsLive`) is
 * replaced, and the old token gets the new rotation's grace.
 */
export async function rotateDeviceToken(deps: LifecycleDeps & Pick<AppDeps, "env">, deviceId: string, actor: Actor): Promise<RotateTokenResponse> {
  const { db, clock, env, bus } = deps;
  const now = clock.now();
  const graceUntil = new Date(now.getTime() + env.DEVICE_TOKEN_ROTATION_GRACE_SECONDS * 1000);
  const secret = newSecret();
  const requestId = randomUUID();
  const commandKeyId = await db.$transaction(async (tx) => {
    const rows = await tx.$queryRaw<
      Array<{
        retiredAt: Date | null;
        pendingTokenHash: string | null;
        rotationGraceUntil: Date | null;
        commandKeyGeneration: number;
        commandMasterKeyId: string | null;
      }>
    >`
      SELECT "retiredAt", "pendingTokenHash", "rotationGraceUntil", "commandKeyGeneration", "commandMasterKeyId"
      FROM "Device" WHERE id = ${deviceId}::uuid FOR UPDATE`;
    const device = rows[0];
    if (!device) throw new HttpError("not_found", "No device has this id");
    if (device.retiredAt) throw new HttpError("conflict", "The device is retired");
    if (device.pendingTokenHash && (await rotationIsLive(tx, deviceId, device.rotationGraceUntil, now))) {
      throw new HttpError("conflict", `A rotation is already waiting for the device (its old token works until ${device.rotationGraceUntil?.toISOString()})`);
    }
    const current: CommandKeyRef = { masterKeyId: device.commandMasterKeyId, generation: device.commandKeyGeneration };
    if (!hasCommandKey(env, current)) {
      throw new HttpError(
        "conflict",
        `The device's command key derives from master key ${masterKeyIdOf(env, current.masterKeyId)}, which is not configured: set it again as COMMAND_MASTER_KEY_PREVIOUS, or enroll the device again`,
      );
    }
    const next = currentKeyRef(env, device.commandKeyGeneration + 1);
    const secrets: RotationSecrets = {
      deviceToken: formatToken(deviceId, secret),
      commandKey: commandKeyFor(env, deviceId, next),
      commandKeyId: commandKeyIdFor(env, next),
    };
    const sealed = await sealWithCommandKey(commandKeyFor(env, deviceId, current), JSON.stringify(secrets));
    await tx.device.update({
      where: { id: deviceId },
      data: {
        pendingTokenHash: hashSecret(secret),
        pendingKeyGeneration: next.generation,
        pendingMasterKeyId: next.masterKeyId,
        rotationGraceUntil: graceUntil,
      },
    });
    await tx.command.create({
      data: {
        requestId,
        deviceId,
        type: "rotate_token",
        payload: { sealed, commandKeyId: secrets.commandKeyId },
        createdAt: now,
        expiresAt: graceUntil,
        createdBy: actor.name,
        nextAttemptAt: now,
        events: { create: { status: "queued", at: now } },
      },
    });
    await recordTokenRevocation(tx, deviceId, "rotated");
    await recordAudit(tx, {
      actor: actor.name,
      action: "device.rotate_token",
      targetType: "device",
      targetId: deviceId,
      ip: actor.ip,
      details: { requestId, fromCommandKeyId: commandKeyIdFor(env, current), commandKeyId: secrets.commandKeyId, graceUntil: graceUntil.toISOString() },
    });
    return secrets.commandKeyId;
  });
  // Instances that cached the token must now see the rotation (and its grace period).
  forgetDeviceToken(deps, deviceId);
  await announceRevocation(deps, deviceId, "rotated");
  bus.publish({ kind: "command_status", change: { requestId, deviceId, batchId: null, status: "queued", at: now.toISOString() } });
  wakeDelivery(deps);
  deps.logger.info("device token rotation queued", { deviceId, requestId });
  return { device: await getDevice(deps, deviceId), requestId, commandKeyId, graceUntil: graceUntil.toISOString() };
}

/**
 * Whether the device's pending rotation can still complete: its grace has not passed and
 * its `rotate_token` command still waits for the device. One whose command was cancelled,
 * failed, expired or reported done without the new token ever being used is stale: a new
 * rotation replaces it (its token and key are never accepted).
 */
async function rotationIsLive(tx: Prisma.TransactionClient, deviceId: string, graceUntil: Date | null, now: Date): Promise<boolean> {
  if (!graceUntil || graceUntil <= now) return false;
  const [latest] = await tx.command.findMany({
    where: { deviceId, type: "rotate_token" },
    orderBy: [{ createdAt: "desc" }, { requestId: "desc" }],
    take: 1,
    select: { status: true, expiresAt: true },
  });
  return !!latest && UNFINISHED_COMMAND_STATUSES.includes(latest.status) && latest.expiresAt > now;
}

/**
 * A `rotate_token` command cancelled before it left the server: the device never saw the
 * new token, so its rotation is withdrawn and the current token works on without a grace
 * limit. Only the device's latest rotation is withdrawn (an older, superseded one's command
 * changes nothing). Cancelled after it was sent, the rotation stays pending (the device may
 * hold the new token) until the device uses it or the grace ends; a new rotation replaces it.
 */
export async function withdrawRotation(tx: DbOrTx, deviceId: string, requestId: string): Promise<void> {
  await tx.$executeRaw`
    UPDATE "Device" d SET "pendingTokenHash" = NULL, "pendingKeyGeneration" = NULL, "pendingMasterKeyId" = NULL, "rotationGraceUntil" = NULL
    FROM "Command" c
    WHERE d.id = ${deviceId}::uuid AND d."pendingTokenHash" IS NOT NULL AND c."requestId" = ${requestId}::uuid
      AND NOT EXISTS (
        SELECT 1 FROM "Command" later WHERE later."deviceId" = d.id AND later.type = 'rotate_token'
          AND (later."createdAt", later."requestId") > (c."createdAt", c."requestId"))`;
}

function selectionWhere(target: DeviceSelection): Prisma.Sql {
  const inService = Prisma.sql`"retiredAt" IS NULL`;
  if ("deviceIds" in target) return Prisma.sql`${inService} AND id = ANY(${target.deviceIds}::uuid[])`;
  if ("group" in target) return Prisma.sql`${inService} AND groups @> ARRAY[${target.group}]::text[]`;
  if ("enrollmentTokenId" in target) return Prisma.sql`${inService} AND "enrollmentTokenId" = ${target.enrollmentTokenId}::uuid`;
  return Prisma.sql`${inService} AND id IN (SELECT id FROM "DeviceListing" WHERE ${deviceFilters(target.filter)})`;
}

/**
 * Sets groups and aliases of many devices in one statement, recomputing the effective
 * policy of those whose groups it changes, and retires them one by one (each retirement as
 * POST /admin/devices/{id}/retire does it). At most
 * MAX_BULK_EDIT_DEVICES devices: a bigger selection is refused before anything changes.
 */
export async function bulkEditDevices(deps: LifecycleDeps, input: BulkEditDevicesRequest, actor: Actor): Promise<BulkEditDevicesResponse> {
  const { db, clock } = deps;
  const rows = await db.$queryRaw<Array<{ id: string }>>`
    SELECT id FROM "Device" WHERE ${selectionWhere(input.target)} ORDER BY "enrolledAt", id LIMIT ${MAX_BULK_EDIT_DEVICES + 1}`;
  if (rows.length > MAX_BULK_EDIT_DEVICES) {
    throw new HttpError("validation_failed", `The selection matches more than ${MAX_BULK_EDIT_DEVICES} devices`, [
      { path: "target", message: `Narrow the selection to at most ${MAX_BULK_EDIT_DEVICES} devices` },
    ]);
  }
  const ids = rows.map((row) => row.id);
  const sets: Prisma.Sql[] = [];
  if (input.setGroups) sets.push(Prisma.sql`groups = ${[...new Set(input.setGroups)]}::text[]`);
  if (input.addGroups || input.removeGroups) {
    let groups = Prisma.sql`d.groups`;
    if (input.removeGroups) groups = Prisma.sql`ARRAY(SELECT g FROM unnest(${groups}) g WHERE NOT (g = ANY(${input.removeGroups}::text[])))`;
    if (input.addGroups) groups = Prisma.sql`${groups} || ARRAY(SELECT DISTINCT a FROM unnest(${input.addGroups}::text[]) a WHERE NOT (a = ANY(${groups})))`;
    sets.push(Prisma.sql`groups = ${groups}`);
  }
  // Numbered in order of enrollment, wide enough for the whole selection: Till-001, Till-002...
  const width = Math.max(3, String(ids.length).length);
  if (input.aliasPrefix) sets.push(Prisma.sql`alias = ${input.aliasPrefix} || lpad(s.n::text, ${width}, '0')`);
  let updated = 0;
  if (sets.length > 0 && ids.length > 0) {
    const now = clock.now();
    sets.push(Prisma.sql`"updatedAt" = ${now}`);
    const groupsChange = !!(input.setGroups || input.addGroups || input.removeGroups);
    updated = await db.$transaction(async (tx) => {
      // Groups decide which policies apply: the devices get their new effective policy, queued with
      // the change. Queue rows before devices, the order the recompute worker locks them in (no deadlock).
      if (groupsChange) await queueRecomputeOf(tx, ids, now);
      return tx.$executeRaw`
        WITH locked AS (${devicesLockedInIdOrder(Prisma.sql`id = ANY(${ids}::uuid[])`)})
        UPDATE "Device" d SET ${Prisma.join(sets, ", ")}
        FROM locked JOIN (SELECT id, row_number() OVER (ORDER BY "enrolledAt", id) AS n FROM "Device" WHERE id = ANY(${ids}::uuid[])) s ON s.id = locked.id
        WHERE d.id = s.id`;
    });
    if (groupsChange) await recomputeQueuedSoon(deps);
  }
  let retired = 0;
  let cancelledCommands = 0;
  if (input.retire) {
    for (const id of ids) {
      const outcome = await retireDevice(deps, id, actor);
      if (!outcome.alreadyRetired) retired++;
      cancelledCommands += outcome.cancelledCommands;
    }
  }
  const { target, ...changes } = input;
  await recordAudit(db, {
    actor: actor.name,
    action: "device.bulk_edit",
    targetType: "devices",
    ip: actor.ip,
    details: { target, changes, matched: ids.length, updated, retired, cancelledCommands },
  });
  deps.logger.info("devices bulk edited", { matched: ids.length, updated, retired });
  return { matched: ids.length, updated, retired, cancelledCommands };
}
