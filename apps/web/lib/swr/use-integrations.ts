import { type CreateApiKeyRequest, type CreateWebhookRequest, apiRoutes } from "@mdm/contracts";
import useSWR, { mutate } from "swr";
import { apiPath, callApi } from "@/lib/api";

export const apiKeysKey = apiPath(apiRoutes.listApiKeys);
export const webhooksKey = apiPath(apiRoutes.listWebhooks);

/** API keys, newest first, with their last use (never their secrets). */
/** The API keys; nothing is asked for when `enabled` is false (a viewer would only get 403). */
export function useApiKeys(enabled = true) {
  return useSWR(enabled ? apiKeysKey : null, () => callApi(apiRoutes.listApiKeys));
}

/** Creates a key; the answer is the only time its secret is shown. */
export async function createApiKey(body: CreateApiKeyRequest) {
  const key = await callApi(apiRoutes.createApiKey, { body });
  await mutate(apiKeysKey);
  return key;
}

export async function revokeApiKey(keyId: string) {
  const key = await callApi(apiRoutes.revokeApiKey, { params: { keyId } });
  await mutate(apiKeysKey);
  return key;
}

/** The webhooks; nothing is asked for when `enabled` is false (a viewer would only get 403). */
export function useWebhooks(enabled = true) {
  return useSWR(enabled ? webhooksKey : null, () => callApi(apiRoutes.listWebhooks));
}

/** An endpoint's delivery log, refreshed every few seconds while shown (retries change it). */
export function useWebhookDeliveries(webhookId: string) {
  const route = apiRoutes.listWebhookDeliveries;
  return useSWR(apiPath(route, { params: { webhookId } }), () => callApi(route, { params: { webhookId } }), { refreshInterval: 3000 });
}

export async function createWebhook(body: CreateWebhookRequest) {
  const webhook = await callApi(apiRoutes.createWebhook, { body });
  await mutate(webhooksKey);
  return webhook;
}

export async function deleteWebhook(webhookId: string) {
  await callApi(apiRoutes.deleteWebhook, { params: { webhookId } });
  await mutate(webhooksKey);
}

export async function pingWebhook(webhookId: string) {
  const delivery = await callApi(apiRoutes.pingWebhook, { params: { webhookId } });
  await mutate(apiPath(apiRoutes.listWebhookDeliveries, { params: { webhookId } }));
  return delivery;
}
