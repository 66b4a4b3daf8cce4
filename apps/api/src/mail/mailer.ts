import { isIP } from "node:net";
import type { MailProvider } from "@mdm/contracts";
import type { Transporter } from "nodemailer";
import type { Resend } from "resend";
import type { Env } from "../config/env";

// Each provider's SDK is loaded when a mailer of its kind is made, not at every start: an
// instance uses one provider at most (see optional-sdks.test.ts).

export type MailMessage = { to: string[]; subject: string; text: string; html?: string };

/** What a provider says about a mail it accepted; `refused` lists recipients it turned down. */
export type MailReceipt = { id: string; refused?: string[] };

/** A mail provider. Only the mail worker calls it: everything else writes to the outbox. */
export type Mailer = {
  readonly name: Exclude<MailProvider, "none">;
  send(message: MailMessage): Promise<MailReceipt>;
  close?(): void;
};

/** Sends through Resend's HTTP API (`baseUrl` defaults to Resend's; tests point it at a local server). */
export class ResendMailer implements Mailer {
  readonly name = "resend";
  private readonly client: Resend;

  constructor(private readonly options: { apiKey: string; from: string; baseUrl?: string }) {
    const { Resend } = require("resend") as typeof import("resend");
    this.client = new Resend(options.apiKey, options.baseUrl ? { baseUrl: options.baseUrl } : undefined);
  }

  async send(message: MailMessage): Promise<MailReceipt> {
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

function isLoopback(host: string): boolean {
  if (host === "localhost") return true;
  if (isIP(host) === 4) return host.startsWith("127.");
  return host === "::1";
}

/** How SMTP_URL is read: `smtps:` is TLS from the start (port 465), `smtp:` upgrades with STARTTLS (port 587). */
export function smtpOptions(smtpUrl: string) {
  const url = new URL(smtpUrl);
  const secure = url.protocol === "smtps:";
  const host = url.hostname.replace(/^\[(.*)\]$/, "$1");
  const auth = url.username || url.password ? { user: decodeURIComponent(url.username), pass: decodeURIComponent(url.password) } : undefined;
  return {
    host,
    port: url.port ? Number(url.port) : secure ? 465 : 587,
    secure,
    auth,
    // nodemailer upgrades with STARTTLS whenever the server offers it; without this, a
    // stripped offer would send the password in the clear. A relay on this host is exempt.
    requireTLS: !secure && auth !== undefined && !isLoopback(host),
    connectionTimeout: 15_000,
    greetingTimeout: 15_000,
    socketTimeout: 60_000,
  };
}

/** Sends through an SMTP server (the operator's own, or any provider's SMTP relay) with nodemailer. */
export class SmtpMailer implements Mailer {
  readonly name = "smtp";
  private readonly transport: Transporter;

  constructor(
    private readonly options: { url: string; from: string },
    overrides: Record<string, unknown> = {},
  ) {
    const nodemailer = require("nodemailer") as typeof import("nodemailer");
    this.transport = nodemailer.createTransport({ ...smtpOptions(options.url), ...overrides });
  }

  async send(message: MailMessage): Promise<MailReceipt> {
    // Rejects when the server refuses the sender, the message or every recipient.
    const info = await this.transport.sendMail({
      from: this.options.from,
      to: message.to,
      subject: message.subject,
      text: message.text,
      ...(message.html ? { html: message.html } : {}),
    });
    const refused = (info.rejected ?? []).map((address: string | { address: string }) => (typeof address === "string" ? address : address.address));
    return { id: String(info.messageId), ...(refused.length > 0 ? { refused } : {}) };
  }

  close(): void {
    this.transport.close();
  }
}

/** The provider the configuration picks: MAIL_PROVIDER if set, else Resend with a key, else SMTP with a URL, else none. */
export function mailProviderOf(env: Pick<Env, "MAIL_PROVIDER" | "RESEND_API_KEY" | "SMTP_URL">): MailProvider {
  if (env.MAIL_PROVIDER) return env.MAIL_PROVIDER;
  if (env.RESEND_API_KEY) return "resend";
  if (env.SMTP_URL) return "smtp";
  return "none";
}

/** The configured provider, or undefined when there is none: mail is then only recorded. */
export function createMailer(env: Pick<Env, "MAIL_PROVIDER" | "RESEND_API_KEY" | "RESEND_BASE_URL" | "SMTP_URL" | "MAIL_FROM">): Mailer | undefined {
  switch (mailProviderOf(env)) {
    case "resend":
      return new ResendMailer({ apiKey: env.RESEND_API_KEY!, from: env.MAIL_FROM, baseUrl: env.RESEND_BASE_URL });
    case "smtp":
      return new SmtpMailer({ url: env.SMTP_URL!, from: env.MAIL_FROM });
    case "none":
      return undefined;
  }
}
