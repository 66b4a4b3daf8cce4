import { randomUUID } from "node:crypto";
import type { WebhookDeliveryType } from "@mdm/contracts";
import type { DbOrTx } from "../../db/types";

// Emitting an event only writes rows: one delivery per subscribed endpoint, in the caller's
// transaction, so the event exists exactly when what it reports was committed. The webhook
// worker (webhook-delivery.ts) sends them.

export type WebhookEventInput = { type: WebhookDeliveryType; data: Record<string, unknown>; at: Date };

/**
 * Queues `events` for every endpoint subscribed to their type, in one statement. Each event
 * gets one id, the same for every endpoint and every retry, so receivers can dedupe.
 * Costs one indexed-nothing scan of the (small) endpoint table when nobody subscribes.
 */
export async function emitWebhookEvents(tx: DbOrTx, events: WebhookEventInput[], options: { endpointId?: string } = {}): Promise<number> {
  if (events.length === 0) return 0;
  const rows = events.map((event) => {
    const id = randomUUID();
    return { id, type: event.type, at: event.at.toISOString(), payload: { id, type: event.type, createdAt: event.at.toISOString(), data: event.data } };
  });
  const endpointFilter = options.endpointId ?? null;
  return tx.$executeRaw`
    INSERT INTO "WebhookDelivery" ("endpointId", "eventId", "eventType", payload, status, "nextAttemptAt", "createdAt")
    SELECT e.id, (ev->>'id')::uuid, ev->>'type', ev->'payload', 'queued', (ev->>'at')::timestamptz, (ev->>'at')::timestamptz
    FROM jsonb_array_elements(${JSON.stringify(rows)}::jsonb) AS ev
    JOIN "WebhookEndpoint" e ON (ev->>'type') = ANY(e.events) OR (${endpointFilter}::uuid IS NOT NULL AND ev->>'type' = 'ping')
    WHERE ${endpointFilter}::uuid IS NULL OR e.id = ${endpointFilter}::uuid`;
}

/** Queues one event for every endpoint subscribed to its type, in the caller's transaction. */
export function emitWebhookEvent(tx: DbOrTx, type: WebhookDeliveryType, data: Record<string, unknown>, at = new Date()): Promise<number> {
  return emitWebhookEvents(tx, [{ type, data, at }]);
}

/** What every device event says about the device. */
export function deviceEventData(device: {
  id: string;
  alias: string | null;
  model: string | null;
  serialNumber: string | null;
  groups: string[];
}): Record<string, unknown> {
  return { deviceId: device.id, alias: device.alias, model: device.model, serialNumber: device.serialNumber, groups: device.groups };
}
