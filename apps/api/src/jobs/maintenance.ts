import type { AppDeps } from "../deps";

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
export async function expireCommands({ db, clock }: Pick<AppDeps, "db" | "clock">): Promise<number> {
  const now = clock.now();
  return db.$executeRaw`
    WITH expired AS (
      UPDATE "Command" SET status = 'expired', "completedAt" = ${now}
      WHERE status IN ('queued', 'sent') AND "expiresAt" <= ${now}
      RETURNING "requestId")
    INSERT INTO "CommandEvent" ("requestId", status, at, detail)
    SELECT "requestId", 'expired', ${now}, 'ttl elapsed' FROM expired`;
}

export async function pruneNonces({ db, clock }: Pick<AppDeps, "db" | "clock">): Promise<number> {
  const { count } = await db.usedNonce.deleteMany({ where: { expiresAt: { lt: clock.now() } } });
  return count;
}

/** Runs the maintenance tasks on a schedule; returns a function that stops them. */
export function startMaintenance(deps: AppDeps, everyMs = 60_000): () => void {
  let running = false;
  const tick = async () => {
    if (running) return;
    running = true;
    try {
      const expired = await expireCommands(deps);
      const pruned = await pruneTelemetry(deps, deps.env.TELEMETRY_RETENTION_HOURS);
      await pruneNonces(deps);
      if (expired || pruned) deps.logger.info("maintenance", { expiredCommands: expired, prunedTelemetry: pruned });
    } catch (error) {
      deps.logger.error("maintenance failed", { message: error instanceof Error ? error.message : String(error) });
    } finally {
      running = false;
    }
  };
  const timer = setInterval(tick, everyMs);
  timer.unref();
  void tick();
  return () => clearInterval(timer);
}
