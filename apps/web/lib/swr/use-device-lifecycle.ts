import { type BulkEditDevicesRequest, type CreateCommandRequest, apiRoutes } from "@mdm/contracts";
import { mutate } from "swr";
import { callApi } from "@/lib/api";
import { isCommandListKey } from "./use-commands";
import { deviceKey } from "./use-device";

const isDeviceListKey = (key: unknown) => typeof key === "string" && (key === apiRoutes.listDevices.path || key.startsWith(`${apiRoutes.listDevices.path}?`));

async function refresh(deviceId?: string) {
  await Promise.all([mutate(isCommandListKey), mutate(isDeviceListKey), deviceId ? mutate(deviceKey(deviceId)) : undefined]);
}

export async function retireDevice(deviceId: string) {
  const outcome = await callApi(apiRoutes.retireDevice, { params: { deviceId } });
  await refresh(deviceId);
  return outcome;
}

export async function deleteDevice(deviceId: string) {
  await callApi(apiRoutes.deleteDevice, { params: { deviceId } });
  await mutate(isDeviceListKey);
}

export async function rotateDeviceToken(deviceId: string) {
  const outcome = await callApi(apiRoutes.rotateDeviceToken, { params: { deviceId } });
  await refresh(deviceId);
  return outcome;
}

export async function sendDeviceCommand(body: CreateCommandRequest) {
  const command = await callApi(apiRoutes.createCommand, { body });
  await mutate(isCommandListKey);
  return command;
}

export async function bulkEditDevices(body: BulkEditDevicesRequest) {
  const outcome = await callApi(apiRoutes.bulkEditDevices, { body });
  await refresh();
  return outcome;
}

export async function cancelBatch(batchId: string) {
  const batch = await callApi(apiRoutes.cancelBatch, { params: { batchId } });
  await Promise.all([mutate(isCommandListKey), mutate((key) => typeof key === "string" && key.startsWith(apiRoutes.listBatches.path))]);
  return batch;
}
