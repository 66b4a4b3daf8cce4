import { randomUUID } from "node:crypto";
import { Resend } from "resend";
import type { Env } from "../config/env";

export type MailMessage = { to: string[]; subject: string; text: string; html?: string };

/** How the API sends mail: Resend in production, a local recorder otherwise. */
export type Mailer = {
  readonly name: string;
  send(message: MailMessage): Promise<{ id: string }>;
};

export type RecordedMail = MailMessage & { id: string; at: Date };

/** Records mail instead of sending it, so tests and local runs can read what would go out. */
export class LocalMailer implements Mailer {
  readonly name = "local";
  readonly sent: RecordedMail[] = [];

  async send(message: MailMessage): Promise<{ id: string }> {
    const id = `local-${randomUUID()}`;
    this.sent.push({ ...message, id, at: new Date() });
    if (this.sent.length > 1000) this.sent.shift();
    return { id };
  }
}

/** Sends through Resend's HTTP API (`baseUrl` defaults to Resend's; tests point it at a local server). */
export class ResendMailer implements Mailer {
  readonly name = "resend";
  private readonly client: Resend;

  constructor(private readonly options: { apiKey: string; from: string; baseUrl?: string }) {
    this.client = new Resend(options.apiKey, options.baseUrl ? { baseUrl: options.baseUrl } : undefined);
  }

  async send(message: MailMessage): Promise<{ id: string }> {
    // The SDK reports failures in `error` rather than throwing; callers expect a throw.
    const { data, error } = await this.client.emails.send({
      from: this.options.from,
      to: message.to,
      subject: message.subject,
      text: message.text,
      ...(message.html ? { html: message.html } : {}),
    });
    if (error) throw new Error(`Resend refused the mail: ${error.name}: ${error.message}`);
    if (!data?.id) throw new Error("Resend answered without a message id");
    return { id: data.id };
  }
}

/** Resend when RESEND_API_KEY is set, else the local recorder. */
export function createMailer(env: Pick<Env, "RESEND_API_KEY" | "RESEND_BASE_URL" | "MAIL_FROM">): Mailer {
  if (!env.RESEND_API_KEY) return new LocalMailer();
  return new ResendMailer({ apiKey: env.RESEND_API_KEY, from: env.MAIL_FROM, baseUrl: env.RESEND_BASE_URL });
}
