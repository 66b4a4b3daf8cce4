import { randomUUID } from "node:crypto";
import type { PushGateway, PushMessage, PushResult } from "./push-gateway";

export type RecordedPush = PushMessage & { messageId: string; at: Date };

/**
 * Used when Firebase is not configured: records every message instead of sending it, and
 * says so (`recorded`), so local runs can see exactly what a device would have received
 * and nobody mistakes it for a delivery. Tests that stand it in for FCM itself make it
 * answer `sent`, as FCM would.
 */
export class LocalPushGateway implements PushGateway {
  readonly name = "local";
  readonly sent: RecordedPush[] = [];
  private readonly limit: number;
  private readonly outcome: "sent" | "recorded";

  constructor(options: { keep?: number; actAsFcm?: boolean } = {}) {
    this.limit = options.keep ?? 1000;
    this.outcome = options.actAsFcm ? "sent" : "recorded";
  }

  async send(message: PushMessage): Promise<PushResult> {
    const messageId = `local-${randomUUID()}`;
    this.sent.push({ ...message, messageId, at: new Date() });
    if (this.sent.length > this.limit) this.sent.splice(0, this.sent.length - this.limit);
    return { ok: true, outcome: this.outcome, messageId };
  }
}
