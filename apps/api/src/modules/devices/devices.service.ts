import { createHmac, randomUUID } from "node:crypto";
import type {
  DeviceFacts,
  DeviceView,
  HeartbeatRequest,
  ListDevicesQuery,
  ListDevicesResponse,
  RegisterResponse,
} from "@mdm/contracts";
import type { AppDeps } from "../../deps";
import type { Device, Prisma } from "../../generated/prisma/client";
import { HttpError } from "../../lib/http-error";
import { formatToken, hashSecret, newSecret, parseToken, secretMatches } from "../../lib/secrets";
import { consumeEnrollmentToken } from "../enrollment/enrollment.service";

/**
 * The key a device verifies command signatures with. Derived from HMAC_SECRET and the
 * device id, so it is never stored, and one device's key cannot sign for another.
 */
export function commandKeyFor(hmacSecret: string, deviceId: string): string {
  return createHmac("sha256", hmacSecret).update(`command-key:${deviceId}`).digest("hex");
}

function factsData(facts: DeviceFacts) {
  return {
    model: facts.model,
    manufacturer: facts.manufacturer,
    osVersion: facts.osVersion,
    sdkInt: facts.sdkInt,
    appVersion: facts.appVersion,
    serialNumber: facts.serialNumber,
    ...(facts.fcmToken ? { fcmToken: facts.fcmToken, fcmTokenInvalidAt: null } : {}),
  };
}

export async function registerDevice(
  { db, clock, env }: Pick<AppDeps, "db" | "clock" | "env">,
  enrollmentToken: string,
  facts: DeviceFacts,
): Promise<RegisterResponse> {
  const deviceId = randomUUID();
  const secret = newSecret();
  await db.$transaction(async (tx) => {
    const enrollmentTokenId = await consumeEnrollmentToken(tx, clock, enrollmentToken);
    await tx.device.create({ data: { id: deviceId, tokenHash: hashSecret(secret), enrollmentTokenId, ...factsData(facts) } });
  });
  return {
    deviceId,
    deviceToken: formatToken(deviceId, secret),
    commandKey: commandKeyFor(env.HMAC_SECRET, deviceId),
    heartbeatIntervalSeconds: env.HEARTBEAT_INTERVAL_SECONDS,
  };
}

/** Resolves `Authorization: Bearer <device token>` to a device id, or throws 401. */
export async function authenticateDevice({ db }: Pick<AppDeps, "db">, authorization: string | undefined): Promise<string> {
  const unauthorized = new HttpError("unauthorized", "Send a valid device token as Authorization: Bearer <token>");
  const match = /^Bearer\s+(\S+)$/i.exec(authorization ?? "");
  const parsed = match ? parseToken(match[1]!) : undefined;
  if (!parsed) throw unauthorized;
  const device = await db.device.findUnique({ where: { id: parsed.id }, select: { tokenHash: true } });
  if (!device || !secretMatches(parsed.secret, device.tokenHash)) throw unauthorized;
  return parsed.id;
}

/**
 * Updates the device's live state with the sections the heartbeat carries, marks it
 * online and appends a telemetry event. Returns the updated device.
 */
export async function recordHeartbeat({ db, clock }: Pick<AppDeps, "db" | "clock">, deviceId: string, heartbeat: HeartbeatRequest): Promise<Device> {
  const now = clock.now();
  const { battery, memory, storage, network, apps } = heartbeat;
  const deviceTime = new Date(heartbeat.deviceTime);
  const [device] = await db.$transaction([
    db.device.update({
      where: { id: deviceId },
      data: {
        lastSeenAt: now,
        online: true,
        offlineSince: null,
        deviceTime,
        ...(battery ? { batteryLevel: battery.level, batteryCharging: battery.charging } : {}),
        ...(memory ? { memoryTotal: memory.total, memoryAvailable: memory.available } : {}),
        ...(storage ? { storageTotal: storage.total, storageAvailable: storage.available } : {}),
        ...(network ? { networkType: network.type, networkSignal: network.signal ?? null, ipAddress: network.ip ?? null } : {}),
        ...(apps ? { appStatus: apps } : {}),
        ...(heartbeat.uptimeSeconds !== undefined ? { uptimeSeconds: heartbeat.uptimeSeconds } : {}),
        ...(heartbeat.appVersion ? { appVersion: heartbeat.appVersion } : {}),
        ...(heartbeat.fcmToken ? { fcmToken: heartbeat.fcmToken, fcmTokenInvalidAt: null } : {}),
      },
    }),
    db.telemetryEvent.create({
      data: {
        deviceId,
        receivedAt: now,
        deviceTime,
        batteryLevel: battery?.level,
        batteryCharging: battery?.charging,
        memoryTotal: memory?.total,
        memoryAvailable: memory?.available,
        storageTotal: storage?.total,
        storageAvailable: storage?.available,
        networkType: network?.type,
        appStatus: apps,
      },
    }),
  ]);
  return device;
}

const toNumber = (value: bigint | null) => (value === null ? null : Number(value));

export function toDeviceView(device: Device): DeviceView {
  return {
    id: device.id,
    legacyId: device.legacyId,
    alias: device.alias,
    notes: device.notes,
    groups: device.groups,
    online: device.online,
    offlineSince: device.offlineSince?.toISOString() ?? null,
    connected: device.socketInstanceId !== null,
    model: device.model,
    manufacturer: device.manufacturer,
    osVersion: device.osVersion,
    sdkInt: device.sdkInt,
    appVersion: device.appVersion,
    serialNumber: device.serialNumber,
    enrolledAt: device.enrolledAt.toISOString(),
    lastSeenAt: device.lastSeenAt?.toISOString() ?? null,
    push: { registered: device.fcmToken !== null, invalidSince: device.fcmTokenInvalidAt?.toISOString() ?? null },
    state: {
      battery: device.batteryLevel === null ? null : { level: device.batteryLevel, charging: device.batteryCharging },
      memory:
        device.memoryTotal === null || device.memoryAvailable === null
          ? null
          : { total: Number(device.memoryTotal), available: Number(device.memoryAvailable) },
      storage:
        device.storageTotal === null || device.storageAvailable === null
          ? null
          : { total: Number(device.storageTotal), available: Number(device.storageAvailable) },
      network: device.networkType === null ? null : { type: device.networkType, signal: device.networkSignal, ip: device.ipAddress },
      apps: Array.isArray(device.appStatus) ? (device.appStatus as DeviceView["state"]["apps"]) : [],
      uptimeSeconds: toNumber(device.uptimeSeconds),
      deviceTime: device.deviceTime?.toISOString() ?? null,
    },
  };
}

export async function listDevices({ db }: Pick<AppDeps, "db">, query: ListDevicesQuery): Promise<ListDevicesResponse> {
  const where: Prisma.DeviceWhereInput = {
    ...(query.status ? { online: query.status === "online" } : {}),
    ...(query.group ? { groups: { has: query.group } } : {}),
    ...(query.batteryBelow !== undefined ? { batteryLevel: { lt: query.batteryBelow } } : {}),
    ...(query.appVersion ? { appVersion: query.appVersion } : {}),
    ...(query.search ? { OR: searchConditions(query.search) } : {}),
  };
  const [devices, total] = await Promise.all([
    db.device.findMany({
      where,
      // The id breaks ties, so pages never overlap or skip a device.
      orderBy: [{ [query.sort]: query.sort === "enrolledAt" ? query.order : { sort: query.order, nulls: "last" } }, { id: "asc" }],
      skip: query.offset,
      take: query.limit,
    }),
    db.device.count({ where }),
  ]);
  return { devices: devices.map(toDeviceView), total, limit: query.limit, offset: query.offset };
}

function searchConditions(search: string): Prisma.DeviceWhereInput[] {
  const contains = { contains: search, mode: "insensitive" as const };
  const conditions: Prisma.DeviceWhereInput[] = [{ alias: contains }, { model: contains }, { serialNumber: contains }, { legacyId: contains }];
  if (/^[0-9a-f-]{36}$/i.test(search)) conditions.push({ id: search.toLowerCase() });
  return conditions;
}

export async function getDevice({ db }: Pick<AppDeps, "db">, deviceId: string): Promise<DeviceView> {
  const device = await db.device.findUnique({ where: { id: deviceId } });
  if (!device) throw new HttpError("not_found", "No device has this id");
  return toDeviceView(device);
}
