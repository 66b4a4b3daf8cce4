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
import { announceCancelled } from "../commands/command-transitions";
import { cancelQueuedCommands, queueBulkCommand } from "../commands/commands.service";
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

/**
 * The version of the app that device `d` runs as far as the server knows: a release install
 * of it that succeeded after the device last reported its apps, else the highest version its
 * last app list reports (null: it reported none, or never reported its apps).
 */
function runningVersionSql(packageName: string): Prisma.Sql {
  return Prisma.sql`COALESCE(
    (SELECT prior."versionCode" FROM "AppReleaseDevice" prior
      JOIN "AppRelease" pr ON pr.id = prior."releaseId" JOIN "Command" pc ON pc."requestId" = prior."requestId"
      WHERE prior."deviceId" = d.id AND pr."packageName" = ${packageName} AND pc.status = 'succeeded'
        AND (d."appsReportedAt" IS NULL OR pc."completedAt" > d."appsReportedAt")
      ORDER BY pc."completedAt" DESC LIMIT 1),
    (SELECT max((app->>'versionCode')::int) FROM jsonb_array_elements(CASE WHEN jsonb_typeof(d."appStatus") = 'array' THEN d."appStatus" ELSE '[]'::jsonb END) app
      WHERE app->>'packageName' = ${packageName} AND jsonb_typeof(app->'versionCode') = 'number' AND app->>'versionCode' ~ '^[0-9]{1,9}$'))`;
}

/**
 * Queues `version` for `deviceIds` in the caller's transaction and records each device's
 * command in the release, with the version the device ran before (kept when a rollback
 * rewrites the row: it is what the rollback sends).
 */
async function sendVersion(tx: DbOrTx, deps: Deps, release: AppRelease, version: AppVersion, deviceIds: string[], actor: Actor): Promise<number> {
  if (deviceIds.length === 0) return 0;
  const now = deps.clock.now();
  const commands = await queueInstallCommands(tx, deps, version, deviceIds, actor);
  await tx.$executeRaw`
    INSERT INTO "AppReleaseDevice" ("releaseId", "deviceId", "versionId", "versionCode", "requestId", "sentAt", "fromVersionCode")
    SELECT ${release.id}::uuid, c."deviceId", ${version.id}::uuid, ${version.versionCode}, c."requestId", ${now}, ${runningVersionSql(release.packageName)}
    FROM unnest(${commands.map((command) => command.deviceId)}::uuid[], ${commands.map((command) => command.requestId)}::uuid[]) AS c("deviceId", "requestId")
    JOIN "Device" d ON d.id = c."deviceId"
    ON CONFLICT ("releaseId", "deviceId") DO UPDATE SET "versionId" = EXCLUDED."versionId", "versionCode" = EXCLUDED."versionCode",
      "requestId" = EXCLUDED."requestId", "sentAt" = EXCLUDED."sentAt", "rollbackSkipped" = NULL`;
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

/**
 * Every change to an app's releases (create, advance, pause, resume, roll back, the rollout
 * job's sends) and the deletion of its versions first takes the app's row lock, in its own
 * transaction: they run one at a time per app, each on what the one before committed. (An
 * advance holding the release's row while a rollback held the app's deadlocked; a rollback
 * that planned before an advance committed left that advance's installs queued.)
 */
export async function lockApp(tx: DbOrTx, packageName: string): Promise<void> {
  const locked = await tx.$queryRaw<unknown[]>`SELECT 1 FROM "CatalogueApp" WHERE "packageName" = ${packageName} FOR UPDATE`;
  if (locked.length === 0) throw new HttpError("not_found", `The catalogue has no app ${packageName}`);
}

/** The release as it is once its app is locked (lockApp). */
async function lockRelease(tx: DbOrTx, releaseId: string): Promise<ReleaseWithVersions> {
  const found = await tx.appRelease.findUnique({ where: { id: releaseId }, select: { packageName: true } });
  if (!found) throw new HttpError("not_found", "No release has this id");
  await lockApp(tx, found.packageName);
  return findRelease({ db: tx }, releaseId);
}

export async function createRelease(deps: Deps, packageName: string, input: CreateReleaseRequest, actor: Actor): Promise<AppReleaseView> {
  const version = await deps.db.appVersion.findUnique({ where: { packageName_versionCode: { packageName, versionCode: input.versionCode } } });
  if (!version) throw new HttpError("not_found", `The catalogue has no version ${input.versionCode} of ${packageName}`);
  installUrlBase(deps.env);
  // The release, its commands and its rows commit together: a refusal leaves nothing behind.
  const outcome = await deps.db.$transaction(
    async (tx) => {
      // Concurrent releases of one app: the second sees the first.
      await lockApp(tx, packageName);
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

async function findRelease({ db }: { db: DbOrTx }, releaseId: string): Promise<ReleaseWithVersions> {
  const release = await db.appRelease.findUnique({ where: { id: releaseId }, include: withVersions });
  if (!release) throw new HttpError("not_found", "No release has this id");
  return release;
}

/**
 * Steps the release up to `input.percent`, or the next rollout step. `expectedPercent`: only
 * from that percentage (the rollout job decided on the progress it saw there).
 */
export async function advanceRelease(
  deps: Deps,
  releaseId: string,
  input: AdvanceReleaseRequest,
  actor: Actor,
  expectedPercent?: number,
): Promise<AppReleaseView> {
  installUrlBase(deps.env);
  const outcome = await deps.db.$transaction(
    async (tx) => {
      const release = await lockRelease(tx, releaseId);
      if (release.status !== "active") throw new HttpError("conflict", `The release is ${release.status}; only an active release advances`);
      if (expectedPercent !== undefined && release.percent !== expectedPercent) throw new HttpError("conflict", "The release changed meanwhile; reload it");
      const percent = input.percent ?? ROLLOUT_STEPS.find((step) => step > release.percent);
      if (percent === undefined || percent <= release.percent)
        throw new HttpError("conflict", `The release is already at ${release.percent}%; advance it to a higher percentage`);
      const advanced = await tx.appRelease.update({ where: { id: releaseId }, data: { percent, updatedAt: deps.clock.now() }, include: withVersions });
      await recordAudit(tx, {
        actor: actor.name,
        action: "app_release.advance",
        targetType: "app",
        targetId: release.packageName,
        ip: actor.ip,
        details: { releaseId, from: release.percent, to: percent, ...(input.reason ? { reason: input.reason } : {}) },
      });
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
  await deps.db.$transaction(async (tx) => {
    const release = await lockRelease(tx, releaseId);
    if (release.status !== from) throw new HttpError("conflict", `The release is ${release.status}, not ${from}`);
    await tx.appRelease.update({ where: { id: releaseId }, data: { status: to, updatedAt: deps.clock.now() } });
    await recordAudit(tx, { actor: actor.name, action, targetType: "app", targetId: release.packageName, ip: actor.ip, details: { releaseId } });
  });
  return getReleaseView(deps, releaseId);
}

export const pauseRelease = (deps: Deps, releaseId: string, actor: Actor) => setStatus(deps, releaseId, "active", "paused", "app_release.pause", actor);
export const resumeRelease = (deps: Deps, releaseId: string, actor: Actor) => setStatus(deps, releaseId, "paused", "active", "app_release.resume", actor);

type RollbackPlan = {
  /** Per version to send: the devices that ran it before the release. */
  sends: Array<{ version: AppVersion; deviceIds: string[] }>;
  /** Devices in service the rollback sends nothing, and why. */
  skipped: Array<{ deviceId: string; reason: string }>;
  /** The version most devices go back to (ties: the higher), null when none does. */
  mostCommon: AppVersion | null;
  /** The install commands of the release that have not reached their device: cancelled. */
  queuedRequestIds: string[];
};

/**
 * What a rollback of the release does, device by device, for the devices in service it was
 * sent to (and not already rolled back): a device whose install succeeded, or is still
 * pending (queued, sent, acknowledged), is sent the version it ran before the release
 * (fromVersionCode), when the catalogue still has it. Left as they are: a device whose
 * install failed, expired or was cancelled (it still runs what it had), one that had no
 * earlier version (an install cannot take an app away: it keeps the release's version), one
 * whose earlier version left the catalogue, and one that runs a version above the
 * release's, or that another release last sent one.
 */
async function planRollback(db: DbOrTx, release: Pick<AppRelease, "id" | "packageName" | "versionCode">): Promise<RollbackPlan> {
  const rows = await db.$queryRaw<
    Array<{
      deviceId: string;
      requestId: string | null;
      inService: boolean;
      fromVersionCode: number | null;
      command: string | null;
      error: string | null;
      runsIt: boolean;
    }>
  >`
    SELECT rd."deviceId"::text AS "deviceId", rd."requestId"::text AS "requestId", (d."retiredAt" IS NULL) AS "inService", rd."fromVersionCode",
      c.status::text AS command, c."errorMessage" AS error,
      EXISTS (
        SELECT 1 FROM jsonb_array_elements(CASE WHEN jsonb_typeof(d."appStatus") = 'array' THEN d."appStatus" ELSE '[]'::jsonb END) app
        WHERE app->>'packageName' = ${release.packageName} AND app->>'versionCode' = ${String(release.versionCode)}) AS "runsIt"
    FROM "AppReleaseDevice" rd JOIN "Device" d ON d.id = rd."deviceId" LEFT JOIN "Command" c ON c."requestId" = rd."requestId"
    WHERE rd."releaseId" = ${release.id}::uuid AND rd."versionCode" = ${release.versionCode}
    ORDER BY rd."deviceId"`;
  const queuedRequestIds = rows.flatMap((row) => (row.command === "queued" && row.requestId ? [row.requestId] : []));
  const inService = rows.filter((row) => row.inService);
  const ahead = await aheadOf(
    db,
    release,
    release.versionCode,
    inService.map((row) => row.deviceId),
  );
  const codes = [
    ...new Set(inService.flatMap((row) => (row.fromVersionCode !== null && row.fromVersionCode < release.versionCode ? [row.fromVersionCode] : []))),
  ];
  const versions = new Map(
    (await db.appVersion.findMany({ where: { packageName: release.packageName, versionCode: { in: codes } } })).map((version) => [
      version.versionCode,
      version,
    ]),
  );
  const byVersion = new Map<number, string[]>();
  const skipped: RollbackPlan["skipped"] = [];
  const v = release.versionCode;
  for (const row of inService) {
    const skip = (reason: string) => skipped.push({ deviceId: row.deviceId, reason });
    if (ahead.has(row.deviceId)) {
      skip(`it runs a version above ${v}, or another release last sent it one`);
      continue;
    }
    // A queued install is cancelled, but may be on its way to the device as it is: sent back too.
    const reached = row.runsIt || (row.command !== null && ["queued", "sent", "acknowledged", "succeeded"].includes(row.command));
    if (!reached) {
      skip(`its install of version ${v} failed (${row.error ?? row.command ?? "no command"}): it runs what it ran before`);
      continue;
    }
    const from = row.fromVersionCode;
    if (from === null) {
      skip(`it had no earlier version of the app when the release was sent: it keeps version ${v} (uninstall_app removes it)`);
      continue;
    }
    if (from >= v) {
      skip(`it ran version ${from} before the release: nothing lower to go back to`);
      continue;
    }
    if (!versions.has(from)) {
      skip(`version ${from}, which it ran before the release, is no longer in the catalogue: it keeps version ${v}`);
      continue;
    }
    byVersion.set(from, [...(byVersion.get(from) ?? []), row.deviceId]);
  }
  const sends = [...byVersion.entries()].map(([code, deviceIds]) => ({ version: versions.get(code) as AppVersion, deviceIds }));
  const most = sends.reduce<RollbackPlan["sends"][number] | null>(
    (best, send) =>
      best === null ||
      send.deviceIds.length > best.deviceIds.length ||
      (send.deviceIds.length === best.deviceIds.length && send.version.versionCode > best.version.versionCode)
        ? send
        : best,
    null,
  );
  return { sends, skipped, mostCommon: most?.version ?? null, queuedRequestIds };
}

/** The versions a rollback of the release would send now (to keep them from deletion). */
export async function rollbackVersionsOf(db: DbOrTx, release: Pick<AppRelease, "id" | "packageName" | "versionCode">): Promise<AppVersion[]> {
  return (await planRollback(db, release)).sends.map((send) => send.version);
}

/**
 * Rolls the release back: each device in service it reached is sent the version it ran
 * before (see planRollback), its install commands that have not reached their device are
 * cancelled, and the devices left as they are get the reason. One transaction with the
 * status change.
 */
export async function rollbackRelease(deps: Deps, releaseId: string, actor: Actor): Promise<AppReleaseView> {
  installUrlBase(deps.env);
  const now = deps.clock.now();
  const reason = `release ${releaseId} rolled back`;
  const outcome = await deps.db.$transaction(
    async (tx) => {
      // Planned on every device the release reached, an advance or a top-up just before included.
      const release = await lockRelease(tx, releaseId);
      if (!["active", "paused", "completed"].includes(release.status)) throw new HttpError("conflict", `The release is already ${release.status}`);
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
      // Under the lock a version's deletion takes too: the versions it sends are still there.
      const plan = await planRollback(tx, release);
      await tx.appRelease.update({
        where: { id: releaseId },
        data: {
          status: "rolled_back",
          previousVersionId: plan.mostCommon?.id ?? null,
          previousVersionCode: plan.mostCommon?.versionCode ?? null,
          updatedAt: now,
        },
      });
      const cancelled = await cancelQueuedCommands(tx, { requestId: { in: plan.queuedRequestIds } }, reason, now);
      if (plan.skipped.length > 0) {
        await tx.$executeRaw`
          UPDATE "AppReleaseDevice" rd SET "rollbackSkipped" = s.reason
          FROM unnest(${plan.skipped.map((row) => row.deviceId)}::uuid[], ${plan.skipped.map((row) => row.reason)}::text[]) AS s("deviceId", reason)
          WHERE rd."releaseId" = ${releaseId}::uuid AND rd."deviceId" = s."deviceId"`;
      }
      await recordAudit(tx, {
        actor: actor.name,
        action: "app_release.rollback",
        targetType: "app",
        targetId: release.packageName,
        ip: actor.ip,
        details: {
          releaseId,
          sent: Object.fromEntries(plan.sends.map((send) => [String(send.version.versionCode), send.deviceIds.length])),
          skipped: plan.skipped.length,
        },
      });
      let sent = 0;
      for (const send of plan.sends) sent += await sendVersion(tx, deps, release, send.version, send.deviceIds, actor);
      return { sent, cancelled };
    },
    { timeout: SEND_TIMEOUT_MS },
  );
  announceCancelled(deps.bus, outcome.cancelled, now);
  afterCommit(deps, { sent: outcome.sent, awaiting: false });
  return getReleaseView(deps, releaseId);
}

type DeviceRow = {
  releaseId: string;
  deviceId: string;
  requestId: string | null;
  versionCode: number;
  fromVersionCode: number | null;
  rollbackSkipped: string | null;
  status: ReleaseDevice["status"];
  reason: string | null;
};

/**
 * A device's state in a release (rd: its row, r: the release, c: its command, d: the device),
 * from the two things a device tells: the result of its install command, and the apps its
 * heartbeats report. `installed` while it reports the row's version in a report since the
 * row was sent (an older one tells what it ran before: a rollback's devices report the
 * version they are sent back to), or its command succeeded and no report came since; `replaced` when a report since the command succeeded
 * shows another version (or none): the device no longer runs what the release sent.
 */
const DEVICE_STATUS = Prisma.sql`
  CASE
    WHEN d."appsReportedAt" > rd."sentAt" AND EXISTS (
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
        rd."fromVersionCode", rd."rollbackSkipped", ${DEVICE_STATUS} AS status,
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

/** Rolled back: the version it sent most devices and how many it sent. Otherwise what a rollback would do now. */
async function rollbackSummary(db: DbOrTx, release: AppRelease): Promise<{ versionCode: number | null; devices: number }> {
  if (release.status !== "rolled_back") {
    const plan = await planRollback(db, release);
    return { versionCode: plan.mostCommon?.versionCode ?? null, devices: plan.sends.reduce((sum, send) => sum + send.deviceIds.length, 0) };
  }
  const [row] = await db.$queryRaw<Array<{ count: number }>>`
    SELECT count(*)::int AS count FROM "AppReleaseDevice" rd JOIN "Device" d ON d.id = rd."deviceId" AND d."retiredAt" IS NULL
    WHERE rd."releaseId" = ${release.id}::uuid AND rd."versionCode" <> ${release.versionCode} AND rd."versionCode" = rd."fromVersionCode"`;
  return { versionCode: release.previousVersionCode, devices: row?.count ?? 0 };
}

async function toReleaseView(deps: Pick<AppDeps, "db">, release: ReleaseWithVersions): Promise<AppReleaseView> {
  const rollback = await rollbackSummary(deps.db, release);
  return {
    id: release.id,
    packageName: release.packageName,
    versionCode: release.versionCode,
    versionName: release.versionName,
    previousVersionCode: rollback.versionCode,
    rollbackDevices: rollback.devices,
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
    devices: rows.map((row) => ({
      deviceId: row.deviceId,
      versionCode: row.versionCode,
      fromVersionCode: row.fromVersionCode,
      status: row.status,
      reason: row.reason,
      rollbackSkipped: row.rollbackSkipped,
      requestId: row.requestId,
    })),
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
 * The cluster's rollout job (once per period): each active release is sent to the devices
 * that joined its target and fall in its share. Then each active auto-advancing release whose
 * devices have all finished steps up when its failure rate is within its threshold (or when
 * every device of its share already runs a newer version), and pauses itself when it is
 * not, for an admin to look at. Then each app's newest completed
 * release per target is sent to the devices that joined its target since (at most
 * TOP_UP_LIMIT per release per run). A release that fails is logged and skipped: the others still run.
 */
export async function advanceRollouts(deps: Deps): Promise<{ advanced: number; paused: number; toppedUp: number }> {
  const actor = { name: "auto-rollout" };
  let advanced = 0;
  let paused = 0;
  let toppedUp = 0;
  // Devices that joined an active release's target and fall in its share are sent it now, not
  // at its next advance (which, for an auto-advancing release, waits on them).
  const active = await deps.db.appRelease.findMany({ where: { status: "active" }, select: { id: true }, orderBy: { updatedAt: "asc" }, take: TOP_UP_RELEASES });
  for (const { id } of active) {
    try {
      const sent = await deps.db.$transaction(
        async (tx) => {
          // An advance, pause or rollback meanwhile waits, and one before it is seen.
          const release = await lockRelease(tx, id);
          return release.status === "active" ? fillShare(tx, deps, release, actor, TOP_UP_LIMIT) : 0;
        },
        { timeout: SEND_TIMEOUT_MS },
      );
      afterCommit(deps, { sent, awaiting: false });
      if (sent > 0) toppedUp++;
    } catch (error) {
      deps.logger.error("release share not filled", { releaseId: id, message: error instanceof Error ? error.message : String(error) });
    }
  }
  const releases = await deps.db.appRelease.findMany({
    where: { status: "active", autoAdvance: true, percent: { lt: 100 } },
    include: withVersions,
    orderBy: { updatedAt: "asc" },
    take: 100,
  });
  for (const release of releases) {
    try {
      const progress = await progressOf(deps, release);
      if (progress.pending > 0) continue;
      // Sent to nobody: with devices in its share, they all run a newer version (the fill above
      // sent the others), so nothing is left to wait for. With none (an empty target), it waits
      // for devices to join: advancing would skip the staging they are owed.
      if (progress.sent === 0) {
        const share = shareOf(release.id, await targetDeviceIds(deps.db, release.target as ReleaseTarget), release.percent);
        if (share.length === 0) continue;
      } else if ((progress.failed * 100) / progress.sent > release.maxFailurePercent) {
        await pauseRelease(deps, release.id, actor);
        deps.logger.warn("release paused: failure rate over its threshold", { releaseId: release.id, failed: progress.failed, sent: progress.sent });
        paused++;
        continue;
      }
      await advanceRelease(deps, release.id, {}, actor, release.percent);
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
          // A rollback meanwhile waits, then treats these newcomers as any device the release reached.
          const release = await lockRelease(tx, id);
          return { sent: release.status === "completed" ? await fillShare(tx, deps, release, actor, TOP_UP_LIMIT) : 0, awaiting: false };
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
