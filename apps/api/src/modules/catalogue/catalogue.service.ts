import { createHash, randomUUID } from "node:crypto";
import { createWriteStream } from "node:fs";
import { readdir, rm, stat } from "node:fs/promises";
import path from "node:path";
import { Transform } from "node:stream";
import { pipeline } from "node:stream/promises";
import type { AppVersion as AppVersionView, CatalogueApp as CatalogueAppView, ListAppsResponse, ReleaseTarget, UploadAppResponse } from "@mdm/contracts";
import busboy from "busboy";
import type { Request, Response } from "express";
import type { AppDeps } from "../../deps";
import { type AppVersion, Prisma } from "../../generated/prisma/client";
import { recordAudit } from "../../lib/audit";
import { HttpError } from "../../lib/http-error";
import { readApk } from "./apk-reader";
import type { ApkStore } from "./apk-store";
import type { DbOrTx } from "../../db/types";
import { newestCatalogueVersions, queueDevicesAwaiting } from "../policies/policies.service";
import { announceCancelled } from "../commands/command-transitions";
import { cancelQueuedCommands } from "../commands/commands.service";
import { listReleaseViews, lockApp, rollbackVersionsOf } from "./releases.service";

type Actor = { name: string; ip?: string };

export function toAppVersionView(version: AppVersion): AppVersionView {
  return {
    id: version.id,
    packageName: version.packageName,
    versionCode: version.versionCode,
    versionName: version.versionName,
    sha256: version.sha256,
    sizeBytes: Number(version.sizeBytes),
    certSha256: version.certSha256,
    certLineage: version.certLineage,
    uploadedBy: version.uploadedBy,
    createdAt: version.createdAt.toISOString(),
  };
}

type ReceivedFile = { file: string; sha256: string; sizeBytes: number };

export type UploadLimits = { maxBytes: number; timeoutSeconds: number; stallSeconds: number };

/**
 * Streams the multipart upload's `file` field to a temporary file, hashing it on the way,
 * never holding it whole in memory; past `maxBytes` it is refused with 413. A body still
 * arriving `timeoutSeconds` after this starts reading it (APK_UPLOAD_TIMEOUT_SECONDS), or
 * with no byte for `stallSeconds` (HTTP_BODY_TIMEOUT_SECONDS), is refused with 408: the
 * rest is not read, and the connection is closed once the answer is sent.
 */
export async function receiveApk(req: Request, res: Response, store: ApkStore, limits: UploadLimits): Promise<ReceivedFile> {
  const { maxBytes, timeoutSeconds, stallSeconds } = limits;
  if (!req.is("multipart/form-data")) throw new HttpError("unsupported_media_type", "Send the APK as multipart/form-data in a field named file");
  const file = path.join(await store.tempDir(), `${randomUUID()}.part`);
  let deadline: NodeJS.Timeout | undefined;
  let stall: NodeJS.Timeout | undefined;
  let onData: (() => void) | undefined;
  try {
    const received = await new Promise<ReceivedFile & { truncated: boolean }>((resolve, reject) => {
      let parser: ReturnType<typeof busboy>;
      try {
        parser = busboy({ headers: req.headers, limits: { files: 1, fileSize: maxBytes, fields: 10, parts: 12 } });
      } catch {
        reject(new HttpError("unsupported_media_type", "The multipart/form-data Content-Type has no boundary"));
        return;
      }
      let written: Promise<ReceivedFile & { truncated: boolean }> | undefined;
      parser.on("file", (field, stream) => {
        if (field !== "file" || written) {
          stream.resume();
          return;
        }
        const hash = createHash("sha256");
        let sizeBytes = 0;
        let truncated = false;
        stream.on("limit", () => {
          truncated = true;
        });
        const hashing = new Transform({
          transform(chunk: Buffer, _encoding, done) {
            hash.update(chunk);
            sizeBytes += chunk.length;
            done(null, chunk);
          },
        });
        written = pipeline(stream, hashing, createWriteStream(file)).then(() => ({ file, sha256: hash.digest("hex"), sizeBytes, truncated }));
        // Settled by "close" below; this only keeps an early failure from going unhandled.
        written.catch(() => {});
      });
      parser.on("error", () =>
        reject(new HttpError("validation_failed", "The multipart body is malformed", [{ path: "file", message: "Malformed multipart body" }])),
      );
      parser.on("close", () => {
        if (!written) reject(new HttpError("validation_failed", "No APK in the upload", [{ path: "file", message: "A file field named file is required" }]));
        else written.then(resolve, reject);
      });
      req.on("aborted", () => reject(new HttpError("validation_failed", "The upload was interrupted")));
      const giveUp = (message: string) => {
        res.setHeader("Connection", "close");
        req.unpipe(parser);
        // Ends the file stream too (its pipeline fails, quietly), so the partial file is closed before it is removed.
        parser.destroy();
        reject(new HttpError("request_timeout", message));
      };
      deadline = setTimeout(() => giveUp(`The upload did not arrive within ${timeoutSeconds} s (APK_UPLOAD_TIMEOUT_SECONDS)`), timeoutSeconds * 1000);
      onData = () => {
        clearTimeout(stall);
        stall = setTimeout(() => giveUp(`The upload stalled: no data for ${stallSeconds} s (HTTP_BODY_TIMEOUT_SECONDS)`), stallSeconds * 1000);
      };
      onData();
      req.on("data", onData);
      req.pipe(parser);
    }).finally(() => {
      clearTimeout(deadline);
      clearTimeout(stall);
      if (onData) req.off("data", onData);
    });
    if (received.truncated) throw new HttpError("payload_too_large", `APKs may be at most ${maxBytes} bytes (APK_MAX_BYTES)`);
    if (received.sizeBytes === 0) throw new HttpError("invalid_apk", "The uploaded file is empty");
    return { file: received.file, sha256: received.sha256, sizeBytes: received.sizeBytes };
  } catch (error) {
    await rm(file, { force: true });
    throw error;
  }
}

/**
 * Adds an uploaded APK to the catalogue: reads it (verifying its signature), checks its
 * certificate against the package's, stores it by SHA-256 and records the version. Takes
 * ownership of `upload.file`.
 */
export async function addApk(
  deps: Pick<AppDeps, "db" | "clock" | "logger" | "bus">,
  store: ApkStore,
  upload: ReceivedFile,
  expectedSha256: string | undefined,
  actor: Actor,
): Promise<{ created: boolean; body: UploadAppResponse }> {
  const { db } = deps;
  try {
    if (expectedSha256 && expectedSha256 !== upload.sha256) {
      throw new HttpError("validation_failed", "The uploaded file does not match the sha256 the request was signed with", [
        { path: "query.sha256", message: "Does not match the uploaded file" },
      ]);
    }
    const info = await readApk(upload.file);
    // ON CONFLICT DO NOTHING: of concurrent first uploads of a package, one certificate wins
    // and the others are compared with it (409 if they differ), never a unique violation.
    await db.catalogueApp.createMany({
      data: [{ packageName: info.packageName, certSha256: info.certSha256, createdAt: deps.clock.now() }],
      skipDuplicates: true,
    });
    const app = await db.catalogueApp.findUniqueOrThrow({ where: { packageName: info.packageName } });
    // A key rotation (APK Signature Scheme v3): Android updates an app installed with an older
    // certificate of the APK's verified lineage, and binds it to the newest from then on.
    const rotatedFrom = app.certSha256 !== info.certSha256 && info.certLineage.includes(app.certSha256) ? app.certSha256 : null;
    if (app.certSha256 !== info.certSha256 && !rotatedFrom) {
      throw new HttpError(
        "conflict",
        `${info.packageName} is signed with another certificate (SHA-256 ${info.certSha256}) than its catalogue versions (${app.certSha256}), and its key rotation lineage does not name theirs: devices would refuse the update`,
      );
    }
    const versionKey = { packageName_versionCode: { packageName: info.packageName, versionCode: info.versionCode } };
    const alreadyThere = (existing: AppVersion) => {
      if (existing.sha256 !== upload.sha256) {
        throw new HttpError("conflict", `${info.packageName} version ${info.versionCode} is already in the catalogue with another file; raise the versionCode`);
      }
      return { created: false, body: { version: toAppVersionView(existing), created: false } };
    };
    const existing = await db.appVersion.findUnique({ where: versionKey });
    if (existing) return alreadyThere(existing);
    // The file is in place before any row points to it.
    await storeFile(db, store, upload.file, upload.sha256);
    const now = deps.clock.now();
    const previous = await db.appVersion.aggregate({ where: { packageName: info.packageName }, _max: { versionCode: true } });
    // With the version, the devices whose required app it newly satisfies are queued for it.
    const recorded = await db
      .$transaction([
        db.appVersion.create({
          data: {
            id: randomUUID(),
            packageName: info.packageName,
            versionCode: info.versionCode,
            versionName: info.versionName,
            sha256: upload.sha256,
            sizeBytes: BigInt(upload.sizeBytes),
            certSha256: info.certSha256,
            certLineage: info.certLineage,
            uploadedBy: actor.name,
            createdAt: now,
          },
        }),
        queueDevicesAwaiting(db, info.packageName, info.versionCode, previous._max.versionCode, now),
        // With the rotated version, later uploads must be signed with the newer key.
        ...(rotatedFrom
          ? [db.catalogueApp.updateMany({ where: { packageName: info.packageName, certSha256: rotatedFrom }, data: { certSha256: info.certSha256 } })]
          : []),
      ])
      .catch(async (error: unknown) => {
        // The same version uploaded concurrently: the other upload recorded it first.
        if (!(error instanceof Prisma.PrismaClientKnownRequestError && error.code === "P2002")) throw error;
        const winner = await db.appVersion.findUnique({ where: versionKey });
        if (!winner) throw error;
        return alreadyThere(winner);
      });
    if (!Array.isArray(recorded)) return recorded;
    const [version, awaiting] = recorded;
    if (awaiting > 0) deps.bus.publish({ kind: "policy_dispatch_due" });
    await recordAudit(db, {
      actor: actor.name,
      action: "app.upload",
      targetType: "app",
      targetId: info.packageName,
      ip: actor.ip,
      details: { versionCode: info.versionCode, sha256: upload.sha256, ...(rotatedFrom ? { certSha256: info.certSha256, rotatedFrom } : {}) },
    });
    deps.logger.info("apk added to the catalogue", {
      packageName: info.packageName,
      versionCode: info.versionCode,
      sha256: upload.sha256,
      awaitingDevices: awaiting,
      ...(rotatedFrom ? { certSha256: info.certSha256, rotatedFrom } : {}),
    });
    return { created: true, body: { version: toAppVersionView(version), created: true } };
  } finally {
    await rm(upload.file, { force: true });
  }
}

/**
 * Orders, file by file, the orphan sweep's last check and removal with an upload storing the
 * same bytes: a transaction-scoped advisory lock on the SHA-256.
 */
export async function lockStoredFile(tx: DbOrTx, sha256: string): Promise<void> {
  await tx.$executeRaw`SELECT pg_advisory_xact_lock(hashtextextended(${`catalogue-file:${sha256}`}::text, 0))`;
}

/**
 * Puts an upload in the store, then checks under the file's lock that it is still there: the
 * orphan sweep may have been removing an old identical copy at that very moment (it reads the
 * file's age and removes it under the same lock), taking the new one with it. Put again
 * then. A file there now is fresh: the sweep leaves it its grace period, by when its
 * version row names it.
 */
async function storeFile(db: AppDeps["db"], store: ApkStore, file: string, sha256: string): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    await store.put(file, sha256);
    const there = await db.$transaction(async (tx) => {
      await lockStoredFile(tx, sha256);
      return (await store.storedAt(sha256)) !== undefined;
    });
    if (there) return;
    if (attempt >= 3) throw new Error(`The catalogue file ${sha256} was gone each time it was stored`);
  }
}

/** How long a stored file no version names is kept: far longer than an upload takes from storing its file to recording its version. */
export const ORPHAN_FILE_GRACE_MS = 3_600_000;
const SWEEP_BATCH = 500;

/**
 * Removes stored files that no version names and that were stored more than `graceMs` ago:
 * left by a crash between a deletion's commit and its file removal, by a removal that failed
 * (the bucket unreachable), or by an upload whose version was refused after its file was
 * stored (its app deleted meanwhile). Each file's references and age are read again, and it
 * is removed, under its lock (see storeFile), so an upload storing the same bytes keeps its
 * file. Returns the files removed; one that cannot be removed is logged and left for the next
 * run. Run by the maintenance job, for the local folder and the bucket alike.
 */
export async function sweepOrphanFiles(deps: Pick<AppDeps, "db" | "clock" | "logger">, store: ApkStore, graceMs = ORPHAN_FILE_GRACE_MS): Promise<string[]> {
  const cutoff = new Date(deps.clock.now().getTime() - graceMs);
  const old: string[] = [];
  for await (const file of store.list()) if (file.storedAt < cutoff) old.push(file.sha256);
  const removed: string[] = [];
  for (let start = 0; start < old.length; start += SWEEP_BATCH) {
    const batch = old.slice(start, start + SWEEP_BATCH);
    const named = await deps.db.appVersion.findMany({ where: { sha256: { in: batch } }, select: { sha256: true } });
    const referenced = new Set(named.map((version) => version.sha256));
    for (const sha256 of batch) {
      if (referenced.has(sha256)) continue;
      try {
        const gone = await deps.db.$transaction(
          async (tx) => {
            await lockStoredFile(tx, sha256);
            if ((await tx.appVersion.count({ where: { sha256 } })) > 0) return false;
            const storedAt = await store.storedAt(sha256);
            if (storedAt === undefined || storedAt >= cutoff) return false;
            await store.remove(sha256);
            return true;
          },
          { timeout: 60_000 },
        );
        if (gone) removed.push(sha256);
      } catch (error) {
        deps.logger.error("orphan catalogue file not removed", { sha256, message: error instanceof Error ? error.message : String(error) });
      }
    }
  }
  if (removed.length > 0) deps.logger.info("orphan catalogue files removed", { count: removed.length, sha256s: removed });
  return removed;
}

/**
 * Removes uploads in progress (`tmp/*.part`) that nothing has written to for `graceMs`: left
 * by an instance killed mid-upload. A live upload writes to its file as it arrives, and
 * every upload ends within the request timeouts, far inside the grace. Returns their names.
 */
export async function sweepAbandonedUploads(deps: Pick<AppDeps, "clock" | "logger">, store: ApkStore, graceMs = ORPHAN_FILE_GRACE_MS): Promise<string[]> {
  const dir = await store.tempDir();
  const cutoff = deps.clock.now().getTime() - graceMs;
  const removed: string[] = [];
  for (const name of await readdir(dir)) {
    if (!name.endsWith(".part")) continue;
    const written = await stat(path.join(dir, name)).then(
      (stats) => stats.mtimeMs,
      () => undefined,
    );
    if (written === undefined || written >= cutoff) continue;
    await rm(path.join(dir, name), { force: true });
    removed.push(name);
  }
  if (removed.length > 0) deps.logger.info("abandoned uploads removed", { count: removed.length, files: removed });
  return removed;
}

export async function listApps(deps: Pick<AppDeps, "db" | "env">): Promise<ListAppsResponse> {
  const apps = await deps.db.catalogueApp.findMany({ orderBy: { packageName: "asc" }, include: { versions: { orderBy: { versionCode: "desc" } } } });
  const releases = await listReleaseViews(
    deps,
    apps.map((app) => app.packageName),
  );
  return {
    apps: apps.map(
      (app): CatalogueAppView => ({
        packageName: app.packageName,
        certSha256: app.certSha256,
        createdAt: app.createdAt.toISOString(),
        versions: app.versions.map(toAppVersionView),
        releases: releases.filter((release) => release.packageName === app.packageName),
      }),
    ),
    publicApiUrl: deps.env.PUBLIC_API_URL ?? null,
  };
}

// ---- Deleting ----------------------------------------------------------------------------

const targetName = (target: ReleaseTarget) => ("group" in target ? `group ${target.group}` : "the whole fleet");

/**
 * Refuses (409) to delete versions still in use: rolled out, or to be rolled back to, by a
 * release in progress; sent by a completed release to the devices joining its target (only
 * when deleting one version: deleting the app ends its releases); or needed by a policy's
 * required app (see refuseBrokenRequirements).
 */
async function refuseInUse(tx: DbOrTx, packageName: string, versions: AppVersion[], wholeApp: boolean): Promise<void> {
  const ids = versions.map((version) => version.id);
  // One release of an app is in progress at a time; a rollback sends each of its devices the version it ran before.
  const running = await tx.appRelease.findFirst({ where: { packageName, status: { in: ["active", "paused"] } }, orderBy: { createdAt: "asc" } });
  const previous = running ? (await rollbackVersionsOf(tx, running)).find((version) => ids.includes(version.id)) : undefined;
  if (running && running.versionId !== null && ids.includes(running.versionId)) {
    throw new HttpError(
      "conflict",
      `Release ${running.id} (${running.status}) is rolling out version ${running.versionCode} of ${packageName}: roll it back or let it complete first`,
    );
  }
  if (running && previous) {
    throw new HttpError(
      "conflict",
      `Release ${running.id} (${running.status}) would roll devices of ${packageName} back to version ${previous.versionCode}, which they ran before it: roll it back or let it complete first`,
    );
  }
  if (wholeApp) return;
  // As the rollout job picks them: the newest completed release of each target tops it up.
  const [topping] = await tx.$queryRaw<Array<{ id: string; versionCode: number; target: ReleaseTarget }>>`
    SELECT id::text AS id, "versionCode", target FROM (
      SELECT DISTINCT ON (target) id, "versionId", "versionCode", target FROM "AppRelease"
      WHERE "packageName" = ${packageName} AND status = 'completed' ORDER BY target, "createdAt" DESC) latest
    WHERE "versionId" = ANY(${ids}::uuid[])
    LIMIT 1`;
  if (topping) {
    throw new HttpError(
      "conflict",
      `Completed release ${topping.id} still sends version ${topping.versionCode} of ${packageName} to devices joining its target (${targetName(topping.target)}): roll it back, or complete a release of a newer version to that target first`,
    );
  }
}

type RequiringPolicy = { id: string; name: string; minVersionCode: number };

/** Policies whose required apps name this package, with the minimum version each requires. */
function policiesRequiring(tx: DbOrTx, packageName: string): Promise<RequiringPolicy[]> {
  return tx.$queryRaw<RequiringPolicy[]>`
    SELECT p.id::text AS id, p.name, (required->>'minVersionCode')::int AS "minVersionCode"
    FROM "Policy" p, jsonb_array_elements(CASE WHEN jsonb_typeof(p.settings->'requiredApps') = 'array' THEN p.settings->'requiredApps' ELSE '[]'::jsonb END) required
    WHERE required->>'packageName' = ${packageName}
    ORDER BY p.name`;
}

/**
 * After the deletion, in its transaction: refuses (409, rolling it back) when a policy's
 * required app that the catalogue satisfied before (with the version required apps
 * install, see newestCatalogueVersions) no longer is.
 */
async function refuseBrokenRequirements(tx: DbOrTx, packageName: string, requiring: RequiringPolicy[], before: number | undefined, what: string) {
  if (requiring.length === 0 || before === undefined) return;
  const after = (await newestCatalogueVersions(tx, [{ packageName }])).get(packageName);
  const broken = requiring.filter((policy) => before >= policy.minVersionCode && (after === undefined || after < policy.minVersionCode));
  if (broken.length === 0) return;
  const names = broken.map((policy) => `"${policy.name}" (${policy.id}) requires version ${policy.minVersionCode} or later`).join("; ");
  throw new HttpError(
    "conflict",
    `${what} would leave required apps of ${packageName} without a catalogue version to install: policy ${names}. Upload another satisfying version, or change the policy, first`,
  );
}

/**
 * Removes the files no version refers to any more. After the commit: a file is never gone
 * while a version still names it. One that cannot be removed (the bucket unreachable) is
 * left behind and logged; its URLs answer 404 all the same, since downloads need a version.
 */
async function removeUnreferencedFiles(deps: Pick<AppDeps, "db" | "logger">, store: ApkStore, sha256s: string[]): Promise<void> {
  for (const sha256 of new Set(sha256s)) {
    if ((await deps.db.appVersion.count({ where: { sha256 } })) > 0) continue;
    try {
      await store.remove(sha256);
    } catch (error) {
      deps.logger.error("catalogue file not removed", { sha256, message: error instanceof Error ? error.message : String(error) });
    }
  }
}

/**
 * The catalogue's installs of `versions` that have not left for their device (a rollback's,
 * a required app's): cancelled with the versions, whose download URLs answer 404 from now.
 */
function cancelQueuedInstalls(tx: DbOrTx, packageName: string, versions: AppVersion[], now: Date) {
  const what = versions.length === 1 ? `version ${versions[0]?.versionCode} of ${packageName}` : `${packageName}`;
  return cancelQueuedCommands(
    tx,
    {
      type: "install_app",
      payload: { path: ["packageName"], equals: packageName },
      OR: versions.map((version) => ({ payload: { path: ["sha256"], equals: version.sha256 } })),
    },
    `${what} was deleted from the catalogue`,
    now,
  );
}

type DeleteDeps = Pick<AppDeps, "db" | "logger" | "clock" | "bus">;

export async function deleteAppVersion(deps: DeleteDeps, store: ApkStore, packageName: string, versionCode: number, actor: Actor): Promise<void> {
  const now = deps.clock.now();
  const { version, cancelled } = await deps.db.$transaction(async (tx) => {
    await lockApp(tx, packageName);
    const found = await tx.appVersion.findUnique({ where: { packageName_versionCode: { packageName, versionCode } } });
    if (!found) throw new HttpError("not_found", `The catalogue has no version ${versionCode} of ${packageName}`);
    await refuseInUse(tx, packageName, [found], false);
    const requiring = await policiesRequiring(tx, packageName);
    const before = (await newestCatalogueVersions(tx, [{ packageName }])).get(packageName);
    // Releases naming it keep their rows (and its version code); their link to it is cleared.
    await tx.appVersion.delete({ where: { id: found.id } });
    await refuseBrokenRequirements(tx, packageName, requiring, before, `Deleting version ${versionCode}`);
    const cancelled = await cancelQueuedInstalls(tx, packageName, [found], now);
    await recordAudit(tx, {
      actor: actor.name,
      action: "app.delete_version",
      targetType: "app",
      targetId: packageName,
      ip: actor.ip,
      details: { versionCode, sha256: found.sha256, cancelledInstalls: cancelled.length },
    });
    return { version: found, cancelled };
  });
  announceCancelled(deps.bus, cancelled, now);
  await removeUnreferencedFiles(deps, store, [version.sha256]);
  deps.logger.info("app version deleted from the catalogue", { packageName, versionCode, sha256: version.sha256 });
}

export async function deleteApp(deps: DeleteDeps, store: ApkStore, packageName: string, actor: Actor): Promise<void> {
  const now = deps.clock.now();
  const { versions, cancelled } = await deps.db.$transaction(async (tx) => {
    await lockApp(tx, packageName);
    const all = await tx.appVersion.findMany({ where: { packageName }, orderBy: { versionCode: "asc" } });
    await refuseInUse(tx, packageName, all, true);
    const requiring = await policiesRequiring(tx, packageName);
    const before = (await newestCatalogueVersions(tx, [{ packageName }])).get(packageName);
    const releases = await tx.appRelease.count({ where: { packageName } });
    // Its versions, releases and their devices go with it (foreign keys cascade).
    await tx.catalogueApp.delete({ where: { packageName } });
    await refuseBrokenRequirements(tx, packageName, requiring, before, "Deleting the app");
    const cancelled = all.length > 0 ? await cancelQueuedInstalls(tx, packageName, all, now) : [];
    await recordAudit(tx, {
      actor: actor.name,
      action: "app.delete",
      targetType: "app",
      targetId: packageName,
      ip: actor.ip,
      details: { versionCodes: all.map((version) => version.versionCode), releases, cancelledInstalls: cancelled.length },
    });
    return { versions: all, cancelled };
  });
  announceCancelled(deps.bus, cancelled, now);
  await removeUnreferencedFiles(
    deps,
    store,
    versions.map((version) => version.sha256),
  );
  deps.logger.info("app deleted from the catalogue", { packageName, versions: versions.length });
}
