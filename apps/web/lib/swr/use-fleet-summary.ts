import { apiRoutes } from "@mdm/contracts";
import useSWR from "swr";
import { apiPath, callApi } from "@/lib/api";

export const fleetSummaryKey = apiPath(apiRoutes.fleetSummary);

export function useFleetSummary() {
  return useSWR(fleetSummaryKey, () => callApi(apiRoutes.fleetSummary));
}
