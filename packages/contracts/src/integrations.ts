import { z } from "zod";
import { AuditLogQuery, UserRole } from "./auth";
import { ListDevicesQuery } from "./devices";
import { ListCommandsQuery } from "./fleet";
import { DateTime, nonEmptyText } from "./primitives";

// ---- API keys ---------------------------------------------------------------------------

/** An API key's id: public, sent as `X-Admin`; `mdmk_` and 26 characters of base32. */
export const API_KEY_ID_PATTERN = /^mdmk_[a-z2-7]{26}$/;
export const ApiKeyId = z.string().regex(API_KEY_ID_PATTERN, "Must be an API key id (mdmk_…)");

export const ApiKeyIdParams = z.strictObject({ keyId: ApiKeyId });
export type ApiKeyIdParams = z.infer<typeof ApiKeyIdParams>;

/** An allowed address range: IPv4 or IPv6 CIDR (`10.0.0.0/8`, `2001:db8::/32`). */
export const Cidr = z.union([z.cidrv4(), z.cidrv6()], { error: "Must be an IPv4 or IPv6 CIDR range, e.g. 10.0.0.0/8 or 2001:db8::/32" });

export const CreateApiKeyRequest = z.strictObject({
  name: nonEmptyText(64).describe("What the key is for, e.g. `ticketing-sync`; names it in the audit log and command history."),
  role: UserRole.describe("What the key may do, as for users: `viewer` reads, `operator` also acts on the fleet, `admin` everything."),
  expiresAt: DateTime.optional().describe("After this instant the key is refused. Unset: never expires."),
  allowedCidrs: z.array(Cidr).max(32).default([]).describe("Client addresses the key may be used from; empty: any."),
});
export type CreateApiKeyRequest = z.input<typeof CreateApiKeyRequest>;

export const ApiKey = z.object({
  id: z.string().describe("Sent as `X-Admin`; not a secret."),
  name: z.string(),
  role: UserRole,
  allowedCidrs: z.array(z.string()),
  expiresAt: DateTime.nullable(),
  lastUsedAt: DateTime.nullable().describe("Last authenticated request, to the minute."),
  lastUsedIp: z.string().nullable(),
  createdAt: DateTime,
  createdBy: z.string(),
  revokedAt: DateTime.nullable(),
  /** The audit log's and command history's name for the key. */
  actor: z.string(),
});
export type ApiKey = z.infer<typeof ApiKey>;

export const CreateApiKeyResponse = ApiKey.extend({
  secret: z.string().describe("The key's signing secret (HMAC key of its requests). Shown only this once."),
});
export type CreateApiKeyResponse = z.infer<typeof CreateApiKeyResponse>;

export const ListApiKeysResponse = z.object({ keys: z.array(ApiKey) });
export type ListApiKeysResponse = z.infer<typeof ListApiKeysResponse>;

// ---- Webhooks ---------------------------------------------------------------------------

/** Fleet events a webhook endpoint can subscribe to. */
export const WebhookEventType = z.enum([
  "device.enrolled",
  "device.offline",
  "device.online",
  "device.retired",
  "command.status_changed",
  "batch.done",
  "alert.sent",
]);
export type WebhookEventType = z.infer<typeof WebhookEventType>;

/** What a delivery carries: a subscribed event, or the `ping` of `POST /admin/webhooks/{webhookId}/ping`. */
export const WebhookDeliveryType = z.union([WebhookEventType, z.literal("ping")]);
export type WebhookDeliveryType = z.infer<typeof WebhookDeliveryType>;

/** The JSON body of every delivery; `id` is the event's, the same for every endpoint and every retry (dedupe on it). */
export const WebhookEvent = z.object({
  id: z.uuid(),
  type: WebhookDeliveryType,
  createdAt: DateTime,
  data: z.record(z.string(), z.unknown()),
});
export type WebhookEvent = z.infer<typeof WebhookEvent>;

export const WEBHOOK_SIGNATURE_HEADER = "Webhook-Signature";

export const WebhookIdParams = z.strictObject({ webhookId: z.uuid() });
export type WebhookIdParams = z.infer<typeof WebhookIdParams>;

export const CreateWebhookRequest = z.strictObject({
  url: z
    .url({ protocol: /^https?$/, error: "Must be an http(s) URL" })
    .max(2048)
    .describe("Where deliveries are POSTed. https in production; private, loopback and link-local addresses only in development."),
  events: z.array(WebhookEventType).min(1).max(WebhookEventType.options.length).describe("The events this endpoint receives."),
  description: nonEmptyText(200).optional(),
});
export type CreateWebhookRequest = z.infer<typeof CreateWebhookRequest>;

export const WebhookEndpoint = z.object({
  id: z.uuid(),
  url: z.string(),
  events: z.array(WebhookEventType),
  description: z.string().nullable(),
  createdAt: DateTime,
  createdBy: z.string(),
});
export type WebhookEndpoint = z.infer<typeof WebhookEndpoint>;

export const CreateWebhookResponse = WebhookEndpoint.extend({
  secret: z.string().describe("Key of the deliveries' `Webhook-Signature` (HMAC-SHA256). Shown only this once."),
});
export type CreateWebhookResponse = z.infer<typeof CreateWebhookResponse>;

export const ListWebhooksResponse = z.object({ webhooks: z.array(WebhookEndpoint) });
export type ListWebhooksResponse = z.infer<typeof ListWebhooksResponse>;

export const WebhookDeliveryStatus = z.enum(["queued", "succeeded", "failed"]);
export type WebhookDeliveryStatus = z.infer<typeof WebhookDeliveryStatus>;

export const WebhookDelivery = z.object({
  id: z.string(),
  eventId: z.uuid(),
  eventType: WebhookDeliveryType,
  status: WebhookDeliveryStatus.describe("`queued` until a 2xx answer (`succeeded`) or 24 hours of retries (`failed`)."),
  attempts: z.int(),
  nextAttemptAt: DateTime.nullable(),
  lastStatusCode: z.int().nullable().describe("HTTP status of the last attempt; null when it got no answer."),
  lastError: z.string().nullable(),
  createdAt: DateTime,
  finishedAt: DateTime.nullable(),
});
export type WebhookDelivery = z.infer<typeof WebhookDelivery>;

export const ListWebhookDeliveriesResponse = z.object({ deliveries: z.array(WebhookDelivery) });
export type ListWebhookDeliveriesResponse = z.infer<typeof ListWebhookDeliveriesResponse>;

// ---- Exports ----------------------------------------------------------------------------

export const ExportFormat = z.enum(["csv", "jsonl"]).default("csv").describe("`csv` (RFC 4180, UTF-8, header row) or `jsonl` (one JSON object a line).");
export type ExportFormat = z.infer<typeof ExportFormat>;

const deviceFilters = ListDevicesQuery.shape;
export const ExportDevicesQuery = z.strictObject({
  format: ExportFormat,
  sort: deviceFilters.sort,
  order: deviceFilters.order,
  search: deviceFilters.search,
  status: deviceFilters.status,
  group: deviceFilters.group,
  batteryBelow: deviceFilters.batteryBelow,
  appVersion: deviceFilters.appVersion,
});
export type ExportDevicesQuery = z.infer<typeof ExportDevicesQuery>;

export const ExportCommandsQuery = z.strictObject({
  format: ExportFormat,
  deviceId: ListCommandsQuery.shape.deviceId,
  batchId: ListCommandsQuery.shape.batchId,
  status: ListCommandsQuery.shape.status,
  type: ListCommandsQuery.shape.type,
});
export type ExportCommandsQuery = z.infer<typeof ExportCommandsQuery>;

export const ExportAuditLogQuery = z.strictObject({
  format: ExportFormat,
  actor: AuditLogQuery.shape.actor,
  action: AuditLogQuery.shape.action,
  targetType: AuditLogQuery.shape.targetType,
  targetId: AuditLogQuery.shape.targetId,
  from: AuditLogQuery.shape.from,
  to: AuditLogQuery.shape.to,
});
export type ExportAuditLogQuery = z.infer<typeof ExportAuditLogQuery>;
