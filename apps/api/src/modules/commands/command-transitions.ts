import { type CommandStatus, finalCommandStatuses } from "@mdm/contracts";
import type { AppDeps } from "../../deps";
import { isDatabaseUnavailable } from "../../db/client";
import type { DbOrTx } from "../../db/types";
import type { Command, Prisma } from "../../generated/prisma/client";
import { type GroupCommit, createGroupCommit } from "../../lib/group-commit";
import { HttpError } from "../../lib/http-error";
import { scheduleRequiredAppRetries } from "../policies/required-app-installs";
import { emitWebhookEvents } from "../webhooks/webhook-events";

// A command's status moves (sent, acknowledged, succeeded...) are written in groups, as
// heartbeats are: a bulk command to 10,000 devices makes 30,000 of them within seconds, and
// one transaction of five statements each (update, history event, webhook rows, batch
// check) held the fan-out to about 100 commands a second (bench/RESULTS.md). Moves arriving
// within TRANSITION_BATCH_WAIT_MS share one transaction of at most four statements.
const TRANSITION_BATCH_MAX = 200;
const TRANSITION_BATCH_WAIT_MS = 2;
// Moves waiting, at most, per instance; past it a move is refused with 503 (the device
// retries its report; a delivery attempt is retried at its next attempt time).
const TRANSITION_QUEUE_MAX = 20_000;
// Transactions of moves running at once, at most: leaves most of the pool to the rest.
const TRANSITION_STATEMENTS_IN_FLIGHT = 4;
// How long a batch of moves waits for a row another transaction locked (a batch cancel, the
// expiry job) before its moves are written one per transaction instead: one locked command
// must not hold up the moves of every other device, and a batch must lose to the statement
// it could deadlock with before PostgreSQL's deadlock check (deadlock_timeout, 1 s) runs.
const BATCH_LOCK_TIMEOUT = "500ms";
// Transactions at once when a failed batch's moves are retried one by one: one of them
// waiting on a locked row leaves the other to write the rest.
const FALLBACK_WORKERS = 2;

export type CommandStatusChange = { requestId: string; deviceId: string; batchId: string | null; status: CommandStatus; detail: string | null; at?: Date };

/**
 * The history rows of many commands moved at once (queued by a bulk command, cancelled with
 * their batch or device): one statement however many. Prisma's createMany compiles every row
 * in JavaScript, about 0.1 ms each: a fleet-wide batch held the event loop for seconds.
 */
export async function recordCommandEvents(tx: DbOrTx, requestIds: string[], status: CommandStatus, at: Date, detail: string | null = null): Promise<void> {
  if (requestIds.length === 0) return;
  await tx.$executeRaw`
    INSERT INTO "CommandEvent" ("requestId", status, at, detail)
    SELECT "requestId", ${status}::"CommandStatus", ${at}, ${detail} FROM unnest(${requestIds}::uuid[]) AS t("requestId")`;
}

/**
 * In the transaction that changed them: schedules the retry of required app installs that
 * failed or expired, queues `command.status_changed` webhooks for these changes (each at its
 * own time, else `at`) and, for batches some of them finished, `batch.done` if no command of
 * the batch is unfinished.
 */
export async function emitCommandStatusChanges(tx: DbOrTx, changes: CommandStatusChange[], at: Date): Promise<void> {
  await scheduleRequiredAppRetries(tx, changes, at);
  await emitWebhookEvents(
    tx,
    changes.map(({ at: changedAt = at, ...change }) => ({ type: "command.status_changed", at: changedAt, data: { ...change, at: changedAt.toISOString() } })),
  );
  const batchIds = [
    ...new Set(changes.filter((change) => change.batchId && finalCommandStatuses.includes(change.status as never)).map((change) => change.batchId!)),
  ];
  if (batchIds.length > 0) await finishBatches(tx, at, batchIds);
}

/** Commands not final yet: queued, or on their way to the device (sent, acknowledged). */
export const UNFINISHED_COMMAND_STATUSES: CommandStatus[] = ["queued", "sent", "acknowledged"];

export type CancelledCommand = { requestId: string; deviceId: string; batchId: string | null };

/**
 * Cancels the commands `where` picks, in the caller's transaction: status, history (with
 * `reason`) and webhooks. `where` names the statuses it may cancel. Tell dashboards with
 * announceCancelled once it commits.
 */
export async function cancelCommands(tx: DbOrTx, where: Prisma.CommandWhereInput, reason: string, now: Date): Promise<CancelledCommand[]> {
  const cancelled = await tx.command.updateManyAndReturn({
    where,
    data: { status: "cancelled", completedAt: now, nextAttemptAt: null, errorMessage: reason },
    select: { requestId: true, deviceId: true, batchId: true },
  });
  await recordCommandEvents(
    tx,
    cancelled.map((row) => row.requestId),
    "cancelled",
    now,
    reason,
  );
  await emitCommandStatusChanges(
    tx,
    cancelled.map((row) => ({ ...row, status: "cancelled" as const, detail: reason })),
    now,
  );
  return cancelled;
}

export function announceCancelled(bus: AppDeps["bus"], cancelled: CancelledCommand[], now: Date): void {
  for (const row of cancelled) {
    bus.publish({
      kind: "command_status",
      change: { requestId: row.requestId, deviceId: row.deviceId, batchId: row.batchId, status: "cancelled", at: now.toISOString() },
    });
  }
}

/**
 * Marks done the batches (these, or all not yet done) that have no unfinished command left
 * and queues their `batch.done`; `doneAt` makes that once. No lock is taken on the batch:
 * locking it serialized every result of a 10,000-device batch behind one row. So two
 * transactions finishing a batch's last two commands at once may each see the other's
 * command unfinished and both pass it by: the batch completion sweep (maintenance, every
 * few seconds) finishes such a batch. Returns how many it finished.
 */
export async function finishBatches(tx: DbOrTx, at: Date, batchIds?: string[]): Promise<number> {
  const done = await tx.$queryRaw<Array<{ id: string; type: string; total: number; createdBy: string | null; counts: Record<string, number> }>>`
    WITH done AS (
      UPDATE "CommandBatch" b SET "doneAt" = ${at}
      WHERE "doneAt" IS NULL AND (${batchIds ?? null}::uuid[] IS NULL OR id = ANY(${batchIds ?? null}::uuid[]))
        AND NOT EXISTS (SELECT 1 FROM "Command" c WHERE c."batchId" = b.id AND c.status IN ('queued', 'sent', 'acknowledged'))
      RETURNING id, type::text, total, "createdBy")
    SELECT done.*, coalesce((
      SELECT jsonb_object_agg(status, count) FROM (SELECT status::text, count(*)::int AS count FROM "Command" WHERE "batchId" = done.id GROUP BY status) grouped
    ), '{}') AS counts
    FROM done ORDER BY id`;
  await emitWebhookEvents(
    tx,
    done.map(({ id, type, total, createdBy, counts }) => ({
      type: "batch.done",
      at,
      data: { batchId: id, type, total, createdBy, counts, at: at.toISOString() },
    })),
  );
  return done.length;
}

type TransitionExtra = Partial<Pick<Command, "sentAt" | "acknowledgedAt" | "completedAt" | "errorMessage" | "nextAttemptAt">> & { result?: object };
type TransitionInput = { requestId: string; from: CommandStatus[]; to: CommandStatus; at: Date; detail: string | null; extra: TransitionExtra };
type Moved = { deviceId: string; batchId: string | null } | undefined;

// The columns a move may set besides its status: each is set only when the caller gave it
// (null included), as Prisma's `data` does.
const EXTRA_COLUMNS = ["sentAt", "acknowledgedAt", "completedAt", "errorMessage", "nextAttemptAt", "result"] as const;

/**
 * Writes moves in one transaction: one statement moves every command still in its `from`
 * and records its history event, then the webhook rows, required app retries and finished
 * batches of those that moved. Answers, per move, the command's device and batch, or
 * undefined when it was no longer in `from` (someone else moved it first).
 */
async function writeTransitions(db: AppDeps["db"], inputs: TransitionInput[]): Promise<Moved[]> {
  const rows = inputs.map((input, n) => ({
    n,
    requestId: input.requestId,
    from: input.from,
    to: input.to,
    at: input.at.toISOString(),
    detail: input.detail,
    set: EXTRA_COLUMNS.filter((column) => input.extra[column] !== undefined),
    ...Object.fromEntries(EXTRA_COLUMNS.map((column) => [column, input.extra[column] ?? null])),
  }));
  const latest = new Date(Math.max(...inputs.map((input) => input.at.getTime())));
  return db.$transaction(async (tx) => {
    if (inputs.length > 1) await tx.$executeRawUnsafe(`SET LOCAL lock_timeout = '${BATCH_LOCK_TIMEOUT}'`);
    const moved = await tx.$queryRaw<Array<{ n: number; requestId: string; deviceId: string; batchId: string | null }>>`
      WITH input AS (
        SELECT * FROM jsonb_to_recordset(${JSON.stringify(rows)}::jsonb) AS i(
          n int, "requestId" uuid, "from" text[], "to" text, at timestamptz, detail text, set text[],
          "sentAt" timestamptz, "acknowledgedAt" timestamptz, "completedAt" timestamptz, "errorMessage" text, "nextAttemptAt" timestamptz, result jsonb)),
      moved AS (
        UPDATE "Command" c SET
          status = i."to"::"CommandStatus",
          "sentAt" = CASE WHEN 'sentAt' = ANY(i.set) THEN i."sentAt" ELSE c."sentAt" END,
          "acknowledgedAt" = CASE WHEN 'acknowledgedAt' = ANY(i.set) THEN i."acknowledgedAt" ELSE c."acknowledgedAt" END,
          "completedAt" = CASE WHEN 'completedAt' = ANY(i.set) THEN i."completedAt" ELSE c."completedAt" END,
          "errorMessage" = CASE WHEN 'errorMessage' = ANY(i.set) THEN i."errorMessage" ELSE c."errorMessage" END,
          "nextAttemptAt" = CASE WHEN 'nextAttemptAt' = ANY(i.set) THEN i."nextAttemptAt" ELSE c."nextAttemptAt" END,
          result = CASE WHEN 'result' = ANY(i.set) THEN i.result ELSE c.result END
        FROM input i
        WHERE c."requestId" = i."requestId" AND c.status::text = ANY(i."from")
        RETURNING i.n, c."requestId", c."deviceId", c."batchId", i."to", i.at, i.detail),
      events AS (
        INSERT INTO "CommandEvent" ("requestId", status, at, detail)
        SELECT "requestId", "to"::"CommandStatus", at, detail FROM moved ORDER BY n)
      SELECT n, "requestId", "deviceId", "batchId" FROM moved`;
    const changes = moved.map((row): CommandStatusChange => {
      const input = inputs[row.n]!;
      return { requestId: row.requestId, deviceId: row.deviceId, batchId: row.batchId, status: input.to, detail: input.detail, at: input.at };
    });
    if (changes.length > 0) await emitCommandStatusChanges(tx, changes, latest);
    const byIndex = new Map(moved.map((row) => [row.n, { deviceId: row.deviceId, batchId: row.batchId }]));
    return inputs.map((_, n) => byIndex.get(n));
  });
}

const transitionCommits = new WeakMap<object, GroupCommit<TransitionInput, Moved>>();

/** An app's group commit of command moves (one per app, as its metrics are); drained at shutdown. */
export function transitionsOf({ db, metrics }: Pick<AppDeps, "db" | "metrics">): GroupCommit<TransitionInput, Moved> {
  let commit = transitionCommits.get(metrics);
  if (!commit) {
    commit = createGroupCommit({
      maxBatch: TRANSITION_BATCH_MAX,
      maxWaitMs: TRANSITION_BATCH_WAIT_MS,
      maxQueued: TRANSITION_QUEUE_MAX,
      maxRunning: TRANSITION_STATEMENTS_IN_FLIGHT,
      run: async (inputs) => {
        metrics.commandTransitionBatchSize.observe(inputs.length);
        try {
          return await writeTransitions(db, inputs);
        } catch (error) {
          // As for heartbeats: the database unavailable fails them all; anything else (a row
          // locked past BATCH_LOCK_TIMEOUT, a deadlock) is retried one move per transaction,
          // so it fails (or waits) only for the move it concerns. FALLBACK_WORKERS at a time,
          // not all at once: 200 transactions would take the whole pool.
          if (inputs.length === 1 || isDatabaseUnavailable(error)) throw error;
          const answers: Array<(outcome: Moved | Error) => void> = [];
          const outcomes = inputs.map((_, n) => new Promise<Moved | Error>((resolve) => (answers[n] = resolve)));
          let next = 0;
          const worker = async () => {
            for (let n = next++; n < inputs.length; n = next++) {
              answers[n]!(
                await writeTransitions(db, [inputs[n]!]).then(
                  ([moved]) => moved,
                  (failure: Error) => failure,
                ),
              );
            }
          };
          for (let i = 0; i < FALLBACK_WORKERS; i++) void worker();
          return outcomes;
        }
      },
      full: () =>
        new HttpError("service_unavailable", "This instance has too many command status changes waiting to be written; retry later", undefined, {
          "Retry-After": "1",
        }),
    });
    transitionCommits.set(metrics, commit);
  }
  return commit;
}

/**
 * Moves a command from one of `from` to `to`, records the event and tells dashboards.
 * Returns false when the command was no longer in `from` (someone else moved it first).
 * Moves of one command are written in the order made; moves of different commands made
 * at the same moment share a transaction (transitionsOf).
 */
export async function transition(
  deps: Pick<AppDeps, "db" | "bus" | "metrics">,
  requestId: string,
  from: CommandStatus[],
  to: CommandStatus,
  at: Date,
  detail: string | null,
  extra: TransitionExtra = {},
): Promise<boolean> {
  const moved = await transitionsOf(deps).submit(requestId, { requestId, from, to, at, detail, extra });
  if (!moved) return false;
  deps.bus.publish({ kind: "command_status", change: { requestId, deviceId: moved.deviceId, batchId: moved.batchId, status: to, at: at.toISOString() } });
  return true;
}
