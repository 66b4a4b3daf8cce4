import { randomUUID } from "node:crypto";
import {
  type ActionResultRequest,
  type ActionResultResponse,
  type BulkTarget,
  type CommandBatch as BatchView,
  type Command as CommandView,
  type CommandStatus,
  type CommandType,
  type CreateBulkCommandRequest,
  type CreateCommandRequest,
  type DeviceCommand,
  type ListBatchesResponse,
  type ListCommandsQuery,
  type ListCommandsResponse,
  CommandResults,
  CommandStatus as CommandStatuses,
  destructiveCommandTypes,
  finalCommandStatuses,
  Uuid,
  signCommand,
  validationIssues,
} from "@mdm/contracts";
import type { Env } from "../../config/env";
import type { AppDeps } from "../../deps";
import type { Command, CommandBatch as CommandBatchRow, CommandEvent, Prisma } from "../../generated/prisma/client";
import { recordAudit } from "../../lib/audit";
import type { DbOrTx } from "../../db/types";
import { type GroupCommit, createGroupCommit } from "../../lib/group-commit";
import { HttpError } from "../../lib/http-error";
import {
  type CommandKeyRef,
  DeviceRevokedError,
  assertInService,
  commandKeyFor,
  commandKeyIdFor,
  commandKeyOf,
  hasCommandKey,
  masterKeyIdOf,
} from "../devices/devices.service";
import { retireDevice, withdrawRotation } from "../lifecycle/lifecycle.service";
import { retryDelaySeconds, wakeDelivery } from "./delivery";
import { UNFINISHED_COMMAND_STATUSES, announceCancelled, cancelCommands, recordCommandEvents, transition } from "./command-transitions";

type CommandWithEvents = Command & { events: CommandEvent[]; device?: { alias: string | null; serialNumber: string | null; model: string | null } | null };

const withEvents = { events: { orderBy: { id: "asc" } }, device: { select: { alias: true, serialNumber: true, model: true } } } as const;

export function toCommandView(command: CommandWithEvents): CommandView {
  return {
    requestId: command.requestId,
    deviceId: command.deviceId,
    device: command.device ?? null,
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
    batchId: command.batchId,
    delivery: command.delivery,
    createdBy: command.createdBy,
    events: command.events.map((event) => ({ status: event.status, at: event.at.toISOString(), detail: event.detail })),
  };
}

/** The command as the device receives it, signed with the device's command key (check `hasCommandKey` first). */
export async function toDeviceCommand(env: Env, command: Command, key: CommandKeyRef): Promise<DeviceCommand> {
  const unsigned = {
    keyId: commandKeyIdFor(env, key),
    requestId: command.requestId,
    type: command.type,
    payload: command.payload as Record<string, unknown>,
    issuedAt: command.createdAt.toISOString(),
    expiresAt: command.expiresAt.toISOString(),
  };
  return { ...unsigned, signature: await signCommand(commandKeyFor(env, command.deviceId, key), unsigned) };
}

/**
 * Whether commands can be signed for this device; logs why not: its key derives from a
 * master key the operator dropped before the device was moved off it. Its commands wait
 * (and expire) until that key is configured again as COMMAND_MASTER_KEY_PREVIOUS.
 */
export function canSignFor(deps: Pick<AppDeps, "env" | "logger">, deviceId: string, key: CommandKeyRef): boolean {
  if (hasCommandKey(deps.env, key)) return true;
  deps.logger.warn("command not sent: the device's command key derives from a master key that is not configured", {
    deviceId,
    masterKeyId: masterKeyIdOf(deps.env, key.masterKeyId),
  });
  return false;
}

type CommandDeps = Pick<AppDeps, "db" | "clock" | "env" | "logger" | "bus" | "metrics">;

/**
 * Writes a command with its first delivery attempt due now and wakes the delivery
 * workers. `handedOver`: the caller gives it to the device itself at once (in the answer
 * to the heartbeat that caused it), so the first attempt waits one retry interval.
 */
export async function createCommand(
  deps: CommandDeps,
  input: CreateCommandRequest,
  actor: { name: string; ip?: string },
  options: { handedOver?: boolean } = {},
): Promise<CommandView> {
  const { db, clock, env } = deps;
  const device = await db.device.findUnique({ where: { id: input.deviceId }, select: { retiredAt: true } });
  if (!device) throw new HttpError("not_found", "No device has this id");
  if (device.retiredAt) throw new HttpError("conflict", "The device is retired: it takes no more commands");
  const now = clock.now();
  const ttlSeconds = input.ttlSeconds ?? env.COMMAND_DEFAULT_TTL_SECONDS;
  const firstAttemptAt = options.handedOver ? new Date(now.getTime() + retryDelaySeconds(env.COMMAND_RETRY_BASE_SECONDS, 1) * 1000) : now;
  const command = await db.command.create({
    data: {
      requestId: randomUUID(),
      deviceId: input.deviceId,
      type: input.type,
      payload: input.payload as object,
      createdAt: now,
      expiresAt: new Date(now.getTime() + ttlSeconds * 1000),
      createdBy: actor.name,
      delivery: input.delivery,
      nextAttemptAt: firstAttemptAt,
      events: { create: { status: "queued", at: now } },
    },
  });
  deps.bus.publish({
    kind: "command_status",
    change: { requestId: command.requestId, deviceId: command.deviceId, batchId: null, status: "queued", at: now.toISOString() },
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
  if (!options.handedOver) wakeDelivery(deps);
  return getCommand(deps, command.requestId);
}

export async function getCommand({ db }: Pick<AppDeps, "db">, requestId: string): Promise<CommandView> {
  const command = await db.command.findUnique({ where: { requestId }, include: withEvents });
  if (!command) throw new HttpError("not_found", "No command has this requestId");
  return toCommandView(command);
}

const PENDING_BATCH = 20;

/**
 * Commands still waiting for this device, handed over in the answer to its heartbeat:
 * `first` (what this heartbeat just called for), then the oldest, at most PENDING_BATCH.
 * They count as sent; the worker tries again only if no acknowledgement comes within a
 * retry interval.
 */
export async function takePendingCommands(
  deps: Pick<AppDeps, "db" | "clock" | "env" | "bus" | "logger" | "metrics">,
  deviceId: string,
  channel: string,
  first: string[] = [],
): Promise<DeviceCommand[]> {
  const now = deps.clock.now();
  const waiting = { deviceId, status: { in: ["queued" as const, "sent" as const] }, expiresAt: { gt: now } };
  const urgent = first.length > 0 ? await deps.db.command.findMany({ where: { ...waiting, requestId: { in: first } }, take: PENDING_BATCH }) : [];
  const oldest = await deps.db.command.findMany({
    where: { ...waiting, requestId: { notIn: urgent.map((command) => command.requestId) } },
    orderBy: { createdAt: "asc" },
    take: PENDING_BATCH - urgent.length,
  });
  const pending = [...urgent, ...oldest];
  if (pending.length === 0) return [];
  const key = await commandKeyOf(deps, deviceId);
  if (!canSignFor(deps, deviceId, key)) return [];
  const retryAt = new Date(now.getTime() + retryDelaySeconds(deps.env.COMMAND_RETRY_BASE_SECONDS, 1) * 1000);
  await deps.db.command.updateMany({ where: { requestId: { in: pending.map((command) => command.requestId) } }, data: { nextAttemptAt: retryAt } });
  for (const command of pending) {
    if (command.status === "queued") await transition(deps, command.requestId, ["queued"], "sent", now, channel, { sentAt: now });
  }
  return Promise.all(pending.map((command) => toDeviceCommand(deps.env, command, key)));
}

// Which statuses each reported status may follow. A device's report moves a command forward only.
const ACCEPTS_FROM: Record<ActionResultRequest["status"], CommandStatus[]> = {
  acknowledged: ["queued", "sent"],
  succeeded: UNFINISHED_COMMAND_STATUSES,
  failed: UNFINISHED_COMMAND_STATUSES,
};

export async function recordActionResult(
  deps: Pick<AppDeps, "db" | "clock" | "metrics" | "bus" | "logger">,
  deviceId: string,
  input: ActionResultRequest,
): Promise<ActionResultResponse> {
  const { db, clock, metrics } = deps;
  const command = await reportedCommand(deps, deviceId, input.requestId);
  if (input.status === "succeeded") checkResult(command.type, input.result);
  const now = clock.now();
  const final = input.status !== "acknowledged";
  const changed = await transition(deps, input.requestId, ACCEPTS_FROM[input.status], input.status, now, input.error ?? null, {
    nextAttemptAt: null,
    ...(final ? { completedAt: now, result: input.result, errorMessage: input.error ?? null } : { acknowledgedAt: now }),
  });
  metrics.actionResult.inc({ status: input.status, changed: String(changed) });
  const status = changed ? input.status : (await db.command.findUniqueOrThrow({ where: { requestId: input.requestId }, select: { status: true } })).status;
  if (!changed && !isRepeat(input.status, status)) {
    throw new HttpError("conflict", `The command is already ${status}; a ${input.status} result cannot follow it`);
  }
  // A succeeded rotate_token is recorded, and completes nothing: only a request carrying the
  // new token does (authenticateDevice), since whoever holds a leaked old token can send this.
  // An erased device forgot its token: it leaves the fleet, and comes back by enrolling again.
  // A repeated report retires it too: the first one's retirement may have failed after its
  // status committed (the maintenance sweep, retireErasedDevices, catches a device that never retries).
  if (input.status === "succeeded" && status === "succeeded" && destructiveCommandTypes.includes(command.type)) {
    await retireDevice(deps, deviceId, { name: `command:${command.type}` });
  }
  return { requestId: input.requestId, status, changed };
}

type ReportedCommand = { requestId: string; deviceId: string; type: CommandType; deviceRetired: boolean };

// Reports (acks, results) arriving together read their commands in one statement (ids that
// are no UUID are left out as unknown, so as not to fail the others'): the acks
// and results of a bulk command come from thousands of devices within seconds, and two
// reads each queued them on the pool past ADMISSION_MAX_DATABASE_QUEUE, so the instance
// shed every request for the length of the fan-in.
const REPORT_READ_BATCH_MAX = 1000;
const REPORT_READ_WAIT_MS = 2;
const REPORT_READS_QUEUED_MAX = 20_000;
const reportReads = new WeakMap<object, GroupCommit<string, ReportedCommand | undefined>>();

function reportReadsOf({ db }: Pick<AppDeps, "db">): GroupCommit<string, ReportedCommand | undefined> {
  let reads = reportReads.get(db);
  if (!reads) {
    reads = createGroupCommit({
      maxBatch: REPORT_READ_BATCH_MAX,
      maxWaitMs: REPORT_READ_WAIT_MS,
      maxQueued: REPORT_READS_QUEUED_MAX,
      maxRunning: 2,
      run: async (requestIds) => {
        const rows = await db.$queryRaw<ReportedCommand[]>`
          SELECT c."requestId", c."deviceId", c.type::text AS type, d."retiredAt" IS NOT NULL AS "deviceRetired"
          FROM "Command" c JOIN "Device" d ON d.id = c."deviceId"
          WHERE c."requestId" = ANY(${requestIds.filter((id) => Uuid.safeParse(id).success)}::uuid[])`;
        const byId = new Map(rows.map((row) => [row.requestId, row]));
        // PostgreSQL answers ids in lower case; the contract's UUIDs may come in upper case.
        return requestIds.map((requestId) => byId.get(requestId.toLowerCase()));
      },
      full: () =>
        new HttpError("service_unavailable", "This instance has too many command reports waiting to be read; retry later", undefined, { "Retry-After": "1" }),
    });
    reportReads.set(db, reads);
  }
  return reads;
}

/**
 * The command `deviceId` reports on, once it is known to be that device's and the device to
 * be in service: a caller past authentication (a cached token, an open socket) may report
 * for a device retired since. Another device's command answers exactly like an unknown one:
 * ids are not confirmed to strangers.
 */
async function reportedCommand(deps: Pick<AppDeps, "db">, deviceId: string, requestId: string): Promise<ReportedCommand> {
  const command = await reportReadsOf(deps).submit(undefined, requestId);
  if (!command || command.deviceId !== deviceId) {
    await assertInService(deps, deviceId);
    throw new HttpError("not_found", "This device has no command with this requestId");
  }
  if (command.deviceRetired) throw new DeviceRevokedError();
  return command;
}

/** A `succeeded` result of a type whose result has a schema must match it. */
function checkResult(type: CommandType, result: ActionResultRequest["result"]): void {
  const schema = (CommandResults as Partial<Record<CommandType, (typeof CommandResults)[keyof typeof CommandResults]>>)[type];
  if (!schema) return;
  const parsed = schema.safeParse(result ?? {});
  if (parsed.success) return;
  throw new HttpError(
    "validation_failed",
    `A succeeded ${type} result must match the ${type} result schema`,
    validationIssues(parsed.error, ["result"]).slice(0, 20),
  );
}

/** A report that the current status already implies: a retry, answered as success. */
function isRepeat(reported: ActionResultRequest["status"], current: CommandStatus): boolean {
  if (reported === current) return true;
  return reported === "acknowledged" && (current === "succeeded" || current === "failed");
}

/** A device's delivery receipt (over the WebSocket): the command arrived and will run. */
export async function acknowledgeCommand(deps: Pick<AppDeps, "db" | "clock" | "bus" | "metrics">, deviceId: string, requestId: string): Promise<void> {
  const now = deps.clock.now();
  await reportedCommand(deps, deviceId, requestId);
  await transition(deps, requestId, ["queued", "sent"], "acknowledged", now, "websocket", { acknowledgedAt: now, nextAttemptAt: null });
}

export async function cancelCommand(deps: CommandDeps, requestId: string, actor: { name: string; ip?: string }): Promise<CommandView> {
  const existing = await deps.db.command.findUnique({ where: { requestId }, select: { status: true, deviceId: true, type: true } });
  if (!existing) throw new HttpError("not_found", "No command has this requestId");
  const cancel = (from: CommandStatus[]) =>
    transition(deps, requestId, from, "cancelled", deps.clock.now(), `by ${actor.name}`, { completedAt: deps.clock.now(), nextAttemptAt: null });
  let cancelled: boolean;
  if (existing.type === "rotate_token") {
    // Cancelled before it left the server: the device never saw the new token, so the rotation is withdrawn.
    const unsent = await cancel(["queued"]);
    if (unsent) await withdrawRotation(deps.db, existing.deviceId, requestId);
    cancelled = unsent || (await cancel(["sent", "acknowledged"]));
  } else {
    cancelled = await cancel(UNFINISHED_COMMAND_STATUSES);
  }
  if (!cancelled) throw new HttpError("conflict", `The command is already ${existing.status}`);
  await recordAudit(deps.db, {
    actor: actor.name,
    action: "command.cancel",
    targetType: "device",
    targetId: existing.deviceId,
    ip: actor.ip,
    details: { requestId },
  });
  return getCommand(deps, requestId);
}

/** Cancels the commands `where` picks that have not left for their device yet (queued); see cancelCommands. */
export const cancelQueuedCommands = (tx: DbOrTx, where: Prisma.CommandWhereInput, reason: string, now: Date) =>
  cancelCommands(tx, { AND: [where, { status: "queued" }] }, reason, now);

/** Cancels every unfinished command of a batch, with the reason in each command's history. */
export async function cancelBatch(deps: CommandDeps, batchId: string, actor: { name: string; ip?: string }): Promise<BatchView> {
  const { db, clock, bus } = deps;
  if (!(await db.commandBatch.findUnique({ where: { id: batchId }, select: { id: true } }))) throw new HttpError("not_found", "No batch has this id");
  const now = clock.now();
  const reason = `batch cancelled by ${actor.name}`;
  const cancelled = await db.$transaction(
    async (tx) => {
      // Webhooks for each cancelled command, and batch.done: the batch has no unfinished command left.
      const rows = await cancelCommands(tx, { batchId, status: { in: UNFINISHED_COMMAND_STATUSES } }, reason, now);
      await recordAudit(tx, {
        actor: actor.name,
        action: "batch.cancel",
        targetType: "batch",
        targetId: batchId,
        ip: actor.ip,
        details: { cancelled: rows.length },
      });
      return rows;
      // A fleet-wide batch cancels many commands at once: more than the default 5 s.
    },
    { timeout: 60_000 },
  );
  announceCancelled(bus, cancelled, now);
  deps.logger.info("batch cancelled", { batchId, cancelled: cancelled.length });
  return getBatch(deps, batchId);
}

async function resolveTarget({ db }: Pick<AppDeps, "db">, target: BulkTarget): Promise<string[]> {
  if ("deviceIds" in target) {
    const found = await db.device.findMany({ where: { id: { in: target.deviceIds }, retiredAt: null }, select: { id: true } });
    const known = new Set(found.map((device) => device.id));
    const unknown = target.deviceIds.filter((id) => !known.has(id));
    if (unknown.length > 0) {
      throw new HttpError(
        "validation_failed",
        "Unknown or retired devices in target",
        unknown.slice(0, 20).map((id) => ({ path: "target.deviceIds", message: `No device in service has id ${id}` })),
      );
    }
    return [...known];
  }
  const where: Prisma.DeviceWhereInput = "group" in target ? { groups: { has: target.group }, retiredAt: null } : { retiredAt: null };
  return (await db.device.findMany({ where, select: { id: true } })).map((device) => device.id);
}

export async function createBulkCommand(deps: CommandDeps, input: CreateBulkCommandRequest, actor: { name: string; ip?: string }): Promise<BatchView> {
  const deviceIds = await resolveTarget(deps, input.target);
  if (deviceIds.length === 0) throw new HttpError("validation_failed", "The target matches no device", [{ path: "target", message: "No device matches" }]);
  const { batchId } = await deps.db.$transaction((tx) => queueBulkCommand(tx, deps, input, deviceIds, actor), { timeout: 60_000 });
  deps.logger.info("bulk command queued", { batchId, type: input.type, total: deviceIds.length });
  // The rows are the fan-out: the workers of every instance claim and send them.
  wakeDelivery(deps);
  return getBatch(deps, batchId);
}

/**
 * Writes a batch of `input` for `deviceIds` (devices in service, resolved by the caller)
 * with its commands, their queued events and the audit entry, in the caller's
 * transaction. The caller wakes the delivery workers once it has committed.
 */
export async function queueBulkCommand(
  tx: DbOrTx,
  deps: Pick<AppDeps, "clock" | "env">,
  input: CreateBulkCommandRequest,
  deviceIds: string[],
  actor: { name: string; ip?: string },
): Promise<{ batchId: string; commands: Array<{ deviceId: string; requestId: string }> }> {
  const now = deps.clock.now();
  const batchId = randomUUID();
  const expiresAt = new Date(now.getTime() + (input.ttlSeconds ?? deps.env.COMMAND_DEFAULT_TTL_SECONDS) * 1000);
  const requestIds = deviceIds.map(() => randomUUID());
  await tx.commandBatch.create({
    data: {
      id: batchId,
      type: input.type,
      payload: input.payload as object,
      target: input.target,
      total: deviceIds.length,
      createdBy: actor.name,
      createdAt: now,
    },
  });
  // One statement for the commands of the whole batch (up to the fleet): see recordCommandEvents.
  await tx.$executeRaw`
    INSERT INTO "Command" ("requestId", "deviceId", type, payload, "createdAt", "expiresAt", "createdBy", delivery, "batchId", "nextAttemptAt")
    SELECT "requestId", "deviceId", ${input.type}::"CommandType", ${JSON.stringify(input.payload)}::jsonb, ${now}, ${expiresAt}, ${actor.name},
      ${input.delivery}::"CommandDelivery", ${batchId}::uuid, ${now}
    FROM unnest(${requestIds}::uuid[], ${deviceIds}::uuid[]) AS t("requestId", "deviceId")`;
  await recordCommandEvents(tx, requestIds, "queued", now);
  await recordAudit(tx, {
    actor: actor.name,
    action: "command.bulk_create",
    targetType: "batch",
    targetId: batchId,
    ip: actor.ip,
    details: { type: input.type, target: input.target, total: deviceIds.length },
  });
  return { batchId, commands: deviceIds.map((deviceId, index) => ({ deviceId, requestId: requestIds[index]! })) };
}

export async function getBatch({ db }: Pick<AppDeps, "db">, batchId: string): Promise<BatchView> {
  const batch = await db.commandBatch.findUnique({ where: { id: batchId } });
  if (!batch) throw new HttpError("not_found", "No batch has this id");
  return (await toBatchViews(db, [batch]))[0]!;
}

export async function listBatches({ db }: Pick<AppDeps, "db">): Promise<ListBatchesResponse> {
  const batches = await db.commandBatch.findMany({ orderBy: [{ createdAt: "desc" }, { id: "asc" }], take: 100 });
  return { batches: await toBatchViews(db, batches) };
}

/**
 * The batches with their commands counted by status, in one query: a query per batch was
 * 100 at once for a page of batches, queued on the pool ahead of the fleet's heartbeats.
 */
async function toBatchViews(db: AppDeps["db"], batches: CommandBatchRow[]): Promise<BatchView[]> {
  if (batches.length === 0) return [];
  const grouped = await db.command.groupBy({
    by: ["batchId", "status"],
    where: { batchId: { in: batches.map((batch) => batch.id) } },
    _count: { _all: true },
  });
  const countsOf = new Map(batches.map((batch) => [batch.id, Object.fromEntries(CommandStatuses.options.map((status) => [status, 0])) as BatchView["counts"]]));
  for (const row of grouped) if (row.batchId) countsOf.get(row.batchId)![row.status] = row._count._all;
  return batches.map((batch) => {
    const counts = countsOf.get(batch.id)!;
    const finished = finalCommandStatuses.reduce((sum, status) => sum + counts[status], 0);
    return {
      batchId: batch.id,
      type: batch.type,
      target: batch.target as Record<string, unknown>,
      total: batch.total,
      counts,
      done: finished === batch.total,
      createdAt: batch.createdAt.toISOString(),
    };
  });
}

export async function listCommands({ db }: Pick<AppDeps, "db">, query: ListCommandsQuery): Promise<ListCommandsResponse> {
  const where: Prisma.CommandWhereInput = {
    ...(query.deviceId ? { deviceId: query.deviceId } : {}),
    ...(query.batchId ? { batchId: query.batchId } : {}),
    ...(query.status ? { status: query.status } : {}),
    ...(query.type ? { type: query.type } : {}),
  };
  const [commands, total] = await Promise.all([
    db.command.findMany({ where, include: withEvents, orderBy: [{ createdAt: "desc" }, { requestId: "asc" }], skip: query.offset, take: query.limit }),
    db.command.count({ where }),
  ]);
  return { commands: commands.map(toCommandView), total };
}
