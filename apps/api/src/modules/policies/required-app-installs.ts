import type { RequiredAppInstallState } from "@mdm/contracts";
import type { DbOrTx } from "../../db/types";
import type { RequiredAppInstall } from "../../generated/prisma/client";

// The install_app commands the policy worker sends for required apps, one RequiredAppInstall
// row per device and package. A command that fails or expires schedules the next attempt on
// its row, in the transaction that records the outcome; the worker sends it again once due
// (policy-dispatch.ts). The delay doubles from REQUIRED_APP_RETRY_BASE_SECONDS up to
// REQUIRED_APP_RETRY_MAX_SECONDS; after REQUIRED_APP_MAX_ATTEMPTS sends of one version the
// server stops, and the device's compliance says so, until a newer catalogue version or a
// change of the device's effective policy starts the count again.

export const REQUIRED_APP_RETRY_BASE_SECONDS = 5 * 60;
export const REQUIRED_APP_RETRY_MAX_SECONDS = 6 * 3600;
/** Sends of one version (the first one included): 5, 10, 20, 40, 80, 160, 320 minutes apart, then 6 hours. */
export const REQUIRED_APP_MAX_ATTEMPTS = 8;

/** Records, in the transaction that queues them, the required app installs just sent (a newer version restarts the count). */
export async function recordRequiredAppInstalls(
  tx: DbOrTx,
  version: { packageName: string; versionCode: number },
  sent: Array<{ deviceId: string; requestId: string }>,
  now: Date,
): Promise<void> {
  if (sent.length === 0) return;
  await tx.$executeRaw`
    INSERT INTO "RequiredAppInstall" ("deviceId", "packageName", "versionCode", "requestId", attempts, "sentAt", failed, "nextAttemptAt")
    SELECT s."deviceId", ${version.packageName}, ${version.versionCode}, s."requestId", 1, ${now}, false, NULL
    FROM unnest(${sent.map((row) => row.deviceId)}::uuid[], ${sent.map((row) => row.requestId)}::uuid[]) AS s("deviceId", "requestId")
    ON CONFLICT ("deviceId", "packageName") DO UPDATE SET
      attempts = CASE WHEN "RequiredAppInstall"."versionCode" = EXCLUDED."versionCode" THEN "RequiredAppInstall".attempts + 1 ELSE 1 END,
      "lastFailure" = CASE WHEN "RequiredAppInstall"."versionCode" = EXCLUDED."versionCode" THEN "RequiredAppInstall"."lastFailure" END,
      "failedAt" = CASE WHEN "RequiredAppInstall"."versionCode" = EXCLUDED."versionCode" THEN "RequiredAppInstall"."failedAt" END,
      "versionCode" = EXCLUDED."versionCode", "requestId" = EXCLUDED."requestId", "sentAt" = EXCLUDED."sentAt", failed = false, "nextAttemptAt" = NULL`;
}

/**
 * In the transaction that records their outcome: required app installs whose command failed
 * or expired get their next attempt scheduled (none past REQUIRED_APP_MAX_ATTEMPTS), with
 * the reason. Commands that are not required app installs match no row.
 */
export async function scheduleRequiredAppRetries(
  tx: DbOrTx,
  changes: Array<{ requestId: string; status: string; detail: string | null }>,
  at: Date,
): Promise<void> {
  const failed = changes.filter((change) => change.status === "failed" || change.status === "expired");
  if (failed.length === 0) return;
  // The device's policy worker row is its timer: due at the retry (or sooner, for what it was due for already).
  await tx.$executeRaw`
    WITH retried AS (
      UPDATE "RequiredAppInstall" r SET failed = true, "lastFailure" = left(c.reason, 500), "failedAt" = ${at},
        "nextAttemptAt" = CASE WHEN r.attempts >= ${REQUIRED_APP_MAX_ATTEMPTS} THEN NULL
          ELSE ${at}::timestamptz + make_interval(secs => LEAST(${REQUIRED_APP_RETRY_MAX_SECONDS}, ${REQUIRED_APP_RETRY_BASE_SECONDS} * power(2, r.attempts - 1))) END
      FROM unnest(${failed.map((change) => change.requestId)}::uuid[], ${failed.map((change) => change.detail ?? change.status)}::text[]) AS c(id, reason)
      WHERE r."requestId" = c.id AND NOT r.failed
      RETURNING r."deviceId", r."nextAttemptAt")
    INSERT INTO "PolicyDispatch" ("deviceId", "dueAt", attempts, "createdAt")
    SELECT "deviceId", min("nextAttemptAt"), 0, ${at} FROM retried WHERE "nextAttemptAt" IS NOT NULL GROUP BY "deviceId"
    ON CONFLICT ("deviceId") DO UPDATE SET "dueAt" = LEAST("PolicyDispatch"."dueAt", EXCLUDED."dueAt")`;
}

/** A device's required app install states, by package. */
export async function requiredAppInstallsOf(db: DbOrTx, deviceId: string): Promise<Map<string, RequiredAppInstall>> {
  const rows = await db.requiredAppInstall.findMany({ where: { deviceId } });
  return new Map(rows.map((row) => [row.packageName, row]));
}

/** Whether the policy worker may send this version now: not while a failed send of it waits for its retry, nor once attempts ran out. */
export function mayInstall(row: RequiredAppInstall | undefined, versionCode: number, now: Date): boolean {
  if (!row?.failed || row.versionCode !== versionCode) return true;
  return row.nextAttemptAt !== null && row.nextAttemptAt <= now;
}

export function toInstallState(row: RequiredAppInstall): RequiredAppInstallState {
  return {
    versionCode: row.versionCode,
    attempts: row.attempts,
    maxAttempts: REQUIRED_APP_MAX_ATTEMPTS,
    requestId: row.requestId,
    sentAt: row.sentAt.toISOString(),
    lastFailure: row.lastFailure,
    failedAt: row.failedAt?.toISOString() ?? null,
    nextAttemptAt: row.nextAttemptAt?.toISOString() ?? null,
    gaveUp: row.failed && row.nextAttemptAt === null,
  };
}
