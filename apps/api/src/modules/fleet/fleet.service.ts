import { randomUUID } from "node:crypto";
import type {
  AlertSettings,
  AppPolicy as AppPolicyView,
  CreateAppPolicyRequest,
  DeviceLiveState,
  DeviceView,
  FleetSummary,
  ListAlertsResponse,
  ListGroupsResponse,
  TelemetryResponse,
  UpdateAlertSettingsRequest,
  UpdateDeviceRequest,
} from "@mdm/contracts";
import type { AppDeps } from "../../deps";
import { type AppPolicy, type Device, Prisma } from "../../generated/prisma/client";
import { recordAudit } from "../../lib/audit";
import { HttpError } from "../../lib/http-error";
import { holdsLiveSocket } from "../../realtime/presence";
import { toDeviceView } from "../devices/devices.service";

/** Whether a device holds a live socket, since when, or since when it has not. */
export function socketState(device: Pick<Device, "socketInstanceId" | "socketLeaseExpiresAt" | "socketConnectedAt" | "socketDisconnectedAt">) {
  const connected = holdsLiveSocket(device, new Date());
  return {
    connected,
    connectedSince: connected ? (device.socketConnectedAt?.toISOString() ?? null) : null,
    disconnectedSince: connected ? null : (device.socketDisconnectedAt?.toISOString() ?? null),
  };
}

export function toLiveState(device: Device): DeviceLiveState {
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
  { db, bus }: Pick<AppDeps, "db" | "bus">,
  deviceId: string,
  input: UpdateDeviceRequest,
  actor: { name: string; ip?: string },
): Promise<DeviceView> {
  const groups = input.groups ? [...new Set(input.groups)] : undefined;
  const device = await db.device
    .update({ where: { id: deviceId }, data: { alias: input.alias, notes: input.notes, groups } })
    .catch((error: unknown) => {
      if (error instanceof Prisma.PrismaClientKnownRequestError && error.code === "P2025") throw new HttpError("not_found", "No device has this id");
      throw error;
    });
  await recordAudit(db, { actor: actor.name, action: "device.update", targetType: "device", targetId: deviceId, ip: actor.ip, details: input });
  bus.publish({ kind: "device_state", state: toLiveState(device) });
  return toDeviceView(device);
}

const LOW_BATTERY = 20;

export async function fleetSummary({ db, clock }: Pick<AppDeps, "db" | "clock">): Promise<FleetSummary> {
  const [total, online, lowBattery, commandsInFlight] = await Promise.all([
    db.device.count(),
    db.device.count({ where: { online: true } }),
    db.device.count({ where: { batteryLevel: { lt: LOW_BATTERY } } }),
    db.command.count({ where: { status: { in: ["queued", "sent", "acknowledged"] }, expiresAt: { gt: clock.now() } } }),
  ]);
  return { total, online, offline: total - online, lowBattery, commandsInFlight };
}

export async function listGroups({ db }: Pick<AppDeps, "db">): Promise<ListGroupsResponse> {
  const rows = await db.$queryRaw<Array<{ name: string; devices: bigint; online: bigint }>>`
    SELECT g AS name, count(*) AS devices, count(*) FILTER (WHERE online) AS online
    FROM "Device", unnest(groups) AS g GROUP BY g ORDER BY g`;
  return { groups: rows.map((row) => ({ name: row.name, devices: Number(row.devices), online: Number(row.online) })) };
}

const MAX_POINTS = 500;

export async function deviceTelemetry({ db, clock }: Pick<AppDeps, "db" | "clock">, deviceId: string, hours: number): Promise<TelemetryResponse> {
  if (!(await db.device.findUnique({ where: { id: deviceId }, select: { id: true } }))) throw new HttpError("not_found", "No device has this id");
  const since = new Date(clock.now().getTime() - hours * 3600_000);
  const rows = await db.telemetryEvent.findMany({
    where: { deviceId, receivedAt: { gte: since } },
    orderBy: { receivedAt: "asc" },
    select: { receivedAt: true, batteryLevel: true, batteryCharging: true, memoryTotal: true, memoryAvailable: true, storageAvailable: true },
  });
  // A chart needs a few hundred points, not every heartbeat of two days.
  const step = Math.max(1, Math.ceil(rows.length / MAX_POINTS));
  const toNumber = (value: bigint | null) => (value === null ? null : Number(value));
  return {
    points: rows
      .filter((_, index) => index % step === 0 || index === rows.length - 1)
      .map((row) => ({
        at: row.receivedAt.toISOString(),
        batteryLevel: row.batteryLevel,
        batteryCharging: row.batteryCharging,
        memoryTotal: toNumber(row.memoryTotal),
        memoryAvailable: toNumber(row.memoryAvailable),
        storageAvailable: toNumber(row.storageAvailable),
      })),
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
    if (error instanceof Prisma.PrismaClientKnownRequestError && error.code === "P2002") throw new HttpError("conflict", "A policy for this app and target exists");
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
