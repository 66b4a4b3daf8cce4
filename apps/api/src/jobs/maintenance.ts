import type { AppDeps } from "../deps";
import { redeliverDueCommands } from "../modules/commands/commands.service";
import { sweepOffline } from "../modules/fleet/fleet-monitor";

const DELETE_BATCH = 5000;

/**
 * Deletes telemetry older than the retention window in batches, so no statement holds
 * locks for long or bloats one transaction, however much has piled up.
 */
export async function pruneTelemetry({ db, clock }: Pick<AppDeps, "db" | "clock">, retentionHours: number): Promise<number> {
  const cutoff = new Date(clock.now().getTime() - retentionHours * 3600_000);
  let total = 0;
  for (;;) {
    const deleted = await db.$executeRaw`
      DELETE FROM "TelemetryEvent" WHERE id IN (
        SELECT id FROM "TelemetryEvent" WHERE "receivedAt" < ${cutoff} ORDER BY id LIMIT ${DELETE_BATCH})`;
    total += deleted;
    if (deleted < DELETE_BATCH) return total;
  }
}

/** Marks commands whose TTL elapsed before delivery as expired, with their event. */
export async function expireCommands({ db, clock, bus }: Pick<AppDeps, "db" | "clock" | "bus">): Promise<number> {
  const now = clock.now();
  const expired = await db.$queryRaw<Array<{ requestId: string; deviceId: string; batchId: string | null }>>`
    WITH expired AS (
      UPDATE "Command" SET status = 'expired', "completedAt" = ${now}, "nextAttemptAt" = NULL
      WHERE status IN ('queued', 'sent') AND "expiresAt" <= ${now}
      RETURNING "requestId", "deviceId", "batchId"),
    events AS (
      INSERT INTO "CommandEvent" ("requestId", status, at, detail)
      SELECT "requestId", 'expired', ${now}, 'ttl elapsed' FROM expired)
    SELECT "requestId", "deviceId", "batchId" FROM expired`;
  for (const row of expired) bus.publish({ kind: "command_status", change: { ...row, status: "expired", at: now.toISOString() } });
  return expired.length;
}

export async function pruneNonces({ db, clock }: Pick<AppDeps, "db" | "clock">): Promise<number> {
  const { count } = await db.usedNonce.deleteMany({ where: { expiresAt: { lt: clock.now() } } });
  return count;
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

/** Runs `task` every `everyMs`, never two runs at once, logging failures; returns a stop function. */
function every(deps: AppDeps, name: string, everyMs: number, task: () => Promise<unknown>): () => void {
  let running = false;
  const tick = async () => {
    if (running) return;
    running = true;
    try {
      await task();
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

/** The background work of an API instance. Safe to run on every instance at once. */
export function startMaintenance(deps: AppDeps): () => void {
  const stops = [
    every(deps, "housekeeping", 60_000, async () => {
      const expired = await expireCommands(deps);
      const pruned = await pruneTelemetry(deps, deps.env.TELEMETRY_RETENTION_HOURS);
      await pruneNonces(deps);
      await pruneAccounts(deps);
      if (expired || pruned) deps.logger.info("housekeeping", { expiredCommands: expired, prunedTelemetry: pruned });
    }),
    every(deps, "redelivery", Math.min(5000, deps.env.COMMAND_RETRY_BASE_SECONDS * 1000), () => redeliverDueCommands(deps)),
    every(deps, "offline sweep", deps.env.OFFLINE_SWEEP_SECONDS * 1000, () => sweepOffline(deps)),
  ];
  return () => stops.forEach((stop) => stop());
}
