import { randomUUID } from "node:crypto";
import {
  type ActionResultRequest,
  type ActionResultResponse,
  type Command as CommandView,
  type CommandPushData,
  type CommandStatus,
  type CreateCommandRequest,
  type DeviceCommand,
  canonicalJson,
  finalCommandStatuses,
  signCommand,
} from "@mdm/contracts";
import type { AppDeps } from "../../deps";
import type { Command, CommandEvent } from "../../generated/prisma/client";
import { recordAudit } from "../../lib/audit";
import { HttpError } from "../../lib/http-error";
import { commandKeyFor } from "../devices/devices.service";

type CommandWithEvents = Command & { events: CommandEvent[] };

const withEvents = { events: { orderBy: { id: "asc" } } } as const;

export function toCommandView(command: CommandWithEvents): CommandView {
  return {
    requestId: command.requestId,
    deviceId: command.deviceId,
    type: command.type,
    payload: command.payload as Record<string, unknown>,
    status: command.status,
    createdAt: command.createdAt.toISOString(),
    expiresAt: command.expiresAt.toISOString(),
    sentAt: command.sentAt?.toISOString() ?? null,
    acknowledgedAt: command.acknowledgedAt?.toISOString() ?? null,
    completedAt: command.completedAt?.toISOString() ?? null,
    push: {
      outcome: command.pushOutcome,
      messageId: command.pushMessageId,
      error: command.pushError,
      attempts: command.pushAttempts,
    },
    result: (command.result as Record<string, unknown> | null) ?? null,
    errorMessage: command.errorMessage,
    events: command.events.map((event) => ({ status: event.status, at: event.at.toISOString(), detail: event.detail })),
  };
}

/** The command as the device receives it, signed with the device's command key. */
export async function toDeviceCommand(hmacSecret: string, command: Command): Promise<DeviceCommand> {
  const unsigned = {
    requestId: command.requestId,
    type: command.type,
    payload: command.payload as Record<string, unknown>,
    issuedAt: command.createdAt.toISOString(),
    expiresAt: command.expiresAt.toISOString(),
  };
  return { ...unsigned, signature: await signCommand(commandKeyFor(hmacSecret, command.deviceId), unsigned) };
}

/** Moves a command from one of `from` to `to`, with its event; false if it was no longer in `from`. */
async function transition(
  { db }: Pick<AppDeps, "db">,
  requestId: string,
  from: CommandStatus[],
  to: CommandStatus,
  at: Date,
  detail: string | null,
  extra: Partial<Pick<Command, "sentAt" | "acknowledgedAt" | "completedAt" | "errorMessage">> & { result?: object } = {},
): Promise<boolean> {
  return db.$transaction(async (tx) => {
    const { count } = await tx.command.updateMany({ where: { requestId, status: { in: from } }, data: { status: to, ...extra } });
    if (count === 1) await tx.commandEvent.create({ data: { requestId, status: to, at, detail } });
    return count === 1;
  });
}

export async function createCommand(
  deps: Pick<AppDeps, "db" | "clock" | "env" | "push" | "metrics" | "logger">,
  input: CreateCommandRequest,
  actor: { name: string; ip?: string },
): Promise<CommandView> {
  const { db, clock, env } = deps;
  const device = await db.device.findUnique({ where: { id: input.deviceId }, select: { id: true } });
  if (!device) throw new HttpError("not_found", "No device has this id");
  const now = clock.now();
  const ttlSeconds = input.ttlSeconds ?? env.COMMAND_DEFAULT_TTL_SECONDS;
  const command = await db.command.create({
    data: {
      requestId: randomUUID(),
      deviceId: input.deviceId,
      type: input.type,
      payload: input.payload as object,
      createdAt: now,
      expiresAt: new Date(now.getTime() + ttlSeconds * 1000),
      createdBy: actor.name,
      events: { create: { status: "queued", at: now } },
    },
  });
  await recordAudit(db, {
    actor: actor.name,
    action: "command.create",
    targetType: "device",
    targetId: input.deviceId,
    ip: actor.ip,
    details: { requestId: command.requestId, type: input.type },
  });
  deps.logger.info("command queued", { requestId: command.requestId, deviceId: input.deviceId, type: input.type });
  await pushCommand(deps, command);
  return getCommand(deps, command.requestId);
}

/**
 * Sends the command as a high-priority FCM data message and records the outcome. A token
 * FCM says is gone is marked invalid on the device, so it is not tried again until the
 * device reports a new one; the command then waits for the device's next heartbeat.
 */
export async function pushCommand(deps: Pick<AppDeps, "db" | "clock" | "env" | "push" | "metrics" | "logger">, command: Command) {
  const { db, clock, push, metrics } = deps;
  const device = await db.device.findUniqueOrThrow({
    where: { id: command.deviceId },
    select: { fcmToken: true, fcmTokenInvalidAt: true },
  });
  if (!device.fcmToken || device.fcmTokenInvalidAt) {
    await db.command.update({ where: { requestId: command.requestId }, data: { pushOutcome: "no_token" } });
    metrics.commandSend.inc({ outcome: "no_token" });
    return;
  }
  const signed = await toDeviceCommand(deps.env.HMAC_SECRET, command);
  const data: CommandPushData = { kind: "command", ...signed, payload: canonicalJson(signed.payload) };
  const ttlSeconds = Math.max(1, Math.floor((command.expiresAt.getTime() - clock.now().getTime()) / 1000));
  const result = await push.send({ token: device.fcmToken, data, ttlSeconds });
  const now = clock.now();
  metrics.commandSend.inc({ outcome: result.ok ? "sent" : result.reason });
  if (result.ok) {
    await db.command.update({
      where: { requestId: command.requestId },
      data: { pushOutcome: "sent", pushMessageId: result.messageId, pushError: null, pushAttempts: { increment: 1 } },
    });
    await transition(deps, command.requestId, ["queued"], "sent", now, `push ${result.messageId}`, { sentAt: now });
    return;
  }
  deps.logger.warn("command push failed", { requestId: command.requestId, deviceId: command.deviceId, reason: result.reason });
  await db.command.update({
    where: { requestId: command.requestId },
    data: { pushOutcome: result.reason, pushError: result.error, pushAttempts: { increment: 1 } },
  });
  if (result.reason === "token_invalid") {
    await db.device.update({ where: { id: command.deviceId }, data: { fcmTokenInvalidAt: now } });
  }
}

export async function getCommand({ db }: Pick<AppDeps, "db">, requestId: string): Promise<CommandView> {
  const command = await db.command.findUnique({ where: { requestId }, include: withEvents });
  if (!command) throw new HttpError("not_found", "No command has this requestId");
  return toCommandView(command);
}

const PENDING_BATCH = 20;

/** Commands still waiting for this device, oldest first; handing them over marks them sent. */
export async function takePendingCommands(deps: Pick<AppDeps, "db" | "clock" | "env">, deviceId: string): Promise<DeviceCommand[]> {
  const now = deps.clock.now();
  const pending = await deps.db.command.findMany({
    where: { deviceId, status: { in: ["queued", "sent"] }, expiresAt: { gt: now } },
    orderBy: { createdAt: "asc" },
    take: PENDING_BATCH,
  });
  for (const command of pending) {
    if (command.status === "queued") await transition(deps, command.requestId, ["queued"], "sent", now, "heartbeat", { sentAt: now });
  }
  return Promise.all(pending.map((command) => toDeviceCommand(deps.env.HMAC_SECRET, command)));
}

// Which statuses each reported status may follow. A device's report moves a command forward only.
const ACCEPTS_FROM: Record<ActionResultRequest["status"], CommandStatus[]> = {
  acknowledged: ["queued", "sent"],
  succeeded: ["queued", "sent", "acknowledged"],
  failed: ["queued", "sent", "acknowledged"],
};

export async function recordActionResult(
  deps: Pick<AppDeps, "db" | "clock" | "metrics">,
  deviceId: string,
  input: ActionResultRequest,
): Promise<ActionResultResponse> {
  const { db, clock, metrics } = deps;
  const command = await db.command.findUnique({ where: { requestId: input.requestId }, select: { deviceId: true, status: true } });
  // Another device's command answers exactly like an unknown one: ids are not confirmed to strangers.
  if (!command || command.deviceId !== deviceId) throw new HttpError("not_found", "This device has no command with this requestId");
  const now = clock.now();
  const final = input.status !== "acknowledged";
  const changed = await transition(deps, input.requestId, ACCEPTS_FROM[input.status], input.status, now, input.error ?? null, {
    ...(final ? { completedAt: now, result: input.result, errorMessage: input.error ?? null } : { acknowledgedAt: now }),
  });
  metrics.actionResult.inc({ status: input.status, changed: String(changed) });
  const current = await db.command.findUniqueOrThrow({ where: { requestId: input.requestId }, select: { status: true } });
  if (changed || isRepeat(input.status, current.status)) return { requestId: input.requestId, status: current.status, changed };
  throw new HttpError("conflict", `The command is already ${current.status}; a ${input.status} result cannot follow it`);
}

/** A report that the current status already implies: a retry, answered as success. */
function isRepeat(reported: ActionResultRequest["status"], current: CommandStatus): boolean {
  if (reported === current) return true;
  return reported === "acknowledged" && (current === "succeeded" || current === "failed");
}

export function isFinal(status: CommandStatus): boolean {
  return finalCommandStatuses.includes(status);
}
