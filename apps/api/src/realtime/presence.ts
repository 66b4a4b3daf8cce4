import type { AppDeps } from "../deps";
import { devicesLockedInIdOrder } from "../db/device-locks";
import { type Device, Prisma } from "../generated/prisma/client";
import { wakeDelivery } from "../modules/commands/delivery";
import { toLiveState } from "../modules/fleet/fleet.service";

// Which instance holds a device's WebSocket is a lease on the device row, not a flag only
// its writer clears: the holder renews the leases of all its sockets in one statement,
// and when an instance dies without cleaning up, its devices count as disconnected once
// the lease lapses (WS_LEASE_SECONDS), so their commands go by push instead.

type PresenceDeps = Pick<AppDeps, "db" | "clock" | "env" | "instanceId">;

const leaseEnd = ({ clock, env }: Pick<AppDeps, "clock" | "env">) => new Date(clock.now().getTime() + env.WS_LEASE_SECONDS * 1000);

/** Whether a device row says a live socket holds it at `now`. */
export function holdsLiveSocket(device: { socketInstanceId: string | null; socketLeaseExpiresAt: Date | null }, now: Date): boolean {
  return device.socketInstanceId !== null && device.socketLeaseExpiresAt !== null && device.socketLeaseExpiresAt > now;
}

/** Tells dashboards the current socket state of these devices (after a connect, close or lapse). */
export async function publishSocketStates(deps: Pick<AppDeps, "db" | "bus">, deviceIds: string[]): Promise<void> {
  if (deviceIds.length === 0) return;
  const devices = await deps.db.device.findMany({ where: { id: { in: deviceIds } } });
  for (const device of devices) deps.bus.publish({ kind: "device_state", state: toLiveState(device) });
}

export type LeasedDevice = Device & { dueCommands: number };

/**
 * Takes the leases of these devices' new sockets, then makes their unfinished commands due
 * (the delivery worker sends them over the socket): two statements for the whole batch.
 * Returns the devices leased, as they now are, with how many commands were made due; a
 * device retired or deleted meanwhile is not among them.
 *
 * Two statements, not one: a command created while the lease is being written is claimed by
 * a worker that does not see the lease yet (it pushes, and retries minutes later). Made due
 * by a statement that starts once the lease is committed, it is found and sent at once; in
 * the lease's own statement (one snapshot) it was missed.
 */
export async function takeSocketLeases(deps: PresenceDeps, deviceIds: string[]): Promise<LeasedDevice[]> {
  if (deviceIds.length === 0) return [];
  const now = deps.clock.now();
  const leased = await deps.db.$queryRaw<Device[]>`
    WITH locked AS (${devicesLockedInIdOrder(Prisma.sql`id = ANY(${deviceIds}::uuid[]) AND "retiredAt" IS NULL`)})
    UPDATE "Device" d SET "socketInstanceId" = ${deps.instanceId}, "socketConnectedAt" = ${now}, "socketLeaseExpiresAt" = ${leaseEnd(deps)}
    FROM locked WHERE d.id = locked.id
    RETURNING d.*`;
  if (leased.length === 0) return [];
  const due = await deps.db.$queryRaw<Array<{ deviceId: string; n: number }>>`
    WITH due AS (
      UPDATE "Command" SET "nextAttemptAt" = ${now}
      WHERE "deviceId" = ANY(${leased.map((device) => device.id)}::uuid[]) AND status IN ('queued', 'sent') AND "expiresAt" > ${now}
      RETURNING "deviceId")
    SELECT "deviceId", count(*)::int AS n FROM due GROUP BY "deviceId"`;
  const dueOf = new Map(due.map((row) => [row.deviceId, row.n]));
  return leased.map((device) => ({ ...device, dueCommands: dueOf.get(device.id) ?? 0 }));
}

/**
 * Gives up this instance's leases on these devices, in one statement (one that reconnected
 * elsewhere keeps its new one). Returns the devices it released, as they now are.
 */
export async function releaseSocketLeases(deps: PresenceDeps, deviceIds: string[]): Promise<Device[]> {
  if (deviceIds.length === 0) return [];
  return deps.db.$queryRaw<Device[]>`
    WITH locked AS (${devicesLockedInIdOrder(Prisma.sql`id = ANY(${deviceIds}::uuid[]) AND "socketInstanceId" = ${deps.instanceId}`)})
    UPDATE "Device" d SET "socketInstanceId" = NULL, "socketConnectedAt" = NULL, "socketLeaseExpiresAt" = NULL, "socketDisconnectedAt" = ${deps.clock.now()}
    FROM locked WHERE d.id = locked.id
    RETURNING d.*`;
}

/**
 * Extends the leases of the sockets this instance holds, in one statement. A lease that
 * lapsed meanwhile (the database was out of reach) is taken back, unless the device has
 * connected to another instance since. A retired device's lease is not renewed. Returns
 * the devices of these that were retired or deleted: their sockets must close (their
 * revocation event may never have reached this instance).
 */
export async function renewSocketLeases(deps: PresenceDeps, deviceIds: string[]): Promise<string[]> {
  if (deviceIds.length === 0) return [];
  const renewed = await deps.db.$queryRaw<Array<{ id: string }>>`
    WITH locked AS (${devicesLockedInIdOrder(
      Prisma.sql`id = ANY(${deviceIds}::uuid[]) AND "retiredAt" IS NULL AND ("socketInstanceId" = ${deps.instanceId} OR "socketInstanceId" IS NULL)`,
    )})
    UPDATE "Device" d SET "socketInstanceId" = ${deps.instanceId}, "socketLeaseExpiresAt" = ${leaseEnd(deps)}, "updatedAt" = ${deps.clock.now()}
    FROM locked WHERE d.id = locked.id
    RETURNING d.id`;
  if (renewed.length === deviceIds.length) return [];
  const done = new Set(renewed.map((device) => device.id));
  const rest = deviceIds.filter((id) => !done.has(id));
  const inService = await deps.db.device.findMany({ where: { id: { in: rest }, retiredAt: null }, select: { id: true } });
  const kept = new Set(inService.map((device) => device.id));
  return rest.filter((id) => !kept.has(id));
}

/**
 * Clears leases that lapsed (their instance died, or lost the database for a lease
 * period) and makes those devices' unfinished commands due at once, so the delivery worker
 * tries push now instead of at its next backoff step. Returns how many devices it freed.
 */
export async function sweepSocketLeases(deps: Pick<AppDeps, "db" | "clock" | "bus">): Promise<number> {
  const now = deps.clock.now();
  const [swept] = await deps.db.$queryRaw<Array<{ devices: string[]; commands: number }>>`
    WITH locked AS (${devicesLockedInIdOrder(Prisma.sql`"socketInstanceId" IS NOT NULL AND "socketLeaseExpiresAt" < ${now}`)}),
    lapsed AS (
      UPDATE "Device" d SET "socketInstanceId" = NULL, "socketConnectedAt" = NULL, "socketLeaseExpiresAt" = NULL, "socketDisconnectedAt" = ${now}
      FROM locked WHERE d.id = locked.id
      RETURNING d.id),
    due AS (
      UPDATE "Command" SET "nextAttemptAt" = ${now}
      WHERE "deviceId" IN (SELECT id FROM lapsed) AND status IN ('queued', 'sent') AND "expiresAt" > ${now}
      RETURNING 1)
    SELECT coalesce((SELECT array_agg(id::text) FROM lapsed), '{}') AS devices, (SELECT count(*) FROM due)::int AS commands`;
  if (swept && swept.commands > 0) wakeDelivery(deps);
  const freed = swept?.devices ?? [];
  await publishSocketStates(deps, freed);
  return freed.length;
}
