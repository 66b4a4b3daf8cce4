/** A high-priority data message to one device's FCM registration token. */
export type PushMessage = {
  token: string;
  data: Record<string, string>;
  ttlSeconds: number;
};

export type PushResult =
  /** `recorded`: kept locally for inspection (no FCM credentials), not sent to the device. */
  { ok: true; outcome: "sent" | "recorded"; messageId: string } | { ok: false; reason: "token_invalid" | "failed"; error: string };

/** How commands reach devices by push. Firebase in production; a local recorder otherwise. */
export type PushGateway = {
  readonly name: string;
  send(message: PushMessage): Promise<PushResult>;
};
