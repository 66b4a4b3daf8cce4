import type { DbOrTx } from "../../db/types";
import { emitWebhookEvents } from "../webhooks/webhook-events";

/**
 * Everything alerts report, passing through one function: devices going offline and
 * coming back, batteries running low and recovering, devices retired or deleted while
 * away (rows the digest mails), and each
 * digest mail raised. Callers pass their open transaction, so an event exists exactly
 * when the state change that caused it was committed.
 */
export type AlertHookEvent =
  | { type: "device.offline"; deviceId: string; incidentId: string; at: Date }
  | { type: "device.online"; deviceId: string; incidentId: string; at: Date }
  | { type: "device.battery_low"; deviceId: string; incidentId: string; at: Date; batteryLevel: number }
  | { type: "device.battery_recovered"; deviceId: string; incidentId: string; at: Date }
  | { type: "device.retired"; deviceId: string; incidentId: string; at: Date }
  | { type: "alert.sent"; alertId: string; subject: string; recipients: string[]; mailId: string; at: Date; events: number };

const DIGEST_KIND = {
  "device.offline": "device_offline",
  "device.online": "device_online",
  "device.battery_low": "battery_low",
  "device.battery_recovered": "battery_recovered",
  "device.retired": "device_retired",
} as const;

export async function recordAlertEvents(tx: DbOrTx, events: AlertHookEvent[]): Promise<void> {
  const forDigest = events.flatMap((event) =>
    event.type === "alert.sent"
      ? []
      : [
          {
            kind: DIGEST_KIND[event.type],
            deviceId: event.deviceId,
            incidentId: event.incidentId,
            at: event.at,
            batteryLevel: "batteryLevel" in event ? event.batteryLevel : null,
          },
        ],
  );
  // One statement however many: a fleet going dark is tens of thousands of events, and
  // Prisma's createMany compiles each row in JavaScript (seconds of a blocked event loop).
  if (forDigest.length > 0)
    await tx.$executeRaw`
      INSERT INTO "AlertEvent" (kind, "deviceId", "incidentId", at, "batteryLevel")
      SELECT * FROM unnest(
        ${forDigest.map((event) => event.kind)}::"AlertEventKind"[], ${forDigest.map((event) => event.deviceId)}::uuid[],
        ${forDigest.map((event) => event.incidentId)}::uuid[], ${forDigest.map((event) => event.at.toISOString())}::timestamptz[],
        ${forDigest.map((event) => event.batteryLevel)}::int[])`;
  // device.offline and device.online reach webhooks from the sweep and the heartbeat
  // themselves (for every device, not only those in an incident); a digest mail is alert.sent.
  await emitWebhookEvents(
    tx,
    events.flatMap((event) =>
      event.type === "alert.sent"
        ? [
            {
              type: "alert.sent" as const,
              at: event.at,
              data: {
                alertId: event.alertId,
                subject: event.subject,
                recipients: event.recipients,
                mailId: event.mailId,
                events: event.events,
                at: event.at.toISOString(),
              },
            },
          ]
        : [],
    ),
  );
}
