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
} from "@mdm/contracts";
import type { AppDeps } from "../../deps";
import type { AppRelease, AppVersion, Prisma } from "../../generated/prisma/client";
import { recordAudit } from "../../lib/audit";
import { HttpError } from "../../lib/http-error";
import { createBulkCommand, transition } from "../commands/commands.service";
import { signedAppFilePath } from "./download-url";

type Deps = Pick<AppDeps, "db" | "clock" | "env" | "logger" | "bus">;
type Actor = { name: string; ip?: string };
type ReleaseWithVersions = AppRelease & { version: AppVersion; previousVersion: AppVersion | null };

const withVersions = { version: true, previousVersion: true } as const;
// A bulk command's target takes at most this many device ids.
const SEND_CHUNK = 10_000;
// The download URL outlives the command that carries it by this much, so a device that
// receives the command just before it expires still has time to download.
const URL_GRACE_SECONDS = 24 * 3600;

/** Stable position of a device in a release's rollout order: a higher percentage only adds devices. */
function rankOf(releaseId: string, deviceId: string): string {
  return createHash("sha256").update(`${releaseId}:${deviceId}`).digest("hex");
}

async function targetDeviceIds({ db }: Pick<AppDeps, "db">, target: ReleaseTarget): Promise<string[]> {
  const where: Prisma.DeviceWhereInput = "group" in target ? { groups: { has: target.group } } : {};
  return (await db.device.findMany({ where, select: { id: true } })).map((device) => device.id);
}

/** The devices `percent` of the target covers: the first of the rollout order, rounded up. */
function shareOf(releaseId: string, deviceIds: string[], percent: number): string[] {
  const ranked = deviceIds.map((id) => ({ id, rank: rankOf(releaseId, id) })).sort((a, b) => (a.rank < b.rank ? -1 : a.rank > b.rank ? 1 : 0));
  return ranked.slice(0, Math.ceil((ranked.length * percent) / 100)).map((device) => device.id);
}

function installUrlBase(env: AppDeps["env"]): string {
  const base = env.PUBLIC_API_URL;
  if (!base?.startsWith("https://")) {
    throw new HttpError("conflict", "Set PUBLIC_API_URL to the API's https:// address as devices reach it: install commands carry a download URL on it");
  }
  return base;
}

/**
 * Sends a catalogue version to devices as install_app bulk commands (chunks of
 * SEND_CHUNK): a download URL signed to outlive the command, and the file's SHA-256.
 * Releases and required apps both send versions this way. Returns the batch ids.
 */
export async function sendInstallCommands(
  deps: Deps,
  version: Pick<AppVersion, "packageName" | "sha256" | "versionCode">,
  deviceIds: string[],
  actor: Actor,
): Promise<string[]> {
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
  const batchIds: string[] = [];
  for (let start = 0; start < deviceIds.length; start += SEND_CHUNK) {
    const chunk = deviceIds.slice(start, start + SEND_CHUNK);
    const batch = await createBulkCommand(deps, { type: "install_app", payload, target: { deviceIds: chunk }, delivery: "auto", ttlSeconds }, actor);
    batchIds.push(batch.batchId);
  }
  return batchIds;
}

/** Sends `version` to `deviceIds` as install_app batches and records each device's command. */
async function sendVersion(deps: Deps, release: AppRelease, version: AppVersion, deviceIds: string[], actor: Actor): Promise<void> {
  const now = deps.clock.now();
  for (const batchId of await sendInstallCommands(deps, version, deviceIds, actor)) {
    const commands = await deps.db.command.findMany({ where: { batchId }, select: { deviceId: true, requestId: true } });
    await deps.db.$transaction(
      commands.map((command) =>
        deps.db.appReleaseDevice.upsert({
          where: { releaseId_deviceId: { releaseId: release.id, deviceId: command.deviceId } },
          create: { releaseId: release.id, deviceId: command.deviceId, versionId: version.id, requestId: command.requestId, sentAt: now },
          update: { versionId: version.id, requestId: command.requestId, sentAt: now },
        }),
      ),
    );
  }
}

/** Sends the release to the devices its percentage covers that it was not sent to yet. */
async function fillShare(deps: Deps, release: ReleaseWithVersions, actor: Actor): Promise<number> {
  const share = shareOf(release.id, await targetDeviceIds(deps, release.target as ReleaseTarget), release.percent);
  const sent = new Set((await deps.db.appReleaseDevice.findMany({ where: { releaseId: release.id }, select: { deviceId: true } })).map((row) => row.deviceId));
  const missing = share.filter((deviceId) => !sent.has(deviceId));
  if (missing.length > 0) await sendVersion(deps, release, release.version, missing, actor);
  return missing.length;
}

export async function createRelease(deps: Deps, packageName: string, input: CreateReleaseRequest, actor: Actor): Promise<AppReleaseView> {
  const { db } = deps;
  const version = await db.appVersion.findUnique({ where: { packageName_versionCode: { packageName, versionCode: input.versionCode } } });
  if (!version) throw new HttpError("not_found", `The catalogue has no version ${input.versionCode} of ${packageName}`);
  installUrlBase(deps.env);
  const running = await db.appRelease.findFirst({ where: { packageName, status: { in: ["active", "paused"] } }, select: { id: true } });
  if (running) throw new HttpError("conflict", `${packageName} already has a release in progress (${running.id}): roll it back or let it finish first`);
  const previous = await db.appVersion.findFirst({ where: { packageName, versionCode: { lt: version.versionCode } }, orderBy: { versionCode: "desc" } });
  const now = deps.clock.now();
  const release = await db.appRelease.create({
    data: {
      id: randomUUID(),
      packageName,
      versionId: version.id,
      previousVersionId: previous?.id ?? null,
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
  await recordAudit(db, {
    actor: actor.name,
    action: "app_release.create",
    targetType: "app",
    targetId: packageName,
    ip: actor.ip,
    details: { releaseId: release.id, versionCode: version.versionCode, target: input.target, percent: input.percent },
  });
  await fillShare(deps, release, actor);
  return getReleaseView(deps, release.id);
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
  // The claim: of two concurrent advances, only the one that moves the row sends.
  const claimed = await deps.db.appRelease.updateManyAndReturn({
    where: { id: releaseId, status: "active", percent: release.percent },
    data: { percent, updatedAt: deps.clock.now() },
    include: withVersions,
  });
  if (claimed.length === 0) throw new HttpError("conflict", "The release changed meanwhile; reload it");
  await recordAudit(deps.db, {
    actor: actor.name,
    action: "app_release.advance",
    targetType: "app",
    targetId: release.packageName,
    ip: actor.ip,
    details: { releaseId, from: release.percent, to: percent, ...(input.reason ? { reason: input.reason } : {}) },
  });
  await fillShare(deps, claimed[0] as ReleaseWithVersions, actor);
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

/**
 * Sends the previous version to every device the release was sent to, and cancels its
 * install commands that have not reached their device yet.
 */
export async function rollbackRelease(deps: Deps, releaseId: string, actor: Actor): Promise<AppReleaseView> {
  const release = await findRelease(deps, releaseId);
  if (!release.previousVersion)
    throw new HttpError("conflict", `The catalogue has no version of ${release.packageName} below ${release.version.versionCode} to roll back to`);
  const { count } = await deps.db.appRelease.updateMany({
    where: { id: releaseId, status: { in: ["active", "paused"] } },
    data: { status: "rolled_back", updatedAt: deps.clock.now() },
  });
  if (count === 0) throw new HttpError("conflict", `The release is already ${release.status}`);
  const rows = await deps.db.appReleaseDevice.findMany({ where: { releaseId, versionId: release.versionId }, select: { deviceId: true, requestId: true } });
  const requestIds = rows.flatMap((row) => (row.requestId ? [row.requestId] : []));
  const unsent = await deps.db.command.findMany({ where: { requestId: { in: requestIds }, status: "queued" }, select: { requestId: true } });
  const now = deps.clock.now();
  for (const { requestId } of unsent) {
    await transition(deps, requestId, ["queued"], "cancelled", now, `release ${releaseId} rolled back`, { completedAt: now, nextAttemptAt: null });
  }
  await recordAudit(deps.db, {
    actor: actor.name,
    action: "app_release.rollback",
    targetType: "app",
    targetId: release.packageName,
    ip: actor.ip,
    details: { releaseId, toVersionCode: release.previousVersion.versionCode, devices: rows.length },
  });
  await sendVersion(
    deps,
    release,
    release.previousVersion,
    rows.map((row) => row.deviceId),
    actor,
  );
  return getReleaseView(deps, releaseId);
}

type DeviceRow = { releaseId: string; deviceId: string; requestId: string | null; versionCode: number; status: ReleaseDevice["status"]; reason: string | null };

/**
 * Each device's progress, from the two things a device tells: the result of its install
 * command, and the apps its heartbeats report (a device that reports the version has it,
 * whatever became of the command).
 */
async function deviceRowsOf({ db }: Pick<AppDeps, "db">, releaseIds: string[], limit: number): Promise<DeviceRow[]> {
  if (releaseIds.length === 0) return [];
  return db.$queryRaw<DeviceRow[]>`
    SELECT * FROM (
      SELECT rd."releaseId"::text AS "releaseId", rd."deviceId"::text AS "deviceId", rd."requestId"::text AS "requestId", v."versionCode",
        CASE
          WHEN c.status = 'succeeded' OR EXISTS (
            SELECT 1 FROM jsonb_array_elements(CASE WHEN jsonb_typeof(d."appStatus") = 'array' THEN d."appStatus" ELSE '[]'::jsonb END) app
            WHERE app->>'packageName' = v."packageName" AND app->>'versionCode' = v."versionCode"::text) THEN 'installed'
          WHEN c.status IN ('failed', 'expired', 'cancelled') THEN 'failed'
          ELSE 'pending'
        END AS status,
        CASE WHEN c.status IN ('failed', 'expired', 'cancelled') THEN COALESCE(c."errorMessage", c.status::text) END AS reason
      FROM "AppReleaseDevice" rd
      JOIN "AppVersion" v ON v.id = rd."versionId"
      LEFT JOIN "Command" c ON c."requestId" = rd."requestId"
      LEFT JOIN "Device" d ON d.id = rd."deviceId"
      WHERE rd."releaseId"::text = ANY(${releaseIds})) rows
    ORDER BY CASE status WHEN 'failed' THEN 0 WHEN 'pending' THEN 1 ELSE 2 END, "deviceId"
    LIMIT ${limit}`;
}

async function progressOf(deps: Pick<AppDeps, "db">, release: AppRelease): Promise<ReleaseProgress> {
  const counts = await deps.db.$queryRaw<Array<{ status: ReleaseDevice["status"]; count: number }>>`
    SELECT status, count(*)::int AS count FROM (
      SELECT CASE
          WHEN c.status = 'succeeded' OR EXISTS (
            SELECT 1 FROM jsonb_array_elements(CASE WHEN jsonb_typeof(d."appStatus") = 'array' THEN d."appStatus" ELSE '[]'::jsonb END) app
            WHERE app->>'packageName' = v."packageName" AND app->>'versionCode' = v."versionCode"::text) THEN 'installed'
          WHEN c.status IN ('failed', 'expired', 'cancelled') THEN 'failed'
          ELSE 'pending'
        END AS status
      FROM "AppReleaseDevice" rd
      JOIN "AppVersion" v ON v.id = rd."versionId"
      LEFT JOIN "Command" c ON c."requestId" = rd."requestId"
      LEFT JOIN "Device" d ON d.id = rd."deviceId"
      WHERE rd."releaseId" = ${release.id}::uuid) rows
    GROUP BY status`;
  const byStatus = Object.fromEntries(counts.map((row) => [row.status, row.count]));
  const target = release.target as ReleaseTarget;
  const targeted = await deps.db.device.count({ where: "group" in target ? { groups: { has: target.group } } : {} });
  const installed = byStatus.installed ?? 0;
  const pending = byStatus.pending ?? 0;
  const failed = byStatus.failed ?? 0;
  return { targeted, sent: installed + pending + failed, installed, pending, failed };
}

async function toReleaseView(deps: Pick<AppDeps, "db">, release: ReleaseWithVersions): Promise<AppReleaseView> {
  return {
    id: release.id,
    packageName: release.packageName,
    versionCode: release.version.versionCode,
    versionName: release.version.versionName,
    previousVersionCode: release.previousVersion?.versionCode ?? null,
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
 * pauses itself when it is not, for an admin to look at.
 */
export async function advanceRollouts(deps: Deps): Promise<{ advanced: number; paused: number }> {
  const actor = { name: "auto-rollout" };
  const releases = await deps.db.appRelease.findMany({
    where: { status: "active", autoAdvance: true, percent: { lt: 100 } },
    include: withVersions,
    take: 100,
  });
  let advanced = 0;
  let paused = 0;
  for (const release of releases) {
    const progress = await progressOf(deps, release);
    if (progress.sent === 0 || progress.pending > 0) continue;
    if ((progress.failed * 100) / progress.sent > release.maxFailurePercent) {
      await pauseRelease(deps, release.id, actor);
      deps.logger.warn("release paused: failure rate over its threshold", { releaseId: release.id, failed: progress.failed, sent: progress.sent });
      paused++;
      continue;
    }
    try {
      await advanceRelease(deps, release.id, {}, actor);
      advanced++;
    } catch (error) {
      if (!(error instanceof HttpError && error.code === "conflict")) throw error;
    }
  }
  return { advanced, paused };
}
