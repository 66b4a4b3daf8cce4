import { hkdfSync, randomUUID } from "node:crypto";
import {
  type DeviceFacts,
  type DeviceSort,
  type DeviceView,
  type HeartbeatRequest,
  type ListDevicesQuery,
  type ListDevicesResponse,
  POLICY_SECTIONS,
  type RegisterResponse,
} from "@mdm/contracts";
import type { Env } from "../../config/env";
import type { AppDeps } from "../../deps";
import { isDatabaseUnavailable, poolOf, queryPrepared } from "../../db/client";
import { devicesLockedInIdOrderSql } from "../../db/device-locks";
import { type Device, Prisma } from "../../generated/prisma/client";
import { recordAudit } from "../../lib/audit";
import { type GroupCommit, createGroupCommit, writeEachAlone } from "../../lib/group-commit";
import { deviceEventData, emitWebhookEvent } from "../webhooks/webhook-events";
import { HttpError } from "../../lib/http-error";
import { formatToken, hashSecret, newSecret, parseToken, secretMatches } from "../../lib/secrets";
import { socketState } from "../fleet/fleet.service";
import { consumeEnrollmentToken } from "../enrollment/enrollment.service";
import { cacheTokenHash, cachedTokenHash, forgetDeviceToken, tokenCacheOf } from "./device-token-cache";
import { COMPLIANCE_SQL } from "../policies/policies.service";

type KeyEnv = Pick<Env, "COMMAND_MASTER_KEY" | "COMMAND_KEY_ID" | "COMMAND_MASTER_KEY_PREVIOUS" | "COMMAND_KEY_ID_PREVIOUS">;

/**
 * Which derived command key a device holds: the id of the master key it derives from (as
 * stored on the device: null for devices enrolled before it was, see `masterKeyIdOf`) and
 * its generation (bumped by each re-key).
 */
export type CommandKeyRef = { masterKeyId: string | null; generation: number };

/** A key under the current master key: what enrollment gives, and what every re-key moves to. */
export function currentKeyRef(env: Pick<Env, "COMMAND_KEY_ID">, generation = 0): CommandKeyRef {
  return { masterKeyId: env.COMMAND_KEY_ID, generation };
}

/**
 * The id of the master key a device's key derives from. Unrecorded (enrolled before ids
 * were stored): the only master key there was then, which is the previous one while the
 * operator rotates (COMMAND_KEY_ID_PREVIOUS), else the current one.
 */
export function masterKeyIdOf(env: Pick<Env, "COMMAND_KEY_ID" | "COMMAND_KEY_ID_PREVIOUS">, stored: string | null): string {
  return stored ?? env.COMMAND_KEY_ID_PREVIOUS ?? env.COMMAND_KEY_ID;
}

function masterKeyOf(env: KeyEnv, masterKeyId: string): string | undefined {
  if (masterKeyId === env.COMMAND_KEY_ID) return env.COMMAND_MASTER_KEY;
  if (masterKeyId === env.COMMAND_KEY_ID_PREVIOUS) return env.COMMAND_MASTER_KEY_PREVIOUS;
  return undefined;
}

/** Whether the API holds the master key this device's key derives from (not when the operator dropped it too early). */
export function hasCommandKey(env: KeyEnv, ref: CommandKeyRef): boolean {
  return masterKeyOf(env, masterKeyIdOf(env, ref.masterKeyId)) !== undefined;
}

/**
 * The key a device verifies command signatures with: HKDF of its master key for this
 * device, key id and key generation. Never stored; one device's key cannot sign for
 * another; and the admin signing secret cannot derive it. Throws when the master key is
 * no longer configured (check `hasCommandKey` first where that can happen).
 */
export function commandKeyFor(env: KeyEnv, deviceId: string, ref: CommandKeyRef = currentKeyRef(env)): string {
  const masterKeyId = masterKeyIdOf(env, ref.masterKeyId);
  const masterKey = masterKeyOf(env, masterKeyId);
  if (masterKey === undefined) throw new Error(`command master key ${masterKeyId} is not configured`);
  const info = ref.generation === 0 ? `${masterKeyId}:${deviceId}` : `${masterKeyId}:${deviceId}:${ref.generation}`;
  return Buffer.from(hkdfSync("sha256", masterKey, "mdm command key", info, 32)).toString("hex");
}

/** The id a device knows its command key by: the master key's id, and the generation once re-keyed. */
export function commandKeyIdFor(env: Pick<Env, "COMMAND_KEY_ID" | "COMMAND_KEY_ID_PREVIOUS">, ref: CommandKeyRef = currentKeyRef(env)): string {
  const masterKeyId = masterKeyIdOf(env, ref.masterKeyId);
  return ref.generation === 0 ? masterKeyId : `${masterKeyId.slice(0, 24)}-g${ref.generation}`;
}

/** The command key a device holds now. */
export async function commandKeyOf({ db }: Pick<AppDeps, "db">, deviceId: string): Promise<CommandKeyRef> {
  const device = await db.device.findUnique({ where: { id: deviceId }, select: { commandMasterKeyId: true, commandKeyGeneration: true } });
  return { masterKeyId: device?.commandMasterKeyId ?? null, generation: device?.commandKeyGeneration ?? 0 };
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
  client: { ip?: string } = {},
): Promise<RegisterResponse> {
  const deviceId = randomUUID();
  const secret = newSecret();
  const enrollmentTokenId = await db.$transaction(async (tx) => {
    const tokenId = await consumeEnrollmentToken(tx, clock, enrollmentToken);
    const device = await tx.device.create({
      data: { id: deviceId, tokenHash: hashSecret(secret), enrollmentTokenId: tokenId, commandMasterKeyId: env.COMMAND_KEY_ID, ...factsData(facts) },
    });
    await emitWebhookEvent(tx, "device.enrolled", { ...deviceEventData(device), enrollmentTokenId: tokenId, legacy: false }, clock.now());
    return tokenId;
  });
  await recordAudit(db, {
    actor: `enrollment-token:${enrollmentTokenId}`,
    action: "device.enroll",
    targetType: "device",
    targetId: deviceId,
    ip: client.ip,
    details: { model: facts.model, serialNumber: facts.serialNumber },
  });
  return {
    deviceId,
    deviceToken: formatToken(deviceId, secret),
    commandKey: commandKeyFor(env, deviceId),
    commandKeyId: env.COMMAND_KEY_ID,
    heartbeatIntervalSeconds: env.HEARTBEAT_INTERVAL_SECONDS,
  };
}

const unauthorizedDevice = () => new HttpError("unauthorized", "Send a valid device token as Authorization: Bearer <token>");

/**
 * The device was retired or deleted while its caller was already past authentication (a
 * token cached by this instance, or a socket opened before): the write is refused, and a
 * socket that meets it closes with 4004 (WsCloseCode.retired), as the revocation event does.
 */
export class DeviceRevokedError extends HttpError {
  constructor() {
    super("unauthorized", "This device was retired or deleted: its token is refused");
  }
}

/** Throws DeviceRevokedError unless the device is in service (enrolled and not retired). */
export async function assertInService({ db }: Pick<AppDeps, "db">, deviceId: string): Promise<void> {
  const device = await db.device.findUnique({ where: { id: deviceId }, select: { retiredAt: true } });
  if (!device || device.retiredAt) throw new DeviceRevokedError();
}

type DeviceTokenRow = { id: string; tokenHash: string; retiredAt: Date | null; pendingTokenHash: string | null; rotationGraceUntil: Date | null };

const DEVICE_TOKENS_SQL = `SELECT id, "tokenHash", "retiredAt", "pendingTokenHash", "rotationGraceUntil" FROM "Device" WHERE id = ANY($1::uuid[])`;

// Lookup statements running at once per instance, at most (as for heartbeat statements).
const TOKEN_LOOKUPS_IN_FLIGHT = 4;

const tokenLookups = new WeakMap<object, GroupCommit<string, DeviceTokenRow | undefined>>();

/**
 * The token lookups of an app's device requests that its cache cannot answer, batched as its
 * heartbeats are (HEARTBEAT_BATCH_*): the lookups arriving within HEARTBEAT_BATCH_WAIT_MS, up
 * to HEARTBEAT_BATCH_MAX, are read by one statement: the first request of each device after
 * an instance starts, and each after its cache entry lapsed (device-token-cache.ts). At
 * most HEARTBEAT_QUEUE_MAX wait, in a queue of their own; past it, 503 with Retry-After.
 */
export function deviceTokenLookupsOf(deps: Pick<AppDeps, "db" | "env" | "metrics">): GroupCommit<string, DeviceTokenRow | undefined> {
  let lookups = tokenLookups.get(deps);
  if (!lookups) {
    const { db, env, metrics } = deps;
    lookups = createGroupCommit({
      maxBatch: env.HEARTBEAT_BATCH_MAX,
      maxWaitMs: env.HEARTBEAT_BATCH_WAIT_MS,
      maxQueued: env.HEARTBEAT_QUEUE_MAX,
      maxRunning: TOKEN_LOOKUPS_IN_FLIGHT,
      run: async (deviceIds) => {
        metrics.deviceTokenLookupBatchSize.observe(deviceIds.length);
        const { rows } = await poolOf(db).query<DeviceTokenRow>(DEVICE_TOKENS_SQL, [deviceIds]);
        const byId = new Map(rows.map((row) => [row.id, row]));
        return deviceIds.map((id) => byId.get(id));
      },
      full: queueFull(deps, "device_token_queue", "device tokens waiting to be checked"),
    });
    tokenLookups.set(deps, lookups);
  }
  return lookups;
}

/** A batch queue's answer when full: 503 with Retry-After, counted as shed for `reason`. */
function queueFull({ env, metrics }: Pick<AppDeps, "env" | "metrics">, reason: string, waiting: string): () => HttpError {
  return () => {
    metrics.shed.inc({ reason });
    return new HttpError("service_unavailable", `This instance has too many ${waiting}; retry later`, undefined, {
      "Retry-After": String(env.ADMISSION_RETRY_AFTER_SECONDS),
    });
  };
}

type TokenDeps = Pick<AppDeps, "db" | "bus" | "env" | "metrics">;

/** The hash of the device's token that `secret` matches, or undefined: one hash check per request. */
async function tokenHashOf(deps: TokenDeps, deviceId: string, secret: string, now: Date): Promise<string | undefined> {
  const cache = tokenCacheOf(deps);
  // A cached hash the secret does not match may be one the device has since replaced (a
  // rotation completed through another instance): the row says.
  const cached = cachedTokenHash(cache, deviceId);
  if (cached && secretMatches(secret, cached)) return cached;
  const generation = cache.generation;
  // A read: the lookups of one device need no order between them.
  const device = await deviceTokenLookupsOf(deps).submit(undefined, deviceId);
  if (!device || device.retiredAt) return undefined;
  // A rotation under way: the new token is the device's acknowledgement (it can only have
  // read it from the command sealed with its key); the old one works until the grace ends.
  if (device.pendingTokenHash) {
    if (secretMatches(secret, device.pendingTokenHash))
      return (await completeRotation(deps, deviceId, device.pendingTokenHash)) ? device.pendingTokenHash : undefined;
    const inGrace = device.rotationGraceUntil && device.rotationGraceUntil > now;
    return inGrace && secretMatches(secret, device.tokenHash) ? device.tokenHash : undefined;
  }
  // Only a hash the secret matched: guessed tokens do not fill (or churn) the cache.
  if (!secretMatches(secret, device.tokenHash)) return undefined;
  cacheTokenHash(cache, deviceId, device.tokenHash, generation);
  return device.tokenHash;
}

/**
 * The device took its new token: it becomes the only one, with its command key. False when
 * another request completed (or the admin restarted) the rotation meanwhile and this hash
 * is neither the pending one nor the current one.
 */
export async function completeRotation(deps: Pick<AppDeps, "db" | "bus">, deviceId: string, pendingTokenHash: string): Promise<boolean> {
  const { db, bus } = deps;
  // The old token's revocation is written by the same statement (see device-token-cache.ts).
  const rows = await db.$executeRaw`
    WITH completed AS (
      UPDATE "Device" SET "tokenHash" = "pendingTokenHash", "commandKeyGeneration" = "pendingKeyGeneration",
        "commandMasterKeyId" = "pendingMasterKeyId",
        "pendingTokenHash" = NULL, "pendingKeyGeneration" = NULL, "pendingMasterKeyId" = NULL, "rotationGraceUntil" = NULL
      WHERE id = ${deviceId}::uuid AND "pendingTokenHash" = ${pendingTokenHash}
      RETURNING id)
    INSERT INTO "DeviceTokenRevocation" ("deviceId", reason) SELECT id, 'rotated' FROM completed`;
  if (rows === 1) {
    // No instance caches a token while its rotation is pending; this is for one that read
    // the device just before the rotation began.
    forgetDeviceToken(deps, deviceId);
    bus.publish({ kind: "device_token_revoked", deviceId, reason: "rotated" });
    return true;
  }
  const current = await db.device.findUnique({ where: { id: deviceId }, select: { tokenHash: true, retiredAt: true } });
  return !!current && !current.retiredAt && current.tokenHash === pendingTokenHash;
}

/** Resolves `Authorization: Bearer <device token>` to a device id, or throws 401. */
export async function authenticateDevice(deps: TokenDeps & Pick<AppDeps, "clock">, authorization: string | undefined): Promise<string> {
  return (await authenticateDeviceToken(deps, authorization)).deviceId;
}

/** As authenticateDevice, with the hash of the token that matched: a socket keeps it, to close once that token is replaced. */
export async function authenticateDeviceToken(
  deps: TokenDeps & Pick<AppDeps, "clock">,
  authorization: string | undefined,
): Promise<{ deviceId: string; tokenHash: string }> {
  const match = /^Bearer\s+(\S+)$/i.exec(authorization ?? "");
  const parsed = match ? parseToken(match[1]!) : undefined;
  if (!parsed) throw unauthorizedDevice();
  const tokenHash = await tokenHashOf(deps, parsed.id, parsed.secret, deps.clock.now());
  if (!tokenHash) throw unauthorizedDevice();
  return { deviceId: parsed.id, tokenHash };
}

/** The token a device holds now (after any rotation it completed); undefined once it is retired or deleted. */
export async function currentTokenHash({ db }: Pick<AppDeps, "db">, deviceId: string): Promise<string | undefined> {
  const { rows } = await poolOf(db).query<{ tokenHash: string }>(`SELECT "tokenHash" FROM "Device" WHERE id = $1::uuid AND "retiredAt" IS NULL`, [deviceId]);
  return rows[0]?.tokenHash;
}

/** The columns of the device row a heartbeat's caller needs: its live state for dashboards. */
export type HeartbeatDeviceRow = Pick<
  Device,
  | "id"
  | "online"
  | "lastSeenAt"
  | "batteryLevel"
  | "batteryCharging"
  | "memoryAvailable"
  | "networkType"
  | "socketInstanceId"
  | "socketLeaseExpiresAt"
  | "socketConnectedAt"
  | "socketDisconnectedAt"
  | "policyDesiredHash"
  | "policyAppliedHash"
  | "policyDesired"
>;

export type RecordedHeartbeat = {
  device: HeartbeatDeviceRow;
  /** Indexes in `policy.failures` of the entries naming no setting of the device's effective policy: not kept. */
  ignoredFailures: number[];
  /** Whether the device has an effective policy (the reason given for the ignored entries). */
  hasPolicy: boolean;
  /** Whether commands wait for this device (so the caller fetches them only then). */
  hasPending: boolean;
  /** Apps that must run on this device: auto-relaunch rules, and its effective policy's autoRelaunch. */
  mustRun: string[];
};

// Whether a reported policy failure's setting is a path of the device's effective policy, as
// policySettingEntries reads a policy: a leaf of a section ($3: POLICY_SECTIONS) or any other
// top-level key. Evaluated on the locked row, so against the policy the report is stored with.
const IS_POLICY_SETTING = (setting: string) => `EXISTS (
      SELECT 1 FROM jsonb_each(CASE WHEN jsonb_typeof(d."policyDesired") = 'object' THEN d."policyDesired" END) k
      WHERE CASE WHEN k.key = ANY($3::text[])
        THEN jsonb_typeof(k.value) = 'object' AND starts_with(${setting}, k.key || '.') AND k.value ? substr(${setting}, length(k.key) + 2)
        ELSE k.key = ${setting} END)`;

// The heartbeat statement, for a batch of heartbeats of distinct devices: $1 is a JSON
// array with one object per heartbeat (see HeartbeatInput), $2 their device ids (without
// them the planner, which cannot see how many rows $1 holds, scans the whole table where
// it should look the devices up by id). "receivedAt" is when each arrived; each section's "present" flag (battery, memory, storage, network, policy) keeps
// the stored value when the heartbeat left the section out. Reported policy failures that
// name no setting of the device's effective policy are not kept; "ignoredFailures" returns
// their indexes in the report (no read of the policy of its own per heartbeat).
const RECORD_HEARTBEATS_SQL = `
  WITH input AS (
    SELECT * FROM json_to_recordset($1::json) AS i(
      id uuid, "receivedAt" timestamptz, "deviceTime" timestamptz,
      battery boolean, "batteryLevel" int, "batteryCharging" boolean,
      memory boolean, "memoryTotal" bigint, "memoryAvailable" bigint,
      storage boolean, "storageTotal" bigint, "storageAvailable" bigint,
      network boolean, "networkType" text, "networkSignal" int, "ipAddress" text,
      apps jsonb, "uptimeSeconds" bigint, "appVersion" text, "fcmToken" text, "fcmTokenPresent" boolean,
      policy boolean, "policyAppliedHash" text, "policyFailures" jsonb)),
  previous AS (SELECT id, "appStatus" FROM "Device" WHERE id = ANY($2::uuid[])),
  -- offlineSince as the row is once locked: the statement's snapshot (previous) predates a
  -- sweep step this statement waited for, which had just marked the device offline.
  locked AS (${devicesLockedInIdOrderSql(`id = ANY($2::uuid[]) AND "retiredAt" IS NULL`, `id, "offlineSince"`)}),
  updated AS (
    UPDATE "Device" d SET
      "lastSeenAt" = i."receivedAt", online = true, "offlineSince" = NULL, "deviceTime" = i."deviceTime",
      "batteryLevel" = CASE WHEN i.battery THEN i."batteryLevel" ELSE d."batteryLevel" END,
      "batteryCharging" = CASE WHEN i.battery THEN i."batteryCharging" ELSE d."batteryCharging" END,
      "memoryTotal" = CASE WHEN i.memory THEN i."memoryTotal" ELSE d."memoryTotal" END,
      "memoryAvailable" = CASE WHEN i.memory THEN i."memoryAvailable" ELSE d."memoryAvailable" END,
      "storageTotal" = CASE WHEN i.storage THEN i."storageTotal" ELSE d."storageTotal" END,
      "storageAvailable" = CASE WHEN i.storage THEN i."storageAvailable" ELSE d."storageAvailable" END,
      "networkType" = CASE WHEN i.network THEN i."networkType" ELSE d."networkType" END,
      "networkSignal" = CASE WHEN i.network THEN i."networkSignal" ELSE d."networkSignal" END,
      "ipAddress" = CASE WHEN i.network THEN i."ipAddress" ELSE d."ipAddress" END,
      "appStatus" = CASE WHEN i.apps IS NULL OR i.apps = d."appStatus" THEN d."appStatus" ELSE i.apps END,
      "appsReportedAt" = CASE WHEN i.apps IS NULL THEN d."appsReportedAt" ELSE i."receivedAt" END,
      "uptimeSeconds" = COALESCE(i."uptimeSeconds", d."uptimeSeconds"),
      "appVersion" = COALESCE(i."appVersion", d."appVersion"),
      "fcmToken" = COALESCE(i."fcmToken", d."fcmToken"),
      "fcmTokenInvalidAt" = CASE WHEN i."fcmTokenPresent" THEN NULL ELSE d."fcmTokenInvalidAt" END,
      "policyAppliedHash" = CASE WHEN i.policy THEN i."policyAppliedHash" ELSE d."policyAppliedHash" END,
      "policyFailures" = CASE WHEN i.policy THEN (
        SELECT COALESCE(jsonb_agg(f.value ORDER BY f.n), '[]'::jsonb) FROM jsonb_array_elements(i."policyFailures") WITH ORDINALITY f(value, n)
        WHERE ${IS_POLICY_SETTING(`f.value->>'setting'`)}) ELSE d."policyFailures" END,
      "policyReportedAt" = CASE WHEN i.policy THEN i."receivedAt" ELSE d."policyReportedAt" END,
      "updatedAt" = i."receivedAt"
    FROM input i JOIN locked l ON l.id = i.id
    -- A retired device stays offline, whatever its caller's cached token or open socket says.
    WHERE d.id = i.id AND d.id = ANY($2::uuid[]) AND d."retiredAt" IS NULL
    RETURNING d.id, d.online, d."lastSeenAt", d."batteryLevel", d."batteryCharging", d."memoryAvailable", d."networkType",
      d."socketInstanceId", d."socketLeaseExpiresAt", d."socketConnectedAt", d."socketDisconnectedAt", d.groups,
      d.alias, d.model, d."serialNumber", d."policyDesiredHash", d."policyAppliedHash",
      -- The effective policy travels only while the device has not applied it.
      CASE WHEN d."policyDesiredHash" IS DISTINCT FROM d."policyAppliedHash" THEN d."policyDesired" END AS "policyDesired",
      d."policyDesired"->'autoRelaunch' AS "policyAutoRelaunch",
      CASE WHEN i.policy THEN ARRAY(
        SELECT (f.n - 1)::int FROM jsonb_array_elements(i."policyFailures") WITH ORDINALITY f(value, n)
        WHERE NOT ${IS_POLICY_SETTING(`f.value->>'setting'`)} ORDER BY f.n) ELSE '{}'::int[] END AS "ignoredFailures",
      jsonb_typeof(d."policyDesired") = 'object' AS "hasPolicy"),
  telemetry AS (
    INSERT INTO "TelemetryEvent" ("deviceId", "receivedAt", "deviceTime", "batteryLevel", "batteryCharging",
      "memoryTotal", "memoryAvailable", "storageTotal", "storageAvailable", "networkType", "appStatus")
    SELECT u.id, i."receivedAt", i."deviceTime", i."batteryLevel", i."batteryCharging", i."memoryTotal", i."memoryAvailable",
      i."storageTotal", i."storageAvailable", i."networkType",
      CASE WHEN i.apps IS DISTINCT FROM p."appStatus" THEN i.apps END
    FROM updated u JOIN input i ON i.id = u.id LEFT JOIN previous p ON p.id = u.id),
  -- Back from offline (the sweep had marked it): device.online to subscribed webhooks, in
  -- this statement (see emitWebhookEvents for the row's shape). A device heartbeats one
  -- request after another; only two of its heartbeats racing each other at the moment it
  -- returns could both see offlineSince set (receivers dedupe on the device and time).
  back_online AS (SELECT gen_random_uuid() AS "eventId", i."receivedAt", jsonb_build_object('deviceId', u.id, 'alias', u.alias, 'model', u.model,
      'serialNumber', u."serialNumber", 'groups', to_jsonb(u.groups), 'offlineSince', l."offlineSince", 'at', i."receivedAt") AS data
    FROM updated u JOIN input i ON i.id = u.id JOIN locked l ON l.id = u.id WHERE l."offlineSince" IS NOT NULL),
  online_webhooks AS (
    INSERT INTO "WebhookDelivery" ("endpointId", "eventId", "eventType", payload, status, "nextAttemptAt", "createdAt")
    SELECT e.id, b."eventId", 'device.online', jsonb_build_object('id', b."eventId", 'type', 'device.online', 'createdAt', b."receivedAt", 'data', b.data),
      'queued', b."receivedAt", b."receivedAt"
    FROM back_online b JOIN "WebhookEndpoint" e ON 'device.online' = ANY(e.events))
  SELECT u.*,
    EXISTS (SELECT 1 FROM "Command" c WHERE c."deviceId" = u.id AND c.status IN ('queued', 'sent') AND c."expiresAt" > i."receivedAt") AS "hasPending",
    ARRAY(SELECT p."packageName" FROM "AppPolicy" p WHERE p.enabled AND (p."deviceId" = u.id OR p."group" = ANY(u.groups))
      UNION SELECT jsonb_array_elements_text(COALESCE(u."policyAutoRelaunch", '[]'::jsonb))) AS "mustRun"
  FROM updated u JOIN input i ON i.id = u.id`;

type HeartbeatResultRow = Omit<HeartbeatDeviceRow, "memoryAvailable"> & {
  memoryAvailable: string | null;
  groups: string[];
  alias: string | null;
  model: string | null;
  serialNumber: string | null;
  policyAutoRelaunch: unknown;
  ignoredFailures: number[];
  hasPolicy: boolean | null;
  hasPending: boolean;
  mustRun: string[];
};

/** One heartbeat as the statement reads it: a row of its input (dates travel as ISO strings). */
type HeartbeatInput = ReturnType<typeof heartbeatInput>;

function heartbeatInput(deviceId: string, receivedAt: Date, heartbeat: HeartbeatRequest) {
  const { battery, memory, storage, network, apps, policy } = heartbeat;
  return {
    id: deviceId,
    receivedAt,
    deviceTime: new Date(heartbeat.deviceTime),
    battery: !!battery,
    batteryLevel: battery?.level ?? null,
    batteryCharging: battery?.charging ?? null,
    memory: !!memory,
    memoryTotal: memory?.total ?? null,
    memoryAvailable: memory?.available ?? null,
    storage: !!storage,
    storageTotal: storage?.total ?? null,
    storageAvailable: storage?.available ?? null,
    network: !!network,
    networkType: network?.type ?? null,
    networkSignal: network?.signal ?? null,
    ipAddress: network?.ip ?? null,
    apps: apps ?? null,
    uptimeSeconds: heartbeat.uptimeSeconds ?? null,
    appVersion: heartbeat.appVersion ?? null,
    fcmToken: heartbeat.fcmToken ?? null,
    fcmTokenPresent: !!heartbeat.fcmToken,
    policy: !!policy,
    policyAppliedHash: policy?.appliedHash ?? null,
    policyFailures: policy ? policy.failures : null,
  };
}

/**
 * Records a batch of heartbeats of distinct devices in one statement, all or nothing: one
 * outcome per heartbeat, in order; DeviceRevokedError for a device retired or deleted
 * meanwhile (it changes nothing, and the others are recorded).
 */
async function recordHeartbeats(deps: Pick<AppDeps, "db" | "metrics">, inputs: HeartbeatInput[]): Promise<Array<RecordedHeartbeat | Error>> {
  deps.metrics.heartbeatBatchSize.observe(inputs.length);
  // Prepared: on 100,000 devices a batch of 30 took 7.9-8.5 ms against 9.9-10.6 ms when
  // planned at every call (medians of 30 batches each, alternated; bench/RESULTS.md).
  const { rows } = await queryPrepared<HeartbeatResultRow>(poolOf(deps.db), "record-heartbeats", RECORD_HEARTBEATS_SQL, [
    JSON.stringify(inputs),
    inputs.map((input) => input.id),
    POLICY_SECTIONS,
  ]);
  const byId = new Map(rows.map((row) => [row.id, row]));
  return inputs.map((input) => {
    const row = byId.get(input.id);
    if (!row) return new DeviceRevokedError();
    const {
      hasPending,
      mustRun,
      groups: _groups,
      alias: _alias,
      model: _model,
      serialNumber: _serial,
      policyAutoRelaunch: _autoRelaunch,
      ignoredFailures,
      hasPolicy,
      memoryAvailable,
      ...device
    } = row;
    return {
      device: { ...device, memoryAvailable: memoryAvailable === null ? null : BigInt(memoryAvailable) },
      hasPending,
      mustRun,
      ignoredFailures,
      hasPolicy: hasPolicy === true,
    };
  });
}

// Statements of heartbeats running at once per instance, at most: the others queue up and
// go in fewer, larger statements. Leaves most of the pool (20) to the rest of the API.
const HEARTBEAT_STATEMENTS_IN_FLIGHT = 4;

const heartbeatCommits = new WeakMap<object, GroupCommit<HeartbeatInput, RecordedHeartbeat>>();

/**
 * The group commit of an app's heartbeats (HEARTBEAT_BATCH_*): the heartbeats arriving
 * within HEARTBEAT_BATCH_WAIT_MS, up to HEARTBEAT_BATCH_MAX, are written by one statement
 * (socket writes, one per query, were the largest cost left on the hot path: bench/RESULTS.md).
 */
export function heartbeatCommitOf(deps: Pick<AppDeps, "db" | "env" | "metrics">): GroupCommit<HeartbeatInput, RecordedHeartbeat> {
  let commit = heartbeatCommits.get(deps);
  if (!commit) {
    const { env } = deps;
    commit = createGroupCommit({
      maxBatch: env.HEARTBEAT_BATCH_MAX,
      maxWaitMs: env.HEARTBEAT_BATCH_WAIT_MS,
      maxQueued: env.HEARTBEAT_QUEUE_MAX,
      maxRunning: HEARTBEAT_STATEMENTS_IN_FLIGHT,
      run: async (inputs) => {
        try {
          return await recordHeartbeats(deps, inputs);
        } catch (error) {
          // The database is unavailable: every heartbeat of the batch fails with it (503).
          // Anything else is retried one heartbeat per statement, so it fails only the
          // heartbeat it concerns: a value PostgreSQL refused, or a deadlock with another
          // statement locking several devices (the socket lease renewal), which a statement
          // locking one device cannot be part of.
          if (inputs.length === 1 || isDatabaseUnavailable(error)) throw error;
          return writeEachAlone(inputs, HEARTBEAT_STATEMENTS_IN_FLIGHT, async (input) => (await recordHeartbeats(deps, [input]))[0]!);
        }
      },
      full: queueFull(deps, "heartbeat_queue", "heartbeats waiting to be written"),
    });
    heartbeatCommits.set(deps, commit);
  }
  return commit;
}

/**
 * The heartbeat hot path: updates the live state with the sections the heartbeat carries
 * (others keep their last value), marks the device online, appends a telemetry event, and
 * reads back what the caller needs next, in one statement shared with the heartbeats of
 * other devices arriving at the same moment (heartbeatCommitOf). It writes no indexed
 * column (see migration 20261130130000_data_at_scale), so the update is HOT. The event
 * carries the app list only when it differs from the device's previous one; an unchanged
 * list keeps the row's stored value as is (no new TOAST copy). A retired (or deleted)
 * device changes nothing: DeviceRevokedError. It runs on the pg pool under
 * Prisma (poolOf): Prisma's runtime cost about as much CPU per heartbeat as the rest of it.
 */
export function recordHeartbeat(
  deps: Pick<AppDeps, "db" | "clock" | "env" | "metrics">,
  deviceId: string,
  heartbeat: HeartbeatRequest,
): Promise<RecordedHeartbeat> {
  return heartbeatCommitOf(deps).submit(deviceId, heartbeatInput(deviceId, deps.clock.now(), heartbeat));
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
    ...socketState(device),
    model: device.model,
    manufacturer: device.manufacturer,
    osVersion: device.osVersion,
    sdkInt: device.sdkInt,
    appVersion: device.appVersion,
    serialNumber: device.serialNumber,
    enrolledAt: device.enrolledAt.toISOString(),
    lastSeenAt: device.lastSeenAt?.toISOString() ?? null,
    retiredAt: device.retiredAt?.toISOString() ?? null,
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

type SortKey = string | number | null;
type DeviceCursor = { sort: DeviceSort; order: "asc" | "desc"; key: SortKey; id: string };

// The sortable columns of DeviceListing, with the SQL type their cursor value is cast back
// to. Those a heartbeat changes (lastSeenAt, batteryLevel) have no index: it would make
// every heartbeat a non-HOT update. Their pages cost a scan of the narrow listing with a
// top-N sort; the others walk their (column, id) index.
const SORT_COLUMNS: Record<DeviceSort, { column: string; type: string; nullable: boolean }> = {
  enrolledAt: { column: '"enrolledAt"', type: "timestamptz", nullable: false },
  lastSeenAt: { column: '"lastSeenAt"', type: "timestamptz", nullable: true },
  batteryLevel: { column: '"batteryLevel"', type: "int", nullable: true },
  alias: { column: '"alias"', type: "text", nullable: true },
  model: { column: '"model"', type: "text", nullable: true },
  appVersion: { column: '"appVersion"', type: "text", nullable: true },
};

const badCursor = () => new HttpError("validation_failed", "cursor must be the nextCursor of a previous page, with the same sort and order");

function encodeCursor(cursor: DeviceCursor): string {
  return Buffer.from(JSON.stringify([cursor.sort, cursor.order, cursor.key, cursor.id])).toString("base64url");
}

function decodeCursor(value: string, query: ListDevicesQuery): DeviceCursor {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(value, "base64url").toString("utf8"));
  } catch {
    throw badCursor();
  }
  if (!Array.isArray(parsed) || parsed.length !== 4) throw badCursor();
  const [sort, order, key, id] = parsed as unknown[];
  const { type, nullable } = SORT_COLUMNS[query.sort];
  if (sort !== query.sort || order !== query.order || typeof id !== "string" || !UUID.test(id)) throw badCursor();
  if (key === null ? !nullable : type === "int" ? !Number.isInteger(key) : typeof key !== "string") throw badCursor();
  if (type === "timestamptz" && typeof key === "string" && Number.isNaN(Date.parse(key))) throw badCursor();
  return { sort: query.sort, order: query.order, key: key as SortKey, id };
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A pattern in which `%`, `_` and `\` of the search match themselves (with `ESCAPE '\'`). */
export function likePattern(search: string): string {
  return `%${search.replace(/[\\%_]/g, (char) => `\\${char}`)}%`;
}

const SEARCH_SEPARATOR = "\u001f";
const SEARCHED_COLUMNS = ["alias", "model", '"serialNumber"', '"legacyId"'];

/**
 * The list's filters as a WHERE condition on DeviceListing (also the export's and bulk
 * edits'); retired devices only with `status: "retired"`.
 */
export function deviceFilters(query: Pick<ListDevicesQuery, "status" | "group" | "batteryBelow" | "appVersion" | "search" | "compliance">): Prisma.Sql {
  // Retired devices are out of the fleet: listed only when asked for.
  const filters: Prisma.Sql[] = [query.status === "retired" ? Prisma.sql`"retiredAt" IS NOT NULL` : Prisma.sql`"retiredAt" IS NULL`];
  if (query.status === "online" || query.status === "offline") filters.push(Prisma.sql`online = ${query.status === "online"}`);
  // Containment, which the GIN index on groups answers (`= ANY(groups)` would scan).
  if (query.group) filters.push(Prisma.sql`groups @> ARRAY[${query.group}]::text[]`);
  if (query.batteryBelow !== undefined) filters.push(Prisma.sql`"batteryLevel" < ${query.batteryBelow}`);
  if (query.appVersion) filters.push(Prisma.sql`"appVersion" = ${query.appVersion}`);
  // Compliance is computed from Device's policy columns and app list, not in the listing.
  if (query.compliance === "noncompliant") filters.push(Prisma.sql`id IN (SELECT id FROM "Device" WHERE (${COMPLIANCE_SQL}) IN ('pending', 'failed'))`);
  else if (query.compliance) filters.push(Prisma.sql`id IN (SELECT id FROM "Device" WHERE (${COMPLIANCE_SQL}) = ${query.compliance})`);
  if (query.search) {
    // ILIKE lower-cases both sides: searchText holds the four columns lower-cased, joined by
    // U+001F, and its trigram index backs the match where pg_trgm exists. A term holding that
    // separator is matched column by column, so no match spans two columns.
    const pattern = likePattern(query.search);
    const matches = query.search.includes(SEARCH_SEPARATOR)
      ? SEARCHED_COLUMNS.map((column) => Prisma.sql`${Prisma.raw(column)} ILIKE ${pattern} ESCAPE '\\'`)
      : [Prisma.sql`"searchText" LIKE lower(${pattern}) ESCAPE '\\'`];
    if (UUID.test(query.search)) matches.push(Prisma.sql`id = ${query.search.toLowerCase()}::uuid`);
    filters.push(Prisma.sql`(${Prisma.join(matches, " OR ")})`);
  }
  return Prisma.join(filters, " AND ");
}

export const sortColumnOf = (query: Pick<ListDevicesQuery, "sort">) => Prisma.raw(SORT_COLUMNS[query.sort].column);

/** The list's order (empty values last, then by id) as an ORDER BY list on the table aliased `alias`. */
function deviceOrderBy(query: Pick<ListDevicesQuery, "sort" | "order">, alias: string): Prisma.Sql {
  const dir = Prisma.raw(query.order === "desc" ? "DESC" : "ASC");
  return Prisma.sql`${Prisma.raw(`${alias}.${SORT_COLUMNS[query.sort].column}`)} ${dir} NULLS LAST, ${Prisma.raw(alias)}.id ${dir}`;
}

/** The Device rows of the listing rows a query selects (`SELECT id, <sort column> FROM "DeviceListing" ...`), in the list's order. */
export const devicesOf = (listing: Prisma.Sql, query: Pick<ListDevicesQuery, "sort" | "order">) =>
  Prisma.sql`SELECT d.* FROM (${listing}) l JOIN "Device" d ON d.id = l.id ORDER BY ${deviceOrderBy(query, "l")}`;

const countDevices = async (db: AppDeps["db"], where: Prisma.Sql) =>
  (await db.$queryRaw<Array<{ total: number }>>`SELECT count(*)::int AS total FROM "DeviceListing" WHERE ${where}`)[0]!.total;

/**
 * A page of devices and the number matching the filters. With a cursor (or on the first
 * page) the page is read by keyset: the devices after the cursor's (sort value, id) in
 * the sort order, nulls last, so it is exact however many devices enroll in between and,
 * for the indexed sorts, an index range read on any page. Non-null values and nulls are
 * read as two ranges, each an index order in both directions. `offset` keeps the old
 * behaviour. The total is counted at the same time, on a connection of its own: the count
 * scans every matching listing row and the unindexed sorts (lastSeenAt, batteryLevel) sort
 * them too: one after the other, they took the sum of both (about 10 ms each on 100,000
 * devices). Taken a moment apart, the two may disagree by a device that
 * changed in between, as two pages may.
 * Filters, sorts and counts read the narrow DeviceListing; only the page's rows are read
 * from Device.
 */
export async function listDevices({ db }: Pick<AppDeps, "db">, query: ListDevicesQuery): Promise<ListDevicesResponse> {
  const { type, nullable } = SORT_COLUMNS[query.sort];
  const col = sortColumnOf(query);
  const dir = Prisma.raw(query.order === "desc" ? "DESC" : "ASC");
  const after = Prisma.raw(query.order === "desc" ? "<" : ">");
  const where = deviceFilters(query);
  const cursor = query.cursor ? decodeCursor(query.cursor, query) : undefined;
  // One row more than the page tells whether another page follows.
  const take = query.limit + 1;
  const pageRows = async (): Promise<Device[]> => {
    if (query.offset > 0) {
      const listing = Prisma.sql`SELECT id, ${col} FROM "DeviceListing" WHERE ${where} ORDER BY ${col} ${dir} NULLS LAST, id ${dir} LIMIT ${take} OFFSET ${query.offset}`;
      return db.$queryRaw<Device[]>(devicesOf(listing, query));
    }
    let rows: Device[] = [];
    if (cursor?.key !== null) {
      const keyset = cursor ? Prisma.sql`AND (${col}, id) ${after} (${cursor.key}::${Prisma.raw(type)}, ${cursor.id}::uuid)` : Prisma.empty;
      const listing = Prisma.sql`SELECT id, ${col} FROM "DeviceListing" WHERE ${where} AND ${col} IS NOT NULL ${keyset} ORDER BY ${col} ${dir}, id ${dir} LIMIT ${take}`;
      rows = await db.$queryRaw<Device[]>(devicesOf(listing, query));
    }
    if (nullable && rows.length < take) {
      const keyset = cursor?.key === null ? Prisma.sql`AND id ${after} ${cursor.id}::uuid` : Prisma.empty;
      const listing = Prisma.sql`SELECT id, ${col} FROM "DeviceListing" WHERE ${where} AND ${col} IS NULL ${keyset} ORDER BY id ${dir} LIMIT ${take - rows.length}`;
      rows = rows.concat(await db.$queryRaw<Device[]>(devicesOf(listing, query)));
    }
    return rows;
  };
  const [total, devices] = await Promise.all([countDevices(db, where), pageRows()]);
  const page = devices.slice(0, query.limit);
  const last = page.at(-1);
  const nextCursor =
    devices.length > query.limit && last ? encodeCursor({ sort: query.sort, order: query.order, key: sortKeyOf(last, query.sort), id: last.id }) : null;
  return { devices: page.map(toDeviceView), total, limit: query.limit, offset: query.offset, nextCursor };
}

function sortKeyOf(device: Device, sort: DeviceSort): SortKey {
  const value = device[sort];
  return value instanceof Date ? value.toISOString() : (value ?? null);
}

export async function getDevice({ db }: Pick<AppDeps, "db">, deviceId: string): Promise<DeviceView> {
  const device = await db.device.findUnique({ where: { id: deviceId } });
  if (!device) throw new HttpError("not_found", "No device has this id");
  return toDeviceView(device);
}
