import { z } from "zod";
import { DateTime } from "./primitives";

/** Which way the API sends mail: chosen by MAIL_PROVIDER, RESEND_API_KEY or SMTP_URL. */
export const MailProvider = z.enum(["resend", "smtp", "none"]);
export type MailProvider = z.infer<typeof MailProvider>;

/**
 * An outbox row's state: `queued` until the mail worker hands it to the provider (`sent`),
 * or gives up after MAIL_MAX_ATTEMPTS (`failed`); `recorded` when no provider is
 * configured: the mail was written to the log and the outbox, and sent to nobody.
 */
export const MailStatus = z.enum(["queued", "sent", "recorded", "failed"]);
export type MailStatus = z.infer<typeof MailStatus>;

export const MailKind = z.enum(["invite", "password_reset", "alert"]);
export type MailKind = z.infer<typeof MailKind>;

/** What became of a mail a request asked for: `queued` for sending, or only `recorded` (no provider). */
export const MailDelivery = z
  .enum(["queued", "recorded"])
  .describe("`recorded`: no mail provider is configured; the mail is in the outbox (`GET /admin/mail/outbox`) and was not sent.");
export type MailDelivery = z.infer<typeof MailDelivery>;

// An outbox row's id: a PostgreSQL bigint in decimal.
const OutboxCursor = z
  .string()
  .regex(/^\d{1,19}$/, { message: "Must be the nextCursor of a previous page", abort: true })
  .refine((value) => BigInt(value) <= 9223372036854775807n, "Must be the nextCursor of a previous page");

export const OutboxQuery = z.strictObject({
  limit: z.coerce.number().int().min(1).max(200).default(50),
  cursor: OutboxCursor.optional().describe("`nextCursor` of the previous page."),
});
export type OutboxQuery = z.infer<typeof OutboxQuery>;

export const OutboxMail = z.object({
  id: z.string(),
  kind: MailKind,
  to: z.array(z.string()),
  subject: z.string(),
  text: z
    .string()
    .nullable()
    .describe(
      "The body, for `recorded` mails only (no provider: the outbox is how its links reach anyone). It may hold single-use sign-in links, so it is not shown for other mails, and is erased once a mail is sent or has failed.",
    ),
  status: MailStatus,
  attempts: z.int(),
  nextAttemptAt: DateTime.nullable().describe("When the worker tries a `queued` mail next."),
  provider: MailProvider.nullable().describe("The provider that sent or recorded it."),
  providerMessageId: z.string().nullable(),
  lastError: z.string().nullable(),
  createdAt: DateTime,
  finishedAt: DateTime.nullable().describe("When it was sent, recorded or given up on."),
});
export type OutboxMail = z.infer<typeof OutboxMail>;

export const ListOutboxResponse = z.object({
  provider: MailProvider,
  sending: z.boolean().describe("False when no provider is configured: mail is only recorded, never sent."),
  mails: z.array(OutboxMail),
  nextCursor: OutboxCursor.nullable(),
});
export type ListOutboxResponse = z.infer<typeof ListOutboxResponse>;
