import type { PolicyPushData } from "@mdm/contracts";
import type { AppDeps } from "../../deps";
import { type PollingWorker, startPollingWorker } from "../../lib/polling-worker";
import { sendInstallCommands } from "../catalogue/releases.service";
import { missingAppsOf, newestCatalogueVersions, requiredAppsOf } from "./policies.service";
import { REQUIRED_APP_RETRY_BASE_SECONDS, mayInstall, recordRequiredAppInstalls } from "./required-app-installs";

// What follows a change of a device's effective policy, beyond storing it: a device with
// no socket is woken by FCM to fetch it (a heartbeat), and the catalogue version of each
// required app it lacks is sent to it. recomputeDevices writes one PolicyDispatch row per
// device in the transaction that stores the new policy; this worker claims them in
// batches, so a policy assigned to a group of 100,000 devices is 100,000 rows worked
// through CLAIM_BATCH at a time, never 100,000 promises, and survives a crash.

type DispatchDeps = Pick<AppDeps, "db" | "clock" | "env" | "push" | "logger" | "bus">;

const CLAIM_BATCH = 200;
// Pushes in flight at once within a batch.
const PUSH_CONCURRENCY = 16;
// A wake-up the device gets later than this is pointless: its next heartbeat brings the policy anyway.
const WAKE_TTL_SECONDS = 3600;
export const REQUIRED_APPS_ACTOR = { name: "system:required-apps" };

type ClaimedDispatch = {
  deviceId: string;
  attempts: number;
  dueAt: Date;
  socketInstanceId: string | null;
  socketLeaseExpiresAt: Date | null;
  fcmToken: string | null;
  fcmTokenInvalidAt: Date | null;
  retiredAt: Date | null;
  policyDesired: unknown;
  policyDesiredHash: string | null;
  policyAppliedHash: string | null;
  appStatus: unknown;
};

/** Tells every instance's policy worker that devices wait for it. */
export function wakePolicyDispatch({ bus }: Pick<AppDeps, "bus">): void {
  bus.publish({ kind: "policy_dispatch_due" });
}

/** Claims due rows and schedules their retry in the same statement: a crash after the claim leaves them due again then. */
async function claimDue(deps: DispatchDeps): Promise<ClaimedDispatch[]> {
  const now = deps.clock.now();
  const base = deps.env.COMMAND_RETRY_BASE_SECONDS;
  return deps.db.$queryRaw<ClaimedDispatch[]>`
    WITH due AS (
      SELECT "deviceId" FROM "PolicyDispatch" WHERE "dueAt" <= ${now}
      ORDER BY "dueAt" LIMIT ${CLAIM_BATCH}
      FOR UPDATE SKIP LOCKED),
    claimed AS (
      UPDATE "PolicyDispatch" p SET
        attempts = p.attempts + 1,
        "dueAt" = ${now}::timestamptz + make_interval(secs => LEAST(600, ${base} * power(2, p.attempts)))
      FROM due WHERE p."deviceId" = due."deviceId"
      RETURNING p.*)
    SELECT claimed."deviceId"::text AS "deviceId", claimed.attempts, claimed."dueAt",
      d."socketInstanceId", d."socketLeaseExpiresAt", d."fcmToken", d."fcmTokenInvalidAt", d."retiredAt",
      d."policyDesired", d."policyDesiredHash", d."policyAppliedHash", d."appStatus"
    FROM claimed JOIN "Device" d ON d.id = claimed."deviceId"`;
}

/**
 * Sends each required app the claimed devices lack (by their last reported apps) as the
 * catalogue version newestCatalogueVersions chooses (never one a release holds back or
 * rolled back) when it satisfies it, one bulk install_app per version, skipping
 * devices with an unfinished install of that package already (a retried claim, or a
 * release), and those whose last install of that version failed until its retry is due
 * (none once attempts ran out). Each send is recorded in RequiredAppInstall with its
 * commands. A retry that is due but not sent waits for the install under way to end (its
 * expiry), or REQUIRED_APP_RETRY_BASE_SECONDS if the send failed; the install state of an
 * app no longer missing, or that the catalogue has no version of to send, is dropped.
 */
async function installMissingApps(deps: DispatchDeps, devices: ClaimedDispatch[]): Promise<void> {
  const now = deps.clock.now();
  const installs = await deps.db.requiredAppInstall.findMany({ where: { deviceId: { in: devices.map((device) => device.deviceId) } } });
  const installOf = new Map(installs.map((row) => [`${row.deviceId} ${row.packageName}`, row]));
  const needing = devices.filter((device) => requiredAppsOf(device.policyDesired).length > 0);
  const newest = await newestCatalogueVersions(
    deps.db,
    needing.flatMap((device) => requiredAppsOf(device.policyDesired)),
  );
  const busy =
    needing.length === 0
      ? []
      : await deps.db.$queryRaw<Array<{ deviceId: string; packageName: string; expiresAt: Date }>>`
    SELECT "deviceId"::text AS "deviceId", payload->>'packageName' AS "packageName", max("expiresAt") AS "expiresAt" FROM "Command"
    WHERE "deviceId" = ANY(${needing.map((device) => device.deviceId)}::uuid[]) AND type = 'install_app'
      AND status IN ('queued', 'sent', 'acknowledged') AND "expiresAt" > ${now}
    GROUP BY 1, 2`;
  const installingUntil = new Map(busy.map((row) => [`${row.deviceId} ${row.packageName}`, row.expiresAt]));
  const sendable = new Set<string>();
  const byVersion = new Map<string, { packageName: string; versionCode: number; deviceIds: string[] }>();
  for (const device of needing) {
    for (const app of missingAppsOf(device, newest)) {
      if (app.catalogueVersionCode === null) continue;
      const key = `${device.deviceId} ${app.packageName}`;
      sendable.add(key);
      if (installingUntil.has(key) || !mayInstall(installOf.get(key), app.catalogueVersionCode, now)) continue;
      const versionKey = `${app.packageName} ${app.catalogueVersionCode}`;
      const group = byVersion.get(versionKey) ?? { packageName: app.packageName, versionCode: app.catalogueVersionCode, deviceIds: [] };
      group.deviceIds.push(device.deviceId);
      byVersion.set(versionKey, group);
    }
  }
  const stale = installs.filter((row) => !sendable.has(`${row.deviceId} ${row.packageName}`));
  if (stale.length > 0) {
    await deps.db.$executeRaw`
      DELETE FROM "RequiredAppInstall" r USING unnest(${stale.map((row) => row.deviceId)}::uuid[], ${stale.map((row) => row.packageName)}::text[]) AS s(id, pkg)
      WHERE r."deviceId" = s.id AND r."packageName" = s.pkg`;
  }
  for (const group of byVersion.values()) {
    const version = await deps.db.appVersion.findUnique({
      where: { packageName_versionCode: { packageName: group.packageName, versionCode: group.versionCode } },
    });
    if (!version) continue;
    try {
      await sendInstallCommands(deps, version, group.deviceIds, REQUIRED_APPS_ACTOR, (tx, sent) => recordRequiredAppInstalls(tx, version, sent, now));
    } catch (error) {
      // PUBLIC_API_URL unset: install commands cannot carry a download URL. The devices
      // stay non-compliant, their missingApps saying which version would satisfy them.
      deps.logger.warn("required app not sent", {
        packageName: group.packageName,
        versionCode: group.versionCode,
        devices: group.deviceIds.length,
        message: error instanceof Error ? error.message : String(error),
      });
    }
  }
  // Retries that were due and not sent are looked at again later, not at every round (the
  // statement leaves alone those just sent, no longer failed).
  const due = installs.filter(
    (row) => row.failed && row.nextAttemptAt !== null && row.nextAttemptAt <= now && sendable.has(`${row.deviceId} ${row.packageName}`),
  );
  if (due.length > 0) {
    const later = new Date(now.getTime() + REQUIRED_APP_RETRY_BASE_SECONDS * 1000);
    await deps.db.$executeRaw`
      UPDATE "RequiredAppInstall" r SET "nextAttemptAt" = u.at
      FROM unnest(${due.map((row) => row.deviceId)}::uuid[], ${due.map((row) => row.packageName)}::text[],
        ${due.map((row) => installingUntil.get(`${row.deviceId} ${row.packageName}`) ?? later)}::timestamptz[]) AS u(id, pkg, at)
      WHERE r."deviceId" = u.id AND r."packageName" = u.pkg AND r.failed AND r."nextAttemptAt" <= ${now}`;
  }
}

/**
 * Wakes one device by FCM when it needs to: its policy is not applied yet and no socket
 * (on any instance) carries the policy frame. Returns whether the row is done with.
 */
async function wake(deps: DispatchDeps, device: ClaimedDispatch, now: Date): Promise<boolean> {
  if (device.retiredAt || device.policyDesiredHash === null || device.policyDesiredHash === device.policyAppliedHash) return true;
  const connected = device.socketInstanceId !== null && device.socketLeaseExpiresAt !== null && device.socketLeaseExpiresAt > now;
  if (connected || !device.fcmToken || device.fcmTokenInvalidAt) return true;
  const data: PolicyPushData = { kind: "policy", hash: device.policyDesiredHash };
  const result = await deps.push.send({ token: device.fcmToken, data, ttlSeconds: WAKE_TTL_SECONDS });
  if (result.ok) return true;
  deps.logger.warn("policy wake-up push failed", { deviceId: device.deviceId, reason: result.reason });
  if (result.reason === "token_invalid") {
    await deps.db.device.update({ where: { id: device.deviceId }, data: { fcmTokenInvalidAt: deps.clock.now() } });
    return true;
  }
  return device.attempts >= deps.env.COMMAND_MAX_DELIVERY_ATTEMPTS;
}

/** Claims and works through due rows until none are left or the instance stops. Returns how many it handled. */
export async function dispatchDuePolicies(deps: DispatchDeps, stopping: () => boolean = () => false): Promise<number> {
  let total = 0;
  while (!stopping()) {
    const claimed = await claimDue(deps);
    if (claimed.length === 0) break;
    const now = deps.clock.now();
    const retired = claimed.filter((device) => device.retiredAt).map((device) => device.deviceId);
    if (retired.length > 0) await deps.db.requiredAppInstall.deleteMany({ where: { deviceId: { in: retired } } });
    await installMissingApps(
      deps,
      claimed.filter((device) => !device.retiredAt),
    ).catch((error: unknown) => {
      deps.logger.error("required app installs failed", { message: error instanceof Error ? error.message : String(error) });
    });
    const done: ClaimedDispatch[] = [];
    for (let start = 0; start < claimed.length; start += PUSH_CONCURRENCY) {
      const slice = claimed.slice(start, start + PUSH_CONCURRENCY);
      const outcomes = await Promise.all(
        slice.map((device) =>
          wake(deps, device, now).catch((error: unknown) => {
            // The claim already scheduled a retry.
            deps.logger.error("policy wake-up failed", { deviceId: device.deviceId, message: error instanceof Error ? error.message : String(error) });
            return device.attempts >= deps.env.COMMAND_MAX_DELIVERY_ATTEMPTS;
          }),
        ),
      );
      slice.forEach((device, index) => {
        if (outcomes[index]) done.push(device);
      });
    }
    // A row made due again meanwhile (another change) has another dueAt: it stays for the
    // next round. A device with a required app install to retry keeps its row, due then.
    if (done.length > 0) {
      await deps.db.$executeRaw`
        WITH done AS (
          SELECT * FROM unnest(${done.map((row) => row.deviceId)}::uuid[], ${done.map((row) => row.dueAt)}::timestamptz[]) AS d(id, due)),
        retry AS (
          SELECT "deviceId", min("nextAttemptAt") AS at FROM "RequiredAppInstall"
          WHERE "deviceId" IN (SELECT id FROM done) AND failed AND "nextAttemptAt" IS NOT NULL GROUP BY "deviceId"),
        rescheduled AS (
          UPDATE "PolicyDispatch" p SET attempts = 0,
            -- Still due (its round failed): later, not in a loop.
            "dueAt" = CASE WHEN retry.at > ${now} THEN retry.at ELSE ${now}::timestamptz + make_interval(secs => ${REQUIRED_APP_RETRY_BASE_SECONDS}) END
          FROM done JOIN retry ON retry."deviceId" = done.id
          WHERE p."deviceId" = done.id AND p."dueAt" = done.due
          RETURNING p."deviceId")
        DELETE FROM "PolicyDispatch" p USING done
        WHERE p."deviceId" = done.id AND p."dueAt" = done.due AND p."deviceId" NOT IN (SELECT "deviceId" FROM rescheduled)`;
    }
    total += claimed.length;
    if (claimed.length < CLAIM_BATCH) break;
  }
  return total;
}

/** The instance's policy worker: runs on every wake-up (a bus event from any instance) and on a poll for retries. */
export function startPolicyDispatchWorker(deps: DispatchDeps): PollingWorker {
  const worker = startPollingWorker({
    name: "policy dispatch worker",
    pollMs: Math.max(1000, Math.min(10_000, deps.env.COMMAND_RETRY_BASE_SECONDS * 1000)),
    logger: deps.logger,
    round: (stopping) => dispatchDuePolicies(deps, stopping),
  });
  const unsubscribe = deps.bus.subscribe((event) => {
    if (event.kind === "policy_dispatch_due") void worker.runNow();
  });
  return {
    runNow: worker.runNow,
    stop: async () => {
      unsubscribe();
      await worker.stop();
    },
  };
}
