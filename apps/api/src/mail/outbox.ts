import type { ListOutboxResponse, MailDelivery, MailKind, OutboxMail as OutboxMailView, OutboxQuery } from "@mdm/contracts";
import type { DbOrTx } from "../db/types";
import type { AppDeps } from "../deps";
import { type PollingWorker, startPollingWorker } from "../lib/polling-worker";
import type { OutboxMail } from "../generated/prisma/client";
import { claimJobRun } from "../jobs/maintenance";
import type { MailMessage } from "./mailer";

// The mail outbox. Callers only write a row, in their own transaction when they have one;
// each instance runs one mail worker that claims due rows (FOR UPDATE SKIP LOCKED, so
// instances never claim the same one), schedules the next attempt in the claiming
// statement (a crash mid-send leaves the mail due again, never lost) and sends it
// through the configured provider. Without a provider the worker records the mail:
// its recipients, subject and links go to the log, and the row stays listed for admins.

type MailDeps = Pick<AppDeps, "db" | "clock" | "env" | "logger" | "mailer">;

const CLAIM_BATCH = 20;
const SEND_CONCURRENCY = 4;
const MAX_RETRY_DELAY_SECONDS = 3600;
const PRUNE_BATCH = 5000;

/** What callers tell their users: whether the mail will be sent, or only recorded. */
export function mailDelivery({ mailer }: Pick<AppDeps, "mailer">): MailDelivery {
  return mailer ? "queued" : "recorded";
}

/** Writes a mail to the outbox, due now, and wakes this instance's worker once `db`'s transaction (if any) is committed by the caller. */
export async function enqueueMail(db: DbOrTx, kind: MailKind, message: MailMessage, now: Date): Promise<OutboxMail> {
  return db.outboxMail.create({
    data: {
      kind,
      to: message.to,
      subject: message.subject,
      text: message.text,
      html: message.html ?? null,
      status: "queued",
      nextAttemptAt: now,
      createdAt: now,
    },
  });
}

// Workers by database client, so a caller can wake its own instance's worker without
// holding a reference to it. Other instances pick the row up on their next poll.
const wakers = new WeakMap<object, () => void>();

/** Tells this instance's mail worker that a mail is due now. */
export function wakeMailWorker({ db }: Pick<AppDeps, "db">): void {
  wakers.get(db)?.();
}

/** Seconds before the attempt after `attempts` attempts, without jitter. */
export function mailRetryDelaySeconds(baseSeconds: number, attempts: number): number {
  return Math.min(MAX_RETRY_DELAY_SECONDS, baseSeconds * 2 ** Math.max(0, attempts - 1));
}

/**
 * Claims due mails and, in the same statement, counts the attempt and schedules the next
 * one (exponential backoff with ±20% jitter): if this instance dies while sending, the
 * mail is due again then. A mail whose last attempt this is gets no next attempt.
 */
async function claimDueMails({ db, clock, env }: MailDeps): Promise<OutboxMail[]> {
  const now = clock.now();
  const { MAIL_RETRY_BASE_SECONDS: base, MAIL_MAX_ATTEMPTS: maxAttempts } = env;
  return db.$queryRaw<OutboxMail[]>`
    WITH due AS (
      SELECT id FROM "OutboxMail"
      WHERE status = 'queued' AND "nextAttemptAt" <= ${now}
      ORDER BY "nextAttemptAt" LIMIT ${CLAIM_BATCH}
      FOR UPDATE SKIP LOCKED)
    UPDATE "OutboxMail" m SET
      attempts = m.attempts + 1,
      "nextAttemptAt" = CASE WHEN m.attempts + 1 < ${maxAttempts}
        THEN ${now}::timestamptz + make_interval(secs => LEAST(${MAX_RETRY_DELAY_SECONDS}, ${base} * power(2, m.attempts)) * (0.8 + random() * 0.4))
        ELSE NULL END
    FROM due WHERE m.id = due.id
    RETURNING m.*`;
}

/** The links in a mail's text: what a development outbox is for. */
export function linksIn(text: string): string[] {
  return text.match(/https?:\/\/[^\s<>"']+/g) ?? [];
}

function errorText(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).slice(0, 1000);
}

/** One attempt at one claimed mail; only updates a row still queued (an admin may not have raced it, but a prune might). */
async function attempt(deps: MailDeps, mail: OutboxMail): Promise<void> {
  const { db, clock, logger, mailer } = deps;
  if (!mailer) {
    await db.outboxMail.updateMany({
      where: { id: mail.id, status: "queued" },
      data: { status: "recorded", provider: "none", nextAttemptAt: null, finishedAt: clock.now() },
    });
    // Info, not debug: without a provider the log is one of the two places this mail reaches.
    logger.info("mail recorded, not sent (no mail provider configured)", {
      mailId: mail.id.toString(),
      kind: mail.kind,
      to: mail.to,
      subject: mail.subject,
      links: linksIn(mail.text ?? ""),
    });
    return;
  }
  try {
    const receipt = await mailer.send({ to: mail.to, subject: mail.subject, text: mail.text ?? "", ...(mail.html ? { html: mail.html } : {}) });
    await db.outboxMail.updateMany({
      where: { id: mail.id, status: "queued" },
      data: {
        status: "sent",
        provider: mailer.name,
        providerMessageId: receipt.id,
        lastError: receipt.refused ? `refused recipients: ${receipt.refused.join(", ")}` : null,
        nextAttemptAt: null,
        finishedAt: clock.now(),
        text: null,
        html: null,
      },
    });
    logger.info("mail sent", { mailId: mail.id.toString(), kind: mail.kind, provider: mailer.name, providerMessageId: receipt.id });
  } catch (error) {
    const lastError = errorText(error);
    const final = mail.nextAttemptAt === null;
    await db.outboxMail.updateMany({
      where: { id: mail.id, status: "queued" },
      data: final
        ? { status: "failed", provider: mailer.name, lastError, finishedAt: clock.now(), text: null, html: null }
        : { provider: mailer.name, lastError },
    });
    if (final) logger.error("mail failed for good", { mailId: mail.id.toString(), kind: mail.kind, attempts: mail.attempts, message: lastError });
    else
      logger.warn("mail attempt failed; will retry", {
        mailId: mail.id.toString(),
        kind: mail.kind,
        attempts: mail.attempts,
        nextAttemptAt: mail.nextAttemptAt,
        message: lastError,
      });
  }
}

/** Claims and attempts due mails until none are left; returns how many it attempted. */
export async function processDueMails(deps: MailDeps): Promise<number> {
  let total = 0;
  for (;;) {
    const claimed = await claimDueMails(deps);
    let next = 0;
    const lane = async () => {
      while (next < claimed.length) await attempt(deps, claimed[next++]!);
    };
    await Promise.all(Array.from({ length: Math.min(SEND_CONCURRENCY, claimed.length) }, lane));
    total += claimed.length;
    if (claimed.length < CLAIM_BATCH) return total;
  }
}

/** Deletes outbox rows older than the retention window, in batches; alerts keep their row, without the mail. */
export async function pruneOutbox({ db, clock, env }: Pick<AppDeps, "db" | "clock" | "env">): Promise<number> {
  const cutoff = new Date(clock.now().getTime() - env.MAIL_RETENTION_DAYS * 24 * 3600_000);
  let total = 0;
  for (;;) {
    const deleted = await db.$executeRaw`
      DELETE FROM "OutboxMail" WHERE id IN (
        SELECT id FROM "OutboxMail" WHERE "createdAt" < ${cutoff} AND status <> 'queued' ORDER BY id LIMIT ${PRUNE_BATCH})`;
    total += deleted;
    if (deleted < PRUNE_BATCH) return total;
  }
}

const PRUNE_EVERY_MS = 3600_000;

/**
 * The instance's mail worker: runs when this instance queues a mail and on a one-second
 * poll (for other instances' mails and retries). Never two runs at once on one instance;
 * a wake-up during a run makes it go round once more. Prunes the outbox hourly, once per
 * cluster.
 */
export function startMailWorker(
  deps: MailDeps & Pick<AppDeps, "instanceId">,
  options: { pollMs?: number; prepare?: () => Promise<unknown> } = {},
): PollingWorker {
  let lastPruneCheck = 0;
  const worker = startPollingWorker({
    name: "mail worker",
    pollMs: options.pollMs ?? 1000,
    logger: deps.logger,
    round: async () => {
      // Work that turns into mails (password reset requests) first, then the mails.
      await options.prepare?.();
      await processDueMails(deps);
      if (Date.now() - lastPruneCheck < PRUNE_EVERY_MS) return;
      lastPruneCheck = Date.now();
      if (await claimJobRun(deps, "mail outbox prune", PRUNE_EVERY_MS)) {
        const pruned = await pruneOutbox(deps);
        if (pruned) deps.logger.info("mail outbox pruned", { pruned });
      }
    },
  });
  wakers.set(deps.db, () => void worker.runNow());
  if (!deps.mailer)
    deps.logger.warn("mail is not being sent: no provider configured (set RESEND_API_KEY or SMTP_URL); mails are recorded in the outbox and this log");
  return {
    runNow: worker.runNow,
    stop: async () => {
      wakers.delete(deps.db);
      await worker.stop();
      deps.mailer?.close?.();
    },
  };
}

function toView(row: OutboxMail): OutboxMailView {
  return {
    id: row.id.toString(),
    kind: row.kind,
    to: row.to,
    subject: row.subject,
    text: row.status === "recorded" ? row.text : null,
    status: row.status,
    attempts: row.attempts,
    nextAttemptAt: row.status === "queued" ? (row.nextAttemptAt?.toISOString() ?? null) : null,
    provider: row.provider === "resend" || row.provider === "smtp" || row.provider === "none" ? row.provider : null,
    providerMessageId: row.providerMessageId,
    lastError: row.lastError,
    createdAt: row.createdAt.toISOString(),
    finishedAt: row.finishedAt?.toISOString() ?? null,
  };
}

/** The outbox, newest first, with keyset pagination on the id. */
export async function listOutbox(deps: Pick<AppDeps, "db" | "mailer">, query: OutboxQuery): Promise<ListOutboxResponse> {
  // Ids only grow, so a cursor stays valid even once its own row is pruned.
  const cursor = query.cursor ? BigInt(query.cursor) : undefined;
  const rows = await deps.db.outboxMail.findMany({
    where: cursor !== undefined ? { id: { lt: cursor } } : {},
    orderBy: { id: "desc" },
    take: query.limit + 1,
  });
  const page = rows.slice(0, query.limit);
  return {
    provider: deps.mailer?.name ?? "none",
    sending: deps.mailer !== undefined,
    mails: page.map(toView),
    nextCursor: rows.length > query.limit ? page[page.length - 1]!.id.toString() : null,
  };
}
