import { randomUUID } from "node:crypto";
import {
  type AppListChange,
  MAX_APP_CHANGES,
  MAX_TELEMETRY_POINTS,
  type AlertSettings,
  type AppPolicy as AppPolicyView,
  type CreateAppPolicyRequest,
  type DeviceLiveState,
  type DeviceView,
  type FleetSummary,
  type ListAlertsResponse,
  type ListGroupsResponse,
  type TelemetryResponse,
  type UpdateAlertSettingsRequest,
  type UpdateAppPolicyRequest,
  type UpdateDeviceRequest,
} from "@mdm/contracts";
import type { AppDeps } from "../../deps";
import { type AppPolicy, type Device, Prisma } from "../../generated/prisma/client";
import { recordAudit } from "../../lib/audit";
import { HttpError } from "../../lib/http-error";
import { holdsLiveSocket } from "../../realtime/presence";
import { UNFINISHED_COMMAND_STATUSES } from "../commands/command-transitions";
import { toDeviceView } from "../devices/devices.service";
import { recomputeDevices } from "../policies/policies.service";

/** Whether a device holds a live socket, since when, or since when it has not. */
export function socketState(device: Pick<Device, "socketInstanceId" | "socketLeaseExpiresAt" | "socketConnectedAt" | "socketDisconnectedAt">) {
  const connected = holdsLiveSocket(device, new Date());
  return {
    connected,
    connectedSince: connected ? (device.socketConnectedAt?.toISOString() ?? null) : null,
    disconnectedSince: connected ? null : (device.socketDisconnectedAt?.toISOString() ?? null),
  };
}

export function toLiveState(
  device: Pick<Device, "id" | "online" | "lastSeenAt" | "batteryLevel" | "batteryCharging" | "memoryAvailable" | "networkType"> &
    Parameters<typeof socketState>[0],
): DeviceLiveState {
  return {
    deviceId: device.id,
    online: device.online,
    lastSeenAt: device.lastSeenAt?.toISOString() ?? null,
    ...socketState(device),
    batteryLevel: device.batteryLevel,
    batteryCharging: device.batteryCharging,
    memoryAvailable: device.memoryAvailable === null ? null : Number(device.memoryAvailable),
    networkType: device.networkType,
  };
}

export async function updateDevice(
  { db, bus, clock }: Pick<AppDeps, "db" | "bus" | "clock">,
  deviceId: string,
  input: UpdateDeviceRequest,
  actor: { name: string; ip?: string },
): Promise<DeviceView> {
  const groups = input.groups ? [...new Set(input.groups)] : undefined;
  const device = await db.device.update({ where: { id: deviceId }, data: { alias: input.alias, notes: input.notes, groups } }).catch((error: unknown) => {
    if (error instanceof Prisma.PrismaClientKnownRequestError && error.code === "P2025") throw new HttpError("not_found", "No device has this id");
    throw error;
  });
  await recordAudit(db, { actor: actor.name, action: "device.update", targetType: "device", targetId: deviceId, ip: actor.ip, details: input });
  // Group assignments of policies follow the device's groups.
  if (groups) await recomputeDevices({ db, bus, clock }, [deviceId]);
  bus.publish({ kind: "device_state", state: toLiveState(device) });
  return toDeviceView(device);
}

const LOW_BATTERY = 20;

export async function fleetSummary({ db, clock }: Pick<AppDeps, "db" | "clock">): Promise<FleetSummary> {
  // The device counts in one pass over the narrow DeviceListing: no index may cover online
  // or batteryLevel (heartbeats change them, and must stay HOT updates), so each count
  // would be a scan of its own.
  const [[counts], commandsInFlight] = await Promise.all([
    db.$queryRaw<Array<{ total: number; online: number; lowBattery: number }>>`
      SELECT count(*)::int AS total, count(*) FILTER (WHERE online)::int AS online,
        count(*) FILTER (WHERE "batteryLevel" < ${LOW_BATTERY})::int AS "lowBattery"
      FROM "DeviceListing" WHERE "retiredAt" IS NULL`,
    db.command.count({ where: { status: { in: UNFINISHED_COMMAND_STATUSES }, expiresAt: { gt: clock.now() } } }),
  ]);
  const { total, online, lowBattery } = counts!;
  return { total, online, offline: total - online, lowBattery, commandsInFlight };
}

export async function listGroups({ db }: Pick<AppDeps, "db">): Promise<ListGroupsResponse> {
  const rows = await db.$queryRaw<Array<{ name: string; devices: bigint; online: bigint }>>`
    SELECT g AS name, count(*) AS devices, count(*) FILTER (WHERE online) AS online
    FROM "DeviceListing", unnest(groups) AS g WHERE "retiredAt" IS NULL GROUP BY g ORDER BY g`;
  return { groups: rows.map((row) => ({ name: row.name, devices: Number(row.devices), online: Number(row.online) })) };
}

type BucketRow = {
  bucket: number;
  at: Date;
  samples: number;
  batteryLevel: number | null;
  batteryCharging: boolean | null;
  memoryTotal: bigint | null;
  memoryAvailable: bigint | null;
  storageAvailable: bigint | null;
  networkType: string | null;
};

/**
 * A device's history over the last `hours`, aggregated by PostgreSQL into at most
 * MAX_TELEMETRY_POINTS buckets counted from the window's start, each placed at its first reading (so the answer's size does
 * not grow with the heartbeat rate), and the app list's recorded changes.
 */
export async function deviceTelemetry({ db, clock }: Pick<AppDeps, "db" | "clock">, deviceId: string, hours: number): Promise<TelemetryResponse> {
  if (!(await db.device.findUnique({ where: { id: deviceId }, select: { id: true } }))) throw new HttpError("not_found", "No device has this id");
  const now = clock.now();
  const since = new Date(now.getTime() - hours * 3600_000);
  const bucketSeconds = Math.ceil((hours * 3600) / MAX_TELEMETRY_POINTS);
  // Latest non-null reading of a column within the bucket.
  const latest = (column: string) => Prisma.raw(`(array_agg("${column}" ORDER BY "receivedAt" DESC) FILTER (WHERE "${column}" IS NOT NULL))[1]`);
  const [buckets, changes] = await Promise.all([
    db.$queryRaw<BucketRow[]>`
      SELECT least(floor(extract(epoch FROM "receivedAt" - ${since}::timestamptz) / ${bucketSeconds}), ${MAX_TELEMETRY_POINTS - 1})::int AS bucket,
        min("receivedAt") AS at,
        count(*)::int AS samples,
        round(avg("batteryLevel"))::int AS "batteryLevel",
        ${latest("batteryCharging")} AS "batteryCharging",
        ${latest("memoryTotal")} AS "memoryTotal",
        round(avg("memoryAvailable"))::bigint AS "memoryAvailable",
        round(avg("storageAvailable"))::bigint AS "storageAvailable",
        ${latest("networkType")} AS "networkType"
      FROM "TelemetryEvent"
      WHERE "deviceId" = ${deviceId}::uuid AND "receivedAt" >= ${since} AND "receivedAt" <= ${now}
      GROUP BY 1 ORDER BY 1 LIMIT ${MAX_TELEMETRY_POINTS}`,
    db.$queryRaw<Array<{ at: Date; apps: unknown }>>`
      SELECT "receivedAt" AS at, "appStatus" AS apps FROM "TelemetryEvent"
      WHERE "deviceId" = ${deviceId}::uuid AND "receivedAt" >= ${since} AND "receivedAt" <= ${now} AND "appStatus" IS NOT NULL
      ORDER BY "receivedAt" DESC LIMIT ${MAX_APP_CHANGES}`,
  ]);
  const toNumber = (value: bigint | null) => (value === null ? null : Number(value));
  return {
    points: buckets.map((row) => ({
      // The bucket's first reading, not its start: the chart (and the network history) begin
      // at the first heartbeat, never before the device enrolled.
      at: row.at.toISOString(),
      batteryLevel: row.batteryLevel,
      batteryCharging: row.batteryCharging,
      memoryTotal: toNumber(row.memoryTotal),
      memoryAvailable: toNumber(row.memoryAvailable),
      storageAvailable: toNumber(row.storageAvailable),
      networkType: row.networkType,
      samples: row.samples,
    })),
    bucketSeconds,
    appChanges: changes
      .reverse()
      .filter((change) => Array.isArray(change.apps))
      .map((change) => ({ at: change.at.toISOString(), apps: change.apps as AppListChange["apps"] })),
  };
}

// ---- Auto-relaunch policies ------------------------------------------------------------

function toPolicyView(policy: AppPolicy): AppPolicyView {
  return { ...policy, createdAt: policy.createdAt.toISOString() };
}

export async function listPolicies({ db }: Pick<AppDeps, "db">) {
  return { policies: (await db.appPolicy.findMany({ orderBy: { createdAt: "asc" } })).map(toPolicyView) };
}

export async function createPolicy({ db }: Pick<AppDeps, "db">, input: CreateAppPolicyRequest, actor: { name: string; ip?: string }): Promise<AppPolicyView> {
  if ("deviceId" in input && !(await db.device.findUnique({ where: { id: input.deviceId }, select: { id: true } }))) {
    throw new HttpError("not_found", "No device has this id");
  }
  try {
    const policy = await db.appPolicy.create({ data: { id: randomUUID(), ...input } });
    await recordAudit(db, { actor: actor.name, action: "policy.create", targetType: "policy", targetId: policy.id, ip: actor.ip, details: input });
    return toPolicyView(policy);
  } catch (error) {
    if (error instanceof Prisma.PrismaClientKnownRequestError && error.code === "P2002")
      throw new HttpError("conflict", "A policy for this app and target exists");
    throw error;
  }
}

export async function updatePolicy(
  { db }: Pick<AppDeps, "db">,
  policyId: string,
  input: UpdateAppPolicyRequest,
  actor: { name: string; ip?: string },
): Promise<AppPolicyView> {
  try {
    const policy = await db.appPolicy.update({ where: { id: policyId }, data: input });
    await recordAudit(db, { actor: actor.name, action: "policy.update", targetType: "policy", targetId: policyId, ip: actor.ip, details: input });
    return toPolicyView(policy);
  } catch (error) {
    if (error instanceof Prisma.PrismaClientKnownRequestError && error.code === "P2025") throw new HttpError("not_found", "No policy has this id");
    if (error instanceof Prisma.PrismaClientKnownRequestError && error.code === "P2002")
      throw new HttpError("conflict", "A policy for this app and target exists");
    throw error;
  }
}

export async function deletePolicy({ db }: Pick<AppDeps, "db">, policyId: string, actor: { name: string; ip?: string }): Promise<void> {
  const { count } = await db.appPolicy.deleteMany({ where: { id: policyId } });
  if (count === 0) throw new HttpError("not_found", "No policy has this id");
  await recordAudit(db, { actor: actor.name, action: "policy.delete", targetType: "policy", targetId: policyId, ip: actor.ip });
}

// ---- Alert settings --------------------------------------------------------------------

export async function getAlertSettings({ db, env }: Pick<AppDeps, "db" | "env">): Promise<AlertSettings> {
  const row = await db.alertSettings.upsert({ where: { id: 1 }, update: {}, create: { id: 1, offlineAfterSeconds: env.OFFLINE_AFTER_SECONDS } });
  return {
    enabled: row.enabled,
    offlineAfterSeconds: row.offlineAfterSeconds,
    recipients: row.recipients,
    groupOfflinePercent: row.groupOfflinePercent,
    cooldownMinutes: row.cooldownMinutes,
    alertWindowMinutes: row.alertWindowMinutes,
    lowBatteryPercent: row.lowBatteryPercent,
  };
}

export async function updateAlertSettings(
  deps: Pick<AppDeps, "db" | "env">,
  input: UpdateAlertSettingsRequest,
  actor: { name: string; ip?: string },
): Promise<AlertSettings> {
  await getAlertSettings(deps);
  await deps.db.alertSettings.update({ where: { id: 1 }, data: input });
  await recordAudit(deps.db, { actor: actor.name, action: "alert_settings.update", ip: actor.ip, details: input });
  return getAlertSettings(deps);
}

export async function listAlerts({ db }: Pick<AppDeps, "db">): Promise<ListAlertsResponse> {
  const alerts = await db.alert.findMany({ orderBy: { id: "desc" }, take: 200, include: { outboxMail: { select: { id: true, status: true } } } });
  return {
    alerts: alerts.map((alert) => ({
      id: alert.id.toString(),
      kind: alert.kind,
      deviceId: alert.deviceId,
      group: alert.group,
      subject: alert.subject,
      recipients: alert.recipients,
      raisedAt: alert.sentAt.toISOString(),
      mail: alert.outboxMail ? { id: alert.outboxMail.id.toString(), status: alert.outboxMail.status } : null,
    })),
  };
}
