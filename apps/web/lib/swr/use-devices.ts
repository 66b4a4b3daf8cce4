import { type ListDevicesQuery, apiRoutes } from "@mdm/contracts";
import useSWR from "swr";
import { apiPath, callApi } from "@/lib/api";

export type DeviceListFilters = Partial<ListDevicesQuery>;

/** Whether an SWR key is a page of the device list (any filters). */
export function isDeviceListKey(key: unknown): key is string {
  return typeof key === "string" && (key === apiRoutes.listDevices.path || key.startsWith(`${apiRoutes.listDevices.path}?`));
}

export function useDevices(query: DeviceListFilters) {
  const input = { query };
  return useSWR(apiPath(apiRoutes.listDevices, input), () => callApi(apiRoutes.listDevices, input), { keepPreviousData: true });
}
