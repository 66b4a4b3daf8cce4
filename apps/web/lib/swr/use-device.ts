import { type UpdateDeviceRequest, apiRoutes } from "@mdm/contracts";
import useSWR, { mutate } from "swr";
import { apiPath, callApi } from "@/lib/api";

export function deviceKey(deviceId: string): string {
  return apiPath(apiRoutes.getDevice, { params: { deviceId } });
}

export function useDevice(deviceId: string) {
  return useSWR(deviceKey(deviceId), () => callApi(apiRoutes.getDevice, { params: { deviceId } }));
}

/** Saves alias, notes or groups and puts the answer in the cache. */
export async function updateDevice(deviceId: string, body: UpdateDeviceRequest) {
  const device = await callApi(apiRoutes.updateDevice, { params: { deviceId }, body });
  await mutate(deviceKey(deviceId), device, { revalidate: false });
  return device;
}
