import { apiRoutes } from "@mdm/contracts";
import useSWR from "swr";
import { apiPath, callApi } from "@/lib/api";

export function isTelemetryKey(key: unknown, deviceId: string): boolean {
  return typeof key === "string" && key.startsWith(`${apiPath(apiRoutes.deviceTelemetry, { params: { deviceId } })}`);
}

export function useDeviceTelemetry(deviceId: string, hours: number) {
  const input = { params: { deviceId }, query: { hours } };
  return useSWR(apiPath(apiRoutes.deviceTelemetry, input), () => callApi(apiRoutes.deviceTelemetry, input), { keepPreviousData: true });
}
