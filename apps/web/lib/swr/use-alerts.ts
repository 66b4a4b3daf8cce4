import { apiRoutes } from "@mdm/contracts";
import useSWR from "swr";
import { apiPath, callApi } from "@/lib/api";

export const alertsKey = apiPath(apiRoutes.listAlerts);

export function useAlerts() {
  return useSWR(alertsKey, () => callApi(apiRoutes.listAlerts), { refreshInterval: 60_000 });
}
