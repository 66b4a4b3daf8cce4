import { randomUUID } from "node:crypto";
import type { PushGateway, PushMessage, PushResult } from "./push-gateway";

export type RecordedPush = PushMessage & { messageId: string; at: Date };

/**
 * Used when Firebase is not configured: records every message instead of sending it, so
 * tests and local runs can see exactly what a device would have received.
 */
export class LocalPushGateway implements PushGateway {
  readonly name = "local";
  readonly sent: RecordedPush[] = [];
  private readonly limit: number;

  constructor(options: { keep?: number } = {}) {
    this.limit = options.keep ?? 1000;
  }

  async send(message: PushMessage): Promise<PushResult> {
    const messageId = `local-${randomUUID()}`;
    this.sent.push({ ...message, messageId, at: new Date() });
    if (this.sent.length > this.limit) this.sent.splice(0, this.sent.length - this.limit);
    return { ok: true, messageId };
  }
}
