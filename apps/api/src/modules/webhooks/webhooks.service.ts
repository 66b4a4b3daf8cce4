import { randomUUID } from "node:crypto";
import type {
  CreateWebhookRequest,
  CreateWebhookResponse,
  ListWebhookDeliveriesResponse,
  ListWebhooksResponse,
  WebhookDeliveryType,
  WebhookEndpoint as WebhookEndpointView,
  WebhookEventType,
  WebhookDelivery as WebhookDeliveryView,
} from "@mdm/contracts";
import type { AppDeps } from "../../deps";
import type { WebhookDelivery, WebhookEndpoint } from "../../generated/prisma/client";
import { recordAudit } from "../../lib/audit";
import { HttpError } from "../../lib/http-error";
import { checkedAddresses, wakeWebhookWorker, webhookSecret } from "./webhook-delivery";
import { emitWebhookEvents } from "./webhook-events";

type Actor = { name: string; ip?: string };
type Deps = Pick<AppDeps, "db" | "env" | "clock">;

function toView(row: WebhookEndpoint): WebhookEndpointView {
  return {
    id: row.id,
    url: row.url,
    events: row.events as WebhookEventType[],
    description: row.description,
    createdAt: row.createdAt.toISOString(),
    createdBy: row.createdBy,
  };
}

function toDeliveryView(row: WebhookDelivery): WebhookDeliveryView {
  return {
    id: row.id.toString(),
    eventId: row.eventId,
    eventType: row.eventType as WebhookDeliveryType,
    status: row.status,
    attempts: row.attempts,
    nextAttemptAt: row.status === "queued" ? (row.nextAttemptAt?.toISOString() ?? null) : null,
    lastStatusCode: row.lastStatusCode,
    lastError: row.lastError,
    createdAt: row.createdAt.toISOString(),
    finishedAt: row.finishedAt?.toISOString() ?? null,
  };
}

const invalidUrl = (message: string) => new HttpError("validation_failed", message, [{ path: "url", message }]);

/** Refuses URLs the server must not call: http in production; outside development, hosts resolving to private, loopback or link-local addresses. */
async function checkUrl(env: Deps["env"], url: string): Promise<void> {
  const parsed = new URL(url);
  if (env.NODE_ENV === "production" && parsed.protocol !== "https:") throw invalidUrl("Must be an https URL");
  if (parsed.username || parsed.password) throw invalidUrl("Must not carry credentials");
  try {
    await checkedAddresses(env, parsed.hostname);
  } catch (error) {
    throw invalidUrl(error instanceof Error ? error.message : String(error));
  }
}

export async function createWebhook(deps: Deps, input: CreateWebhookRequest, actor: Actor): Promise<CreateWebhookResponse> {
  await checkUrl(deps.env, input.url);
  const row = await deps.db.$transaction(async (tx) => {
    const created = await tx.webhookEndpoint.create({
      data: {
        id: randomUUID(),
        url: input.url,
        events: [...new Set(input.events)],
        description: input.description ?? null,
        createdBy: actor.name,
        createdAt: deps.clock.now(),
      },
    });
    await recordAudit(tx, {
      actor: actor.name,
      action: "webhook.create",
      targetType: "webhook",
      targetId: created.id,
      ip: actor.ip,
      details: { url: created.url, events: created.events },
    });
    return created;
  });
  return { ...toView(row), secret: webhookSecret(deps.env, row.id) };
}

export async function listWebhooks({ db }: Pick<AppDeps, "db">): Promise<ListWebhooksResponse> {
  const rows = await db.webhookEndpoint.findMany({ orderBy: [{ createdAt: "desc" }, { id: "asc" }], take: 1000 });
  return { webhooks: rows.map(toView) };
}

export async function deleteWebhook({ db }: Pick<AppDeps, "db">, webhookId: string, actor: Actor): Promise<void> {
  await db.$transaction(async (tx) => {
    const deleted = await tx.webhookEndpoint.deleteMany({ where: { id: webhookId } });
    if (deleted.count === 0) throw new HttpError("not_found", "No webhook has this id");
    await recordAudit(tx, { actor: actor.name, action: "webhook.delete", targetType: "webhook", targetId: webhookId, ip: actor.ip });
  });
}

export async function listWebhookDeliveries({ db }: Pick<AppDeps, "db">, webhookId: string): Promise<ListWebhookDeliveriesResponse> {
  const endpoint = await db.webhookEndpoint.findUnique({ where: { id: webhookId }, select: { id: true } });
  if (!endpoint) throw new HttpError("not_found", "No webhook has this id");
  const rows = await db.webhookDelivery.findMany({ where: { endpointId: webhookId }, orderBy: [{ createdAt: "desc" }, { id: "desc" }], take: 100 });
  return { deliveries: rows.map(toDeliveryView) };
}

/** Queues a `ping` to one endpoint and wakes the worker; answers with the queued delivery. */
export async function pingWebhook(deps: Deps, webhookId: string, actor: Actor): Promise<WebhookDeliveryView> {
  const now = deps.clock.now();
  const delivery = await deps.db.$transaction(async (tx) => {
    const endpoint = await tx.webhookEndpoint.findUnique({ where: { id: webhookId }, select: { id: true } });
    if (!endpoint) throw new HttpError("not_found", "No webhook has this id");
    await emitWebhookEvents(tx, [{ type: "ping", data: { webhookId, by: actor.name }, at: now }], { endpointId: webhookId });
    await recordAudit(tx, { actor: actor.name, action: "webhook.ping", targetType: "webhook", targetId: webhookId, ip: actor.ip });
    return tx.webhookDelivery.findFirstOrThrow({ where: { endpointId: webhookId, eventType: "ping" }, orderBy: { id: "desc" } });
  });
  wakeWebhookWorker(deps);
  return toDeliveryView(delivery);
}
