import { randomUUID } from "node:crypto";

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
