import { createHash, randomUUID } from "node:crypto";
import {
  type AdvanceReleaseRequest,
  type AppRelease as AppReleaseView,
  type CreateReleaseRequest,
  type ReleaseDetail,
  type ReleaseDevice,
  type ReleaseProgress,
  type ReleaseTarget,
  CommandPayloads,
  ROLLOUT_STEPS,
  servesAppDownloads,
} from "@mdm/contracts";
import type { AppDeps } from "../../deps";
import { type AppRelease, type AppVersion, Prisma } from "../../generated/prisma/client";
import { recordAudit } from "../../lib/audit";
import { HttpError } from "../../lib/http-error";
import type { DbOrTx } from "../../db/types";
import { emitCommandStatusChanges, queueBulkCommand } from "../commands/commands.service";
import { wakeDelivery } from "../commands/delivery";
import { newestCatalogueVersions, queueDevicesAwaiting } from "../policies/policies.service";
import { signedAppFilePath } from "./download-url";

type Deps = Pick<AppDeps, "db" | "clock" | "env" | "logger" | "bus">;
type Actor = { name: string; ip?: string };
type ReleaseWithVersions = AppRelease & { version: AppVersion | null; previousVersion: AppVersion | null };

const withVersions = { version: true, previousVersion: true } as const;
// A bulk command's target takes at most this many device ids.
const SEND_CHUNK = 10_000;
// The download URL outlives the command that carries it by this much, so a device that
// receives the command just before it expires still has time to download.
const URL_GRACE_SECONDS = 24 * 3600;
// A release to a large fleet writes many commands in one transaction: more than the default 15 s.
const SEND_TIMEOUT_MS = 120_000;
// The rollout job's top-up sends a completed release to at most this many newcomers per release per run.
const TOP_UP_LIMIT = SEND_CHUNK;
const TOP_UP_RELEASES = 500;

/** Stable position of a device in a release's rollout order: a higher percentage only adds devices. */
function rankOf(releaseId: string, deviceId: string): string {
  return createHash("sha256").update(`${releaseId}:${deviceId}`).digest("hex");
}

/** The target's devices in service: retired devices are never sent a release, nor counted in it. */
function targetWhere(target: ReleaseTarget): Prisma.DeviceWhereInput {
  return "group" in target ? { groups: { has: target.group }, retiredAt: null } : { retiredAt: null };
}

async function targetDeviceIds(db: DbOrTx, target: ReleaseTarget): Promise<string[]> {
  return (await db.device.findMany({ where: targetWhere(target), select: { id: true } })).map((device) => device.id);
}

/** The devices `percent` of the target covers: the first of the rollout order, rounded up. */
function shareOf(releaseId: string, deviceIds: string[], percent: number): string[] {
  const ranked = deviceIds.map((id) => ({ id, rank: rankOf(releaseId, id) })).sort((a, b) => (a.rank < b.rank ? -1 : a.rank > b.rank ? 1 : 0));
  return ranked.slice(0, Math.ceil((ranked.length * percent) / 100)).map((device) => device.id);
}

function installUrlBase(env: AppDeps["env"]): string {
  const base = env.PUBLIC_API_URL;
  if (!base || !servesAppDownloads(base)) {
    throw new HttpError("conflict", "Set PUBLIC_API_URL to the API's https:// address as devices reach it: install commands carry a download URL on it");
  }
  return base;
}

/**
 * Queues a catalogue version for devices as install_app bulk commands (chunks of
 * SEND_CHUNK) in the caller's transaction: a download URL signed to outlive the command,
 * and the file's SHA-256. The caller wakes the delivery workers once it has committed.
 */
async function queueInstallCommands(
  tx: DbOrTx,
  deps: Deps,
  version: Pick<AppVersion, "packageName" | "sha256" | "versionCode">,
  deviceIds: string[],
  actor: Actor,
): Promise<Array<{ deviceId: string; requestId: string; batchId: string }>> {
  const base = installUrlBase(deps.env);
  const now = deps.clock.now();
  const ttlSeconds = deps.env.COMMAND_DEFAULT_TTL_SECONDS;
  const urlExpiresAt = new Date(now.getTime() + (ttlSeconds + URL_GRACE_SECONDS) * 1000);
  const payload = CommandPayloads.install_app.parse({
    packageName: version.packageName,
    url: `${base}${signedAppFilePath(deps.env, version.sha256, urlExpiresAt)}`,
    sha256: version.sha256,
    versionCode: version.versionCode,
  });
  const sent: Array<{ deviceId: string; requestId: string; batchId: string }> = [];
  for (let start = 0; start < deviceIds.length; start += SEND_CHUNK) {
    const chunk = deviceIds.slice(start, start + SEND_CHUNK);
    const batch = await queueBulkCommand(tx, deps, { type: "install_app", payload, target: { deviceIds: chunk }, delivery: "auto", ttlSeconds }, chunk, actor);
    sent.push(...batch.commands.map((command) => ({ ...command, batchId: batch.batchId })));
  }
  return sent;
}

/**
 * Sends a catalogue version to devices in service as install_app bulk commands (required
 * apps send versions this way; releases queue them in their own transaction); `record`
 * runs in the transaction that queues them. Returns the batch ids.
 */
export async function sendInstallCommands(
  deps: Deps,
  version: Pick<AppVersion, "packageName" | "sha256" | "versionCode">,
  deviceIds: string[],
  actor: Actor,
  record: (tx: DbOrTx, sent: Array<{ deviceId: string; requestId: string }>) => Promise<void> = async () => {},
): Promise<string[]> {
  installUrlBase(deps.env);
  const sent = await deps.db.$transaction(
    async (tx) => {
      const inService = (await tx.device.findMany({ where: { id: { in: deviceIds }, retiredAt: null }, select: { id: true } })).map((device) => device.id);
      const queued = await queueInstallCommands(tx, deps, version, inService, actor);
      await record(tx, queued);
      return queued;
    },
    { timeout: SEND_TIMEOUT_MS },
  );
  if (sent.length > 0) wakeDelivery(deps);
  return [...new Set(sent.map((command) => command.batchId))];
}

/** Queues `version` for `deviceIds` in the caller's transaction and records each device's command in the release. */
async function sendVersion(tx: DbOrTx, deps: Deps, release: AppRelease, version: AppVersion, deviceIds: string[], actor: Actor): Promise<number> {
  if (deviceIds.length === 0) return 0;
  const now = deps.clock.now();
  const commands = await queueInstallCommands(tx, deps, version, deviceIds, actor);
  await tx.$executeRaw`
    INSERT INTO "AppReleaseDevice" ("releaseId", "deviceId", "versionId", "versionCode", "requestId", "sentAt")
    SELECT ${release.id}::uuid, c."deviceId", ${version.id}::uuid, ${version.versionCode}, c."requestId", ${now}
    FROM unnest(${commands.map((command) => command.deviceId)}::uuid[], ${commands.map((command) => command.requestId)}::uuid[]) AS c("deviceId", "requestId")
    ON CONFLICT ("releaseId", "deviceId") DO UPDATE SET "versionId" = EXCLUDED."versionId", "versionCode" = EXCLUDED."versionCode",
      "requestId" = EXCLUDED."requestId", "sentAt" = EXCLUDED."sentAt"`;
  return commands.length;
}

/**
 * The devices of `deviceIds` that must not be sent version `versionCode` of the app, as it
 * would take them lower: those whose heartbeats report a higher version of it, and those
 * another release of the app was last sent a higher version (its row's version: the
 * previous one once that release was rolled back). Per device, not per target: a device in
 * two groups is reached by the releases of both.
 */
async function aheadOf(tx: DbOrTx, release: Pick<AppRelease, "id" | "packageName">, versionCode: number, deviceIds: string[]): Promise<Set<string>> {
  if (deviceIds.length === 0) return new Set();
  const rows = await tx.$queryRaw<Array<{ deviceId: string }>>`
    SELECT d.id::text AS "deviceId" FROM "Device" d
    WHERE d.id = ANY(${deviceIds}::uuid[]) AND EXISTS (
      SELECT 1 FROM jsonb_array_elements(CASE WHEN jsonb_typeof(d."appStatus") = 'array' THEN d."appStatus" ELSE '[]'::jsonb END) app
      WHERE app->>'packageName' = ${release.packageName} AND jsonb_typeof(app->'versionCode') = 'number' AND (app->>'versionCode')::numeric > ${versionCode}::int)
    UNION
    SELECT rd."deviceId"::text FROM "AppReleaseDevice" rd JOIN "AppRelease" r ON r.id = rd."releaseId"
    WHERE r."packageName" = ${release.packageName} AND r.id <> ${release.id}::uuid AND rd."versionCode" > ${versionCode}
      AND rd."deviceId" = ANY(${deviceIds}::uuid[])`;
  return new Set(rows.map((row) => row.deviceId));
}

/**
 * Sends the release to the devices in service its percentage covers that it was not sent
 * to yet (at most `limit`), except devices it would take lower (see aheadOf): a device a
 * newer release of the app reached, or that runs a newer version, keeps it. A release whose
 * version was deleted from the catalogue (only a completed one that no longer tops up its
 * target can lose it) sends nothing, until that version code is uploaded again.
 */
async function fillShare(tx: DbOrTx, deps: Deps, release: ReleaseWithVersions, actor: Actor, limit = Number.POSITIVE_INFINITY): Promise<number> {
  const version =
    release.version ??
    (await tx.appVersion.findUnique({ where: { packageName_versionCode: { packageName: release.packageName, versionCode: release.versionCode } } }));
  if (!version) return 0;
  const share = shareOf(release.id, await targetDeviceIds(tx, release.target as ReleaseTarget), release.percent);
  const taken = await tx.appReleaseDevice.findMany({ where: { releaseId: release.id }, select: { deviceId: true } });
  const sent = new Set(taken.map((row) => row.deviceId));
  const unsent = share.filter((deviceId) => !sent.has(deviceId));
  const ahead = await aheadOf(tx, release, version.versionCode, unsent);
  const missing = unsent.filter((deviceId) => !ahead.has(deviceId)).slice(0, limit);
  return sendVersion(tx, deps, release, version, missing, actor);
}

/** Whether two release targets share devices: the fleet overlaps every group. */
function overlaps(a: ReleaseTarget, b: ReleaseTarget): boolean {
  return !("group" in a) || !("group" in b) || a.group === b.group;
}

/**
 * A release reaching 100% is sent, in the same transaction, to every device of its target
 * in service: it is then `completed`. The devices whose required apps now resolve to
 * this version are queued for the policy worker.
 */
async function completeIfFull(tx: DbOrTx, deps: Deps, release: ReleaseWithVersions): Promise<boolean> {
  if (release.percent < 100) return false;
  const before = (await newestCatalogueVersions(tx, [{ packageName: release.packageName }])).get(release.packageName) ?? null;
  await tx.appRelease.update({ where: { id: release.id }, data: { status: "completed", updatedAt: deps.clock.now() } });
  return (await queueDevicesAwaiting(tx, release.packageName, release.versionCode, before, deps.clock.now())) > 0;
}

function afterCommit(deps: Deps, outcome: { sent: number; awaiting: boolean }): void {
  if (outcome.sent > 0) wakeDelivery(deps);
  if (outcome.awaiting) deps.bus.publish({ kind: "policy_dispatch_due" });
}

export async function createRelease(deps: Deps, packageName: string, input: CreateReleaseRequest, actor: Actor): Promise<AppReleaseView> {
  const version = await deps.db.appVersion.findUnique({ where: { packageName_versionCode: { packageName, versionCode: input.versionCode } } });
  if (!version) throw new HttpError("not_found", `The catalogue has no version ${input.versionCode} of ${packageName}`);
  installUrlBase(deps.env);
  // The release, its commands and its rows commit together: a refusal leaves nothing behind.
  const outcome = await deps.db.$transaction(
    async (tx) => {
      // Orders concurrent releases of one app: the second sees the first.
      await tx.$queryRaw`SELECT 1 FROM "CatalogueApp" WHERE "packageName" = ${packageName} FOR UPDATE`;
      const running = await tx.appRelease.findFirst({ where: { packageName, status: { in: ["active", "paused"] } }, select: { id: true } });
      if (running) throw new HttpError("conflict", `${packageName} already has a release in progress (${running.id}): roll it back or let it complete first`);
      const released = await tx.appRelease.findMany({
        where: { packageName, status: { in: ["active", "paused", "completed"] } },
        select: { target: true, versionCode: true },
      });
      const newer = released
        .filter((other) => overlaps(other.target as ReleaseTarget, input.target))
        .reduce((max, other) => Math.max(max, other.versionCode), Number.NEGATIVE_INFINITY);
      if (newer > version.versionCode) {
        throw new HttpError(
          "conflict",
          `Version ${newer} of ${packageName} is already released to devices of this target: a release of the lower version ${version.versionCode} would downgrade them (roll back the newer release instead)`,
        );
      }
      const previous = await tx.appVersion.findFirst({ where: { packageName, versionCode: { lt: version.versionCode } }, orderBy: { versionCode: "desc" } });
      const now = deps.clock.now();
      const release = await tx.appRelease.create({
        data: {
          id: randomUUID(),
          packageName,
          versionId: version.id,
          versionCode: version.versionCode,
          versionName: version.versionName,
          previousVersionId: previous?.id ?? null,
          previousVersionCode: previous?.versionCode ?? null,
          target: input.target,
          percent: input.percent,
          autoAdvance: input.autoAdvance,
          maxFailurePercent: input.maxFailurePercent,
          createdBy: actor.name,
          createdAt: now,
          updatedAt: now,
        },
        include: withVersions,
      });
      await recordAudit(tx, {
        actor: actor.name,
        action: "app_release.create",
        targetType: "app",
        targetId: packageName,
        ip: actor.ip,
        details: { releaseId: release.id, versionCode: version.versionCode, target: input.target, percent: input.percent },
      });
      const sent = await fillShare(tx, deps, release, actor);
      return { id: release.id, sent, awaiting: await completeIfFull(tx, deps, release) };
    },
    { timeout: SEND_TIMEOUT_MS },
  );
  afterCommit(deps, outcome);
  return getReleaseView(deps, outcome.id);
}

async function findRelease({ db }: Pick<AppDeps, "db">, releaseId: string): Promise<ReleaseWithVersions> {
  const release = await db.appRelease.findUnique({ where: { id: releaseId }, include: withVersions });
  if (!release) throw new HttpError("not_found", "No release has this id");
  return release;
}

export async function advanceRelease(deps: Deps, releaseId: string, input: AdvanceReleaseRequest, actor: Actor): Promise<AppReleaseView> {
  const release = await findRelease(deps, releaseId);
  if (release.status !== "active") throw new HttpError("conflict", `The release is ${release.status}; only an active release advances`);
  const percent = input.percent ?? ROLLOUT_STEPS.find((step) => step > release.percent);
  if (percent === undefined || percent <= release.percent)
    throw new HttpError("conflict", `The release is already at ${release.percent}%; advance it to a higher percentage`);
  installUrlBase(deps.env);
  const outcome = await deps.db.$transaction(
    async (tx) => {
      // The claim: of two concurrent advances, only the one that moves the row sends.
      const claimed = await tx.appRelease.updateManyAndReturn({
        where: { id: releaseId, status: "active", percent: release.percent },
        data: { percent, updatedAt: deps.clock.now() },
        include: withVersions,
      });
      if (claimed.length === 0) throw new HttpError("conflict", "The release changed meanwhile; reload it");
      await recordAudit(tx, {
        actor: actor.name,
        action: "app_release.advance",
        targetType: "app",
        targetId: release.packageName,
        ip: actor.ip,
        details: { releaseId, from: release.percent, to: percent, ...(input.reason ? { reason: input.reason } : {}) },
      });
      const advanced = claimed[0] as ReleaseWithVersions;
      const sent = await fillShare(tx, deps, advanced, actor);
      return { sent, awaiting: await completeIfFull(tx, deps, advanced) };
    },
    { timeout: SEND_TIMEOUT_MS },
  );
  afterCommit(deps, outcome);
  return getReleaseView(deps, releaseId);
}

async function setStatus(
  deps: Deps,
  releaseId: string,
  from: AppRelease["status"],
  to: AppRelease["status"],
  action: string,
  actor: Actor,
): Promise<AppReleaseView> {
  const release = await findRelease(deps, releaseId);
  const { count } = await deps.db.appRelease.updateMany({ where: { id: releaseId, status: from }, data: { status: to, updatedAt: deps.clock.now() } });
  if (count === 0) throw new HttpError("conflict", `The release is ${release.status}, not ${from}`);
  await recordAudit(deps.db, { actor: actor.name, action, targetType: "app", targetId: release.packageName, ip: actor.ip, details: { releaseId } });
  return getReleaseView(deps, releaseId);
}

export const pauseRelease = (deps: Deps, releaseId: string, actor: Actor) => setStatus(deps, releaseId, "active", "paused", "app_release.pause", actor);
export const resumeRelease = (deps: Deps, releaseId: string, actor: Actor) => setStatus(deps, releaseId, "paused", "active", "app_release.resume", actor);

/** What a rollback of the release sends: the app's highest catalogue version below it. */
export function previousVersionOf(db: DbOrTx, release: Pick<AppRelease, "packageName" | "versionCode">): Promise<AppVersion | null> {
  return db.appVersion.findFirst({ where: { packageName: release.packageName, versionCode: { lt: release.versionCode } }, orderBy: { versionCode: "desc" } });
}

/**
 * Sends the previous version to every device in service the release was sent to, and
 * cancels its install commands that have not reached their device yet: one transaction
 * with the status change, so a release is never rolled back with nothing sent.
 */
export async function rollbackRelease(deps: Deps, releaseId: string, actor: Actor): Promise<AppReleaseView> {
  const release = await findRelease(deps, releaseId);
  installUrlBase(deps.env);
  const now = deps.clock.now();
  const reason = `release ${releaseId} rolled back`;
  const outcome = await deps.db.$transaction(
    async (tx) => {
      // Orders the rollback with releases of the app (createRelease takes the same lock).
      await tx.$queryRaw`SELECT 1 FROM "CatalogueApp" WHERE "packageName" = ${release.packageName} FOR UPDATE`;
      // A newer release that reached its devices put them on its version: rolling this one back
      // would take them below both. That one goes first.
      const [newer] = await tx.$queryRaw<Array<{ id: string; versionCode: number; status: string }>>`
        SELECT r.id::text AS id, r."versionCode", r.status::text AS status FROM "AppRelease" r
        WHERE r."packageName" = ${release.packageName} AND r.id <> ${releaseId}::uuid AND r."createdAt" > ${release.createdAt}
          AND r.status IN ('active', 'paused', 'completed')
          AND EXISTS (
            SELECT 1 FROM "AppReleaseDevice" theirs JOIN "AppReleaseDevice" ours ON ours."deviceId" = theirs."deviceId" AND ours."releaseId" = ${releaseId}::uuid
            WHERE theirs."releaseId" = r.id)
        ORDER BY r."createdAt" DESC LIMIT 1`;
      if (newer) {
        throw new HttpError(
          "conflict",
          `Release ${newer.id} (${newer.status}) of version ${newer.versionCode}, newer than this one, reached devices of this release: roll back the newer release first`,
        );
      }
      // What the catalogue holds now, under the lock a version's deletion takes too: a version
      // uploaded or deleted since the release was created counts.
      const previousVersion = await previousVersionOf(tx, release);
      if (!previousVersion)
        throw new HttpError("conflict", `The catalogue has no version of ${release.packageName} below ${release.versionCode} to roll back to`);
      const { count } = await tx.appRelease.updateMany({
        where: { id: releaseId, status: { in: ["active", "paused", "completed"] } },
        data: { status: "rolled_back", previousVersionId: previousVersion.id, previousVersionCode: previousVersion.versionCode, updatedAt: now },
      });
      if (count === 0) throw new HttpError("conflict", `The release is already ${release.status}`);
      const rows = await tx.$queryRaw<Array<{ deviceId: string; requestId: string | null; inService: boolean }>>`
        SELECT rd."deviceId"::text AS "deviceId", rd."requestId"::text AS "requestId", (d."retiredAt" IS NULL) AS "inService"
        FROM "AppReleaseDevice" rd JOIN "Device" d ON d.id = rd."deviceId"
        WHERE rd."releaseId" = ${releaseId}::uuid AND rd."versionCode" = ${release.versionCode}`;
      // A device that reports a version above this release's, or that another release last sent
      // one, runs something newer than this release sent: not this rollback's to take lower
      // (its queued command is cancelled all the same).
      const ahead = await aheadOf(
        tx,
        { id: releaseId, packageName: release.packageName },
        release.versionCode,
        rows.map((row) => row.deviceId),
      );
      const cancelled = await tx.command.updateManyAndReturn({
        where: { requestId: { in: rows.flatMap((row) => (row.requestId ? [row.requestId] : [])) }, status: "queued" },
        data: { status: "cancelled", completedAt: now, nextAttemptAt: null, errorMessage: reason },
        select: { requestId: true, deviceId: true, batchId: true },
      });
      await tx.commandEvent.createMany({ data: cancelled.map((row) => ({ requestId: row.requestId, status: "cancelled" as const, at: now, detail: reason })) });
      await emitCommandStatusChanges(
        tx,
        cancelled.map((row) => ({ ...row, status: "cancelled" as const, detail: reason })),
        now,
      );
      const devices = rows.filter((row) => row.inService && !ahead.has(row.deviceId)).map((row) => row.deviceId);
      await recordAudit(tx, {
        actor: actor.name,
        action: "app_release.rollback",
        targetType: "app",
        targetId: release.packageName,
        ip: actor.ip,
        details: { releaseId, toVersionCode: previousVersion.versionCode, devices: devices.length },
      });
      const sent = await sendVersion(tx, deps, release, previousVersion, devices, actor);
      return { sent, cancelled };
    },
    { timeout: SEND_TIMEOUT_MS },
  );
  for (const row of outcome.cancelled) {
    deps.bus.publish({
      kind: "command_status",
      change: { requestId: row.requestId, deviceId: row.deviceId, batchId: row.batchId, status: "cancelled", at: now.toISOString() },
    });
  }
  afterCommit(deps, { sent: outcome.sent, awaiting: false });
  return getReleaseView(deps, releaseId);
}

type DeviceRow = { releaseId: string; deviceId: string; requestId: string | null; versionCode: number; status: ReleaseDevice["status"]; reason: string | null };

/**
 * A device's state in a release (rd: its row, r: the release, c: its command, d: the device),
 * from the two things a device tells: the result of its install command, and the apps its
 * heartbeats report. `installed` while it reports the row's version, or its command
 * succeeded and no report came since; `replaced` when a report since the command succeeded
 * shows another version (or none): the device no longer runs what the release sent.
 */
const DEVICE_STATUS = Prisma.sql`
  CASE
    WHEN EXISTS (
      SELECT 1 FROM jsonb_array_elements(CASE WHEN jsonb_typeof(d."appStatus") = 'array' THEN d."appStatus" ELSE '[]'::jsonb END) app
      WHERE app->>'packageName' = r."packageName" AND app->>'versionCode' = rd."versionCode"::text) THEN 'installed'
    WHEN c.status = 'succeeded' AND (d."appsReportedAt" IS NULL OR d."appsReportedAt" <= c."completedAt") THEN 'installed'
    WHEN c.status = 'succeeded' THEN 'replaced'
    WHEN c.status IN ('failed', 'expired', 'cancelled') THEN 'failed'
    ELSE 'pending'
  END`;

async function deviceRowsOf({ db }: Pick<AppDeps, "db">, releaseIds: string[], limit: number): Promise<DeviceRow[]> {
  if (releaseIds.length === 0) return [];
  return db.$queryRaw<DeviceRow[]>`
    SELECT * FROM (
      SELECT rd."releaseId"::text AS "releaseId", rd."deviceId"::text AS "deviceId", rd."requestId"::text AS "requestId", rd."versionCode",
        ${DEVICE_STATUS} AS status,
        CASE WHEN c.status IN ('failed', 'expired', 'cancelled') THEN COALESCE(c."errorMessage", c.status::text) END AS reason
      FROM "AppReleaseDevice" rd
      JOIN "AppRelease" r ON r.id = rd."releaseId"
      LEFT JOIN "Command" c ON c."requestId" = rd."requestId"
      JOIN "Device" d ON d.id = rd."deviceId" AND d."retiredAt" IS NULL
      WHERE rd."releaseId"::text = ANY(${releaseIds})) rows
    ORDER BY CASE status WHEN 'failed' THEN 0 WHEN 'pending' THEN 1 WHEN 'replaced' THEN 2 ELSE 3 END, "deviceId"
    LIMIT ${limit}`;
}

async function progressOf(deps: Pick<AppDeps, "db">, release: AppRelease): Promise<ReleaseProgress> {
  const counts = await deps.db.$queryRaw<Array<{ status: ReleaseDevice["status"]; count: number }>>`
    SELECT status, count(*)::int AS count FROM (
      SELECT ${DEVICE_STATUS} AS status
      FROM "AppReleaseDevice" rd
      JOIN "AppRelease" r ON r.id = rd."releaseId"
      LEFT JOIN "Command" c ON c."requestId" = rd."requestId"
      JOIN "Device" d ON d.id = rd."deviceId" AND d."retiredAt" IS NULL
      WHERE rd."releaseId" = ${release.id}::uuid) rows
    GROUP BY status`;
  const byStatus = Object.fromEntries(counts.map((row) => [row.status, row.count]));
  const targeted = await deps.db.device.count({ where: targetWhere(release.target as ReleaseTarget) });
  const installed = byStatus.installed ?? 0;
  const pending = byStatus.pending ?? 0;
  const failed = byStatus.failed ?? 0;
  const replaced = byStatus.replaced ?? 0;
  return { targeted, sent: installed + pending + failed + replaced, installed, pending, failed, replaced };
}

async function toReleaseView(deps: Pick<AppDeps, "db">, release: ReleaseWithVersions): Promise<AppReleaseView> {
  return {
    id: release.id,
    packageName: release.packageName,
    versionCode: release.versionCode,
    versionName: release.versionName,
    // Rolled back: what it sent. Otherwise what a rollback would send now.
    previousVersionCode: release.status === "rolled_back" ? release.previousVersionCode : ((await previousVersionOf(deps.db, release))?.versionCode ?? null),
    target: release.target as ReleaseTarget,
    percent: release.percent,
    status: release.status,
    autoAdvance: release.autoAdvance,
    maxFailurePercent: release.maxFailurePercent,
    progress: await progressOf(deps, release),
    createdBy: release.createdBy,
    createdAt: release.createdAt.toISOString(),
    updatedAt: release.updatedAt.toISOString(),
  };
}

export async function getReleaseView(deps: Pick<AppDeps, "db">, releaseId: string): Promise<AppReleaseView> {
  return toReleaseView(deps, await findRelease(deps, releaseId));
}

export async function getReleaseDetail(deps: Pick<AppDeps, "db">, releaseId: string): Promise<ReleaseDetail> {
  const view = await getReleaseView(deps, releaseId);
  const rows = await deviceRowsOf(deps, [releaseId], 1000);
  return {
    ...view,
    devices: rows.map((row) => ({ deviceId: row.deviceId, versionCode: row.versionCode, status: row.status, reason: row.reason, requestId: row.requestId })),
  };
}

export async function listReleaseViews(deps: Pick<AppDeps, "db">, packageNames: string[]): Promise<AppReleaseView[]> {
  const views: AppReleaseView[] = [];
  for (const packageName of packageNames) {
    const releases = await deps.db.appRelease.findMany({ where: { packageName }, include: withVersions, orderBy: { createdAt: "desc" }, take: 20 });
    for (const release of releases) views.push(await toReleaseView(deps, release));
  }
  return views;
}

/**
 * The cluster's rollout job (once per period): each active auto-advancing release whose
 * devices have all finished steps up when its failure rate is within its threshold, and
 * pauses itself when it is not, for an admin to look at. Then each app's newest completed
 * release per target is sent to the devices that joined its target since (at most
 * TOP_UP_LIMIT per release per run). A release that fails is logged and skipped: the others still run.
 */
export async function advanceRollouts(deps: Deps): Promise<{ advanced: number; paused: number; toppedUp: number }> {
  const actor = { name: "auto-rollout" };
  const releases = await deps.db.appRelease.findMany({
    where: { status: "active", autoAdvance: true, percent: { lt: 100 } },
    include: withVersions,
    orderBy: { updatedAt: "asc" },
    take: 100,
  });
  let advanced = 0;
  let paused = 0;
  let toppedUp = 0;
  for (const release of releases) {
    try {
      const progress = await progressOf(deps, release);
      if (progress.sent === 0 || progress.pending > 0) continue;
      if ((progress.failed * 100) / progress.sent > release.maxFailurePercent) {
        await pauseRelease(deps, release.id, actor);
        deps.logger.warn("release paused: failure rate over its threshold", { releaseId: release.id, failed: progress.failed, sent: progress.sent });
        paused++;
        continue;
      }
      await advanceRelease(deps, release.id, {}, actor);
      advanced++;
    } catch (error) {
      // A conflict is an admin (or another instance) acting on it meanwhile.
      if (error instanceof HttpError && error.code === "conflict") continue;
      deps.logger.error("release not advanced", { releaseId: release.id, message: error instanceof Error ? error.message : String(error) });
    }
  }
  // Older completed releases of the same app and target are superseded: only the newest tops up.
  // Highest version first: a newcomer to two targets gets the higher one, and the lower is then skipped.
  const completed = await deps.db.$queryRaw<Array<{ id: string }>>`
    SELECT id::text AS id FROM (
      SELECT DISTINCT ON ("packageName", target) id, "versionCode", "createdAt" FROM "AppRelease"
      WHERE status = 'completed' ORDER BY "packageName", target, "createdAt" DESC) latest
    ORDER BY "versionCode" DESC, "createdAt" DESC LIMIT ${TOP_UP_RELEASES}`;
  for (const { id } of completed) {
    try {
      const outcome = await deps.db.$transaction(
        async (tx) => {
          // Locked: a rollback meanwhile waits, then sends the previous version to these newcomers too.
          const locked = await tx.$queryRaw<unknown[]>`SELECT 1 FROM "AppRelease" WHERE id = ${id}::uuid AND status = 'completed' FOR UPDATE`;
          const release = locked.length > 0 ? await tx.appRelease.findUnique({ where: { id }, include: withVersions }) : null;
          if (!release) return { sent: 0, awaiting: false };
          return { sent: await fillShare(tx, deps, release, actor, TOP_UP_LIMIT), awaiting: false };
        },
        { timeout: SEND_TIMEOUT_MS },
      );
      afterCommit(deps, outcome);
      if (outcome.sent > 0) toppedUp++;
    } catch (error) {
      deps.logger.error("release not topped up", { releaseId: id, message: error instanceof Error ? error.message : String(error) });
    }
  }
  return { advanced, paused, toppedUp };
}
