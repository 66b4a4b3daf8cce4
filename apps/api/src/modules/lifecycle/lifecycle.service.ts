import type { CommandStatus, RetireDeviceResponse } from "@mdm/contracts";
import type { AppDeps } from "../../deps";
import { recordAudit } from "../../lib/audit";
import { HttpError } from "../../lib/http-error";
import { forgetDeviceToken, getDevice } from "../devices/devices.service";
import { toLiveState } from "../fleet/fleet.service";

type LifecycleDeps = Pick<AppDeps, "db" | "clock" | "bus" | "logger">;
type Actor = { name: string; ip?: string };

const PENDING: CommandStatus[] = ["queued", "sent", "acknowledged"];

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
    const cancelled = await tx.command.updateManyAndReturn({
      where: { deviceId, status: { in: PENDING } },
      data: { status: "cancelled", completedAt: now, nextAttemptAt: null, errorMessage: reason },
      select: { requestId: true, batchId: true },
    });
    await tx.commandEvent.createMany({ data: cancelled.map((command) => ({ requestId: command.requestId, status: "cancelled" as const, at: now, detail: reason })) });
    await recordAudit(tx, { actor: actor.name, action: "device.retire", targetType: "device", targetId: deviceId, ip: actor.ip, details: { cancelledCommands: cancelled.length } });
    return { device, cancelled };
  });
  if (!outcome) return { device: await getDevice(deps, deviceId), cancelledCommands: 0, alreadyRetired: true };
  forgetDeviceToken(deviceId);
  await announceRevocation(deps, deviceId, "retired");
  for (const command of outcome.cancelled) {
    bus.publish({ kind: "command_status", change: { requestId: command.requestId, deviceId, batchId: command.batchId, status: "cancelled", at: now.toISOString() } });
  }
  bus.publish({ kind: "device_state", state: toLiveState(outcome.device) });
  deps.logger.info("device retired", { deviceId, cancelledCommands: outcome.cancelled.length });
  return { device: await getDevice(deps, deviceId), cancelledCommands: outcome.cancelled.length, alreadyRetired: false };
}

/**
 * Tells every instance a device's token is revoked. The database already refuses it; this
 * reaches the token caches and sockets. Should the bus be down, the caches' TTL bounds the
 * delay, so the caller is not failed for it.
 */
export async function announceRevocation(deps: Pick<AppDeps, "bus" | "logger">, deviceId: string, reason: "retired" | "deleted" | "rotated"): Promise<void> {
  await deps.bus.publishNow({ kind: "device_token_revoked", deviceId, reason }).catch((error: unknown) => {
    deps.logger.warn("token revocation not announced; other instances' caches drop it within their TTL", {
      deviceId,
      message: error instanceof Error ? error.message : String(error),
    });
  });
}

/** Deletes a retired device with its commands and telemetry; the audit log keeps the fact. */
export async function deleteDevice(deps: LifecycleDeps, deviceId: string, actor: Actor): Promise<void> {
  const { db } = deps;
  await db.$transaction(async (tx) => {
    const device = await tx.device.findUnique({ where: { id: deviceId }, select: { retiredAt: true, alias: true, model: true, serialNumber: true, enrolledAt: true } });
    if (!device) throw new HttpError("not_found", "No device has this id");
    if (!device.retiredAt) throw new HttpError("conflict", "Only a retired device can be deleted: retire it first (POST /admin/devices/{deviceId}/retire)");
    await tx.device.delete({ where: { id: deviceId } });
    await recordAudit(tx, {
      actor: actor.name,
      action: "device.delete",
      targetType: "device",
      targetId: deviceId,
      ip: actor.ip,
      details: { alias: device.alias, model: device.model, serialNumber: device.serialNumber, enrolledAt: device.enrolledAt.toISOString(), retiredAt: device.retiredAt.toISOString() },
    });
  });
  forgetDeviceToken(deviceId);
  await announceRevocation(deps, deviceId, "deleted");
  deps.logger.info("device deleted", { deviceId });
}
