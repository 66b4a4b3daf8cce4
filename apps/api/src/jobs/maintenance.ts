import type { AppDeps } from "../deps";
import { sweepSocketLeases } from "../realtime/presence";
import { apkStoreOf } from "../modules/catalogue/catalogue.routes";
import { sweepAbandonedUploads, sweepOrphanFiles } from "../modules/catalogue/catalogue.service";
import { advanceRollouts } from "../modules/catalogue/releases.service";
import { emitCommandStatusChanges, finishBatches } from "../modules/commands/command-transitions";
import { sweepOffline } from "../modules/fleet/fleet-monitor";
import { rotateFleetCommandKeys } from "../modules/lifecycle/command-keys";
import { retireErasedDevices } from "../modules/lifecycle/lifecycle.service";
import { repairDeviceListing } from "../modules/devices/device-listing";
import { pruneTokenRevocations } from "../modules/devices/device-token-cache";
import { maintainTelemetryPartitions } from "./telemetry-partitions";

const DELETE_BATCH = 5000;
// How soon a batch whose last commands finished at the same moment is marked done.
const BATCH_SWEEP_MS = 5_000;

/**
 * Gives every unfinished command an end: queued or sent past its TTL (never acknowledged),
 * or acknowledged with no result within COMMAND_RESULT_TIMEOUT_SECONDS. Each expires with
 * its reason in the history, so every batch reaches done.
 */
export async function expireCommands({ db, clock, bus, env }: Pick<AppDeps, "db" | "clock" | "bus" | "env">): Promise<number> {
  const now = clock.now();
  const resultCutoff = new Date(now.getTime() - env.COMMAND_RESULT_TIMEOUT_SECONDS * 1000);
  const expired = await db.$transaction(
    async (tx) => {
      const rows = await tx.$queryRaw<Array<{ requestId: string; deviceId: string; batchId: string | null; errorMessage: string }>>`
    WITH expired AS (
      UPDATE "Command" SET status = 'expired', "completedAt" = ${now}, "nextAttemptAt" = NULL,
        "errorMessage" = CASE WHEN status = 'acknowledged' THEN ${`no result within ${env.COMMAND_RESULT_TIMEOUT_SECONDS} s of the acknowledgement`}
          ELSE 'not acknowledged before its TTL elapsed' END
      WHERE (status IN ('queued', 'sent') AND "expiresAt" <= ${now})
         OR (status = 'acknowledged' AND "acknowledgedAt" <= ${resultCutoff})
      RETURNING "requestId", "deviceId", "batchId", "errorMessage"),
    events AS (
      INSERT INTO "CommandEvent" ("requestId", status, at, detail)
      SELECT "requestId", 'expired', ${now}, "errorMessage" FROM expired)
    SELECT "requestId", "deviceId", "batchId", "errorMessage" FROM expired`;
      await emitCommandStatusChanges(
        tx,
        rows.map(({ errorMessage, ...row }) => ({ ...row, status: "expired", detail: errorMessage })),
        now,
      );
      return rows.map(({ errorMessage: _detail, ...row }) => row);
      // A fleet-wide batch can expire at once: more than the default 5 s.
    },
    { timeout: 60_000 },
  );
  for (const row of expired) bus.publish({ kind: "command_status", change: { ...row, status: "expired", at: now.toISOString() } });
  return expired.length;
}

export async function pruneNonces({ db, clock }: Pick<AppDeps, "db" | "clock">): Promise<number> {
  const { count } = await db.usedNonce.deleteMany({ where: { expiresAt: { lt: clock.now() } } });
  return count;
}

/**
 * Deletes audit entries older than AUDIT_RETENTION_DAYS, in batches. Audit rows have their
 * own retention: telemetry's (hours) never touches them.
 */
export async function pruneAuditLog({ db, clock }: Pick<AppDeps, "db" | "clock">, retentionDays: number): Promise<number> {
  const cutoff = new Date(clock.now().getTime() - retentionDays * 24 * 3600_000);
  let total = 0;
  for (;;) {
    const deleted = await db.$executeRaw`
      DELETE FROM "AuditLog" WHERE id IN (SELECT id FROM "AuditLog" WHERE at < ${cutoff} ORDER BY id LIMIT ${DELETE_BATCH})`;
    total += deleted;
    if (deleted < DELETE_BATCH) return total;
  }
}

const KEEP_ENDED_SESSIONS_DAYS = 30;

/**
 * Forgets sessions that expired or were revoked a while ago (kept a month for the record)
 * and password tokens past their expiry: they can never be used again.
 */
export async function pruneAccounts({ db, clock }: Pick<AppDeps, "db" | "clock">): Promise<{ sessions: number; passwordTokens: number }> {
  const now = clock.now();
  const longAgo = new Date(now.getTime() - KEEP_ENDED_SESSIONS_DAYS * 24 * 3600_000);
  const sessions = await db.session.deleteMany({ where: { OR: [{ expiresAt: { lt: longAgo } }, { revokedAt: { lt: longAgo } }] } });
  const passwordTokens = await db.passwordResetToken.deleteMany({ where: { expiresAt: { lt: now } } });
  return { sessions: sessions.count, passwordTokens: passwordTokens.count };
}

/** Forgets once-per-period claims that ended a day ago (auto-relaunch windows of a device long quiet). */
export async function pruneLapsedClaims({ db, clock }: Pick<AppDeps, "db" | "clock">): Promise<number> {
  const { count } = await db.jobLease.deleteMany({ where: { nextRunAt: { lt: new Date(clock.now().getTime() - 24 * 3600_000) } } });
  return count;
}

/**
 * Claims this period's run of a cluster-wide job (or any work done at most once per period,
 * such as an auto-relaunch per device and app): true for exactly one instance per
 * period, whichever asks first. The slot is a row, so it works on any PostgreSQL, the
 * embedded one included; a crashed runner only costs that one run.
 */
export async function claimJobRun({ db, clock, instanceId }: Pick<AppDeps, "db" | "clock" | "instanceId">, name: string, periodMs: number): Promise<boolean> {
  const now = clock.now();
  // Slightly short of the period, so timer drift never makes an instance miss its turn.
  const nextRunAt = new Date(now.getTime() + periodMs * 0.9);
  const claimed = await db.$queryRaw<Array<{ name: string }>>`
    INSERT INTO "JobLease" (name, holder, "lastRunAt", "nextRunAt", runs) VALUES (${name}, ${instanceId}, ${now}, ${nextRunAt}, 1)
    ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, "lastRunAt" = EXCLUDED."lastRunAt", "nextRunAt" = EXCLUDED."nextRunAt", runs = "JobLease".runs + 1
    WHERE "JobLease"."nextRunAt" <= ${now}
    RETURNING name`;
  return claimed.length === 1;
}

/**
 * Runs `task` every `everyMs` on whichever instance claims the period's run first (so
 * once per cluster), never two runs at once here, logging failures; returns a stop function.
 */
function everyOncePerCluster(deps: AppDeps, name: string, everyMs: number, task: () => Promise<unknown>): () => void {
  let running = false;
  const tick = async () => {
    if (running) return;
    running = true;
    try {
      if (await claimJobRun(deps, name, everyMs)) await task();
    } catch (error) {
      deps.logger.error(`${name} failed`, { message: error instanceof Error ? error.message : String(error) });
    } finally {
      running = false;
    }
  };
  const timer = setInterval(tick, everyMs);
  timer.unref();
  return () => clearInterval(timer);
}

/** The cluster's background work; each job runs once per period across all instances. */
export function startMaintenance(deps: AppDeps): () => void {
  const apkStore = apkStoreOf(deps.env);
  const stops = [
    everyOncePerCluster(deps, "housekeeping", 60_000, async () => {
      const partitions = await maintainTelemetryPartitions(deps, deps.env.TELEMETRY_RETENTION_HOURS);
      await pruneNonces(deps);
      await pruneAccounts(deps);
      await pruneLapsedClaims(deps);
      await pruneTokenRevocations(deps);
      await pruneAuditLog(deps, deps.env.AUDIT_RETENTION_DAYS);
      if (partitions.created.length || partitions.dropped.length) {
        deps.logger.info("telemetry partitions", { created: partitions.created, dropped: partitions.dropped });
      }
      // The DEFAULT partition only catches rows no day partition took: a sign the job fell behind.
      if (partitions.movedFromDefault || partitions.deletedFromDefault) {
        deps.logger.warn("telemetry rows found in the DEFAULT partition", { moved: partitions.movedFromDefault, deleted: partitions.deletedFromDefault });
      }
    }),
    everyOncePerCluster(deps, "command expiry", Math.min(60_000, deps.env.COMMAND_RESULT_TIMEOUT_SECONDS * 250), async () => {
      const expired = await expireCommands(deps);
      if (expired) deps.logger.info("commands expired", { expired });
    }),
    // batch.done for a batch whose last commands finished at once, each transaction seeing the others' unfinished (finishBatches).
    everyOncePerCluster(deps, "batch completion", BATCH_SWEEP_MS, () => deps.db.$transaction((tx) => finishBatches(tx, deps.clock.now()))),
    everyOncePerCluster(deps, "erased device retirement", 60_000, async () => {
      const retired = await retireErasedDevices(deps);
      if (retired) deps.logger.warn("erased devices retired by the sweep, not by their result", { retired });
    }),
    everyOncePerCluster(deps, "socket lease sweep", Math.max(250, (deps.env.WS_LEASE_SECONDS * 1000) / 4), () => sweepSocketLeases(deps)),
    everyOncePerCluster(deps, "offline sweep", deps.env.OFFLINE_SWEEP_SECONDS * 1000, () => sweepOffline(deps)),
    // A no-op unless COMMAND_MASTER_KEY_PREVIOUS is set: then moves a batch of devices off it.
    everyOncePerCluster(deps, "command key rotation", 60_000, () => rotateFleetCommandKeys(deps)),
    everyOncePerCluster(deps, "app rollouts", 60_000, async () => {
      const outcome = await advanceRollouts(deps);
      if (outcome.advanced || outcome.paused || outcome.toppedUp) deps.logger.info("app rollouts", outcome);
    }),
    // A write that bypassed the triggers on Device (done by hand) leaves listing rows wrong.
    everyOncePerCluster(deps, "device listing repair", 3_600_000, async () => {
      const repaired = await repairDeviceListing(deps);
      if (repaired === null) deps.logger.error("the device list is not kept: the triggers Device_listing_insert/_update on Device are missing or disabled");
      else if (repaired) deps.logger.warn("device list rows repaired: a write bypassed the triggers on Device", { repaired });
    }),
    // Catalogue files no version names, past their grace period (local folder or bucket), and
    // uploads a killed instance left half-written in the (shared) upload folder.
    everyOncePerCluster(deps, "catalogue file sweep", 3_600_000, async () => {
      await sweepOrphanFiles(deps, apkStore);
      await sweepAbandonedUploads(deps, apkStore);
    }),
  ];
  // With a bucket, each instance may have an upload folder of its own: it clears its own on start.
  sweepAbandonedUploads(deps, apkStore).catch((error: unknown) =>
    deps.logger.error("abandoned uploads not removed", { message: error instanceof Error ? error.message : String(error) }),
  );
  return () => {
    for (const stop of stops) stop();
  };
}
