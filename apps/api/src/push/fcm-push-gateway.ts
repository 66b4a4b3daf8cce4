import type { Agent } from "node:https";
import { type App, type Credential, cert, deleteApp, initializeApp } from "firebase-admin/app";
import { type Messaging, getMessaging } from "firebase-admin/messaging";
import type { PushGateway, PushMessage, PushResult } from "./push-gateway";

// FCM answers these when a registration token will never work again; retrying is futile.
const TOKEN_GONE = new Set(["messaging/registration-token-not-registered", "messaging/invalid-registration-token"]);

export type FcmOptions = {
  serviceAccountJson: string;
  /** Test seams: where HTTP goes and how OAuth tokens are obtained. */
  httpAgent?: Agent;
  credential?: Credential;
};

/** Sends commands as high-priority FCM data messages through firebase-admin. */
export class FcmPushGateway implements PushGateway {
  readonly name = "fcm";
  private readonly app: App;
  private readonly messaging: Messaging;

  constructor(options: FcmOptions) {
    const serviceAccount = JSON.parse(options.serviceAccountJson) as { project_id?: string };
    this.app = initializeApp(
      {
        credential: options.credential ?? cert(serviceAccount as Parameters<typeof cert>[0]),
        projectId: serviceAccount.project_id,
        ...(options.httpAgent ? { httpAgent: options.httpAgent } : {}),
      },
      `mdm-${Math.random().toString(36).slice(2)}`,
    );
    this.messaging = getMessaging(this.app);
    // The default HTTP/2 transport ignores httpAgent; the HTTP/1.1 one honours it.
    if (options.httpAgent) this.messaging.enableLegacyHttpTransport();
  }

  async send(message: PushMessage): Promise<PushResult> {
    try {
      const messageId = await this.messaging.send({
        token: message.token,
        data: message.data,
        android: { priority: "high", ttl: message.ttlSeconds * 1000 },
      });
      return { ok: true, outcome: "sent", messageId };
    } catch (error) {
      const code = (error as { code?: string }).code ?? "unknown";
      const text = `${code}: ${error instanceof Error ? error.message : String(error)}`.slice(0, 500);
      return { ok: false, reason: TOKEN_GONE.has(code) ? "token_invalid" : "failed", error: text };
    }
  }

  async close(): Promise<void> {
    await deleteApp(this.app);
  }
}
