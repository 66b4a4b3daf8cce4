import { type CommandPushData, canonicalJson } from "@mdm/contracts";
import type { AppDeps } from "../../deps";
import type { Command } from "../../generated/prisma/client";
import { type PollingWorker, startPollingWorker } from "../../lib/polling-worker";
import { transition } from "./command-transitions";
import { canSignFor, toDeviceCommand } from "./commands.service";

// The delivery engine. Every unfinished command is a row with its next attempt time; one
// worker per instance claims due rows (FOR UPDATE SKIP LOCKED, so instances never claim
// the same one) and picks the channel from the device's presence at that moment. Routes,
// the device hub and bulk creation only write rows and wake the workers: a crash at any
// point leaves each command either delivered or due again.

type DeliveryDeps = Pick<AppDeps, "db" | "clock" | "env" | "push" | "metrics" | "logger" | "bus" | "instanceId">;

// A worker claims only what it attempts at once: a claim schedules the next attempt one
// retry interval ahead, so a command must not wait in a long local batch behind slow
// pushes and fall due again (for another worker) before its first attempt.
const CLAIM_BATCH = 16;
const MAX_RETRY_DELAY_SECONDS = 600;

/** Seconds before the next attempt after `attempt` attempts, without jitter. */
export function retryDelaySeconds(baseSeconds: number, attempt: number): number {
  return Math.min(MAX_RETRY_DELAY_SECONDS, baseSeconds * 2 ** Math.max(0, attempt - 1));
}

/** Tells every instance's worker that commands are due now (new, or a device came back). */
export function wakeDelivery({ bus }: Pick<AppDeps, "bus">): void {
  bus.publish({ kind: "commands_due" });
}

type ClaimedCommand = Command & {
  socketInstanceId: string | null;
  socketLeaseExpiresAt: Date | null;
  fcmToken: string | null;
  fcmTokenInvalidAt: Date | null;
  commandKeyGeneration: number;
  commandMasterKeyId: string | null;
};

/**
 * Claims due commands and schedules their next attempt in the same statement (backoff
 * with ±20% jitter), so a crash after the claim leaves them due again at that time,
 * never lost. After the last allowed attempt a command waits for its device to call in.
 */
async function claimDueCommands(deps: DeliveryDeps): Promise<ClaimedCommand[]> {
  const now = deps.clock.now();
  const { COMMAND_RETRY_BASE_SECONDS: base, COMMAND_MAX_DELIVERY_ATTEMPTS: maxAttempts } = deps.env;
  return deps.db.$queryRaw<ClaimedCommand[]>`
    WITH due AS (
      SELECT "requestId" FROM "Command"
      WHERE status IN ('queued', 'sent') AND "nextAttemptAt" <= ${now} AND "expiresAt" > ${now}
      ORDER BY "nextAttemptAt" LIMIT ${CLAIM_BATCH}
      FOR UPDATE SKIP LOCKED),
    claimed AS (
      UPDATE "Command" c SET
        "deliveryAttempts" = c."deliveryAttempts" + 1,
        "nextAttemptAt" = CASE WHEN c."deliveryAttempts" + 1 < ${maxAttempts}
          THEN ${now}::timestamptz + make_interval(secs => LEAST(${MAX_RETRY_DELAY_SECONDS}, ${base} * power(2, c."deliveryAttempts")) * (0.8 + random() * 0.4))
          ELSE NULL END
      FROM due WHERE c."requestId" = due."requestId"
      RETURNING c.*)
    SELECT claimed.*, d."socketInstanceId", d."socketLeaseExpiresAt", d."fcmToken", d."fcmTokenInvalidAt", d."commandKeyGeneration", d."commandMasterKeyId"
    FROM claimed JOIN "Device" d ON d.id = claimed."deviceId"`;
}

/**
 * One attempt: over the device's WebSocket when an instance holds a live lease on it (the
 * bus carries the command there), else by FCM when the device has a valid token, else
 * nothing: the command waits for the next heartbeat or connection.
 */
async function attempt(deps: DeliveryDeps, command: ClaimedCommand, now: Date): Promise<void> {
  const viaSocket = command.socketInstanceId !== null && command.socketLeaseExpiresAt !== null && command.socketLeaseExpiresAt > now;
  if (viaSocket) deps.bus.publish({ kind: "deliver", deviceId: command.deviceId, requestId: command.requestId });
  if (!viaSocket || command.delivery === "both") await pushCommand(deps, command);
}

/**
 * Sends the command as a high-priority FCM data message and records the outcome. A token
 * FCM says is gone is marked invalid on the device, so it is not tried again until the
 * device reports a new one. Without FCM credentials the local gateway records the
 * message: the command says so, and stays queued.
 */
async function pushCommand(deps: DeliveryDeps, command: ClaimedCommand): Promise<void> {
  const { db, clock, push, metrics } = deps;
  if (!command.fcmToken || command.fcmTokenInvalidAt) {
    await db.command.update({ where: { requestId: command.requestId }, data: { pushOutcome: "no_token" } });
    metrics.commandSend.inc({ outcome: "no_token" });
    return;
  }
  const key = { masterKeyId: command.commandMasterKeyId, generation: command.commandKeyGeneration };
  if (!canSignFor(deps, command.deviceId, key)) return;
  const signed = await toDeviceCommand(deps.env, command, key);
  const data: CommandPushData = { kind: "command", ...signed, payload: canonicalJson(signed.payload) };
  const ttlSeconds = Math.max(1, Math.floor((command.expiresAt.getTime() - clock.now().getTime()) / 1000));
  const result = await push.send({ token: command.fcmToken, data, ttlSeconds });
  const now = clock.now();
  const outcome = result.ok ? result.outcome : result.reason;
  metrics.commandSend.inc({ outcome });
  const recordOutcome = db.command.update({
    where: { requestId: command.requestId },
    data: result.ok
      ? { pushOutcome: result.outcome, pushMessageId: result.messageId, pushError: null, pushAttempts: { increment: 1 } }
      : { pushOutcome: result.reason, pushError: result.error, pushAttempts: { increment: 1 } },
  });
  if (result.ok && result.outcome === "recorded" && command.pushOutcome !== "recorded") {
    // Recorded, not sent: say so once in the history, where an operator looks first, in the
    // same transaction as the outcome, so nobody sees one without the other.
    const detail = `push recorded, not sent (${push.name} gateway: no FCM credentials)`;
    await db.$transaction([recordOutcome, db.commandEvent.create({ data: { requestId: command.requestId, status: command.status, at: now, detail } })]);
    return;
  }
  await recordOutcome;
  if (result.ok && result.outcome === "sent") {
    await transition(deps, command.requestId, ["queued"], "sent", now, `push ${result.messageId}`, { sentAt: now });
    return;
  }
  if (result.ok) return;
  deps.logger.warn("command push failed", { requestId: command.requestId, deviceId: command.deviceId, reason: result.reason });
  if (result.reason === "token_invalid") await db.device.update({ where: { id: command.deviceId }, data: { fcmTokenInvalidAt: now } });
}

/**
 * Claims and attempts due commands until none are left, or until `stopping()` says the
 * instance is shutting down (checked between claims, so shutdown waits for one round of
 * attempts at most, not for the whole queue). Returns how many it attempted.
 */
export async function deliverDueCommands(deps: DeliveryDeps, stopping: () => boolean = () => false): Promise<number> {
  let total = 0;
  while (!stopping()) {
    const claimed = await claimDueCommands(deps);
    const now = deps.clock.now();
    await Promise.all(
      claimed.map((command) =>
        attempt(deps, command, now).catch((error: unknown) => {
          // The claim already scheduled the next attempt: a failure here is retried then.
          deps.logger.error("delivery attempt failed", { requestId: command.requestId, message: error instanceof Error ? error.message : String(error) });
        }),
      ),
    );
    total += claimed.length;
    if (claimed.length < CLAIM_BATCH) break;
  }
  return total;
}

/**
 * The instance's delivery worker: runs on every wake-up (a bus event from any instance)
 * and on a short poll for retries that fall due. Never two runs at once on one instance;
 * a wake-up during a run makes it go round once more.
 */
export function startDeliveryWorker(deps: DeliveryDeps): PollingWorker {
  const worker = startPollingWorker({
    name: "delivery worker",
    pollMs: Math.min(1000, deps.env.COMMAND_RETRY_BASE_SECONDS * 1000),
    logger: deps.logger,
    round: (stopping) => deliverDueCommands(deps, stopping),
  });
  const unsubscribe = deps.bus.subscribe((event) => {
    if (event.kind === "commands_due") void worker.runNow();
  });
  return {
    runNow: worker.runNow,
    stop: async () => {
      unsubscribe();
      await worker.stop();
    },
  };
}
