import { apiRoutes } from "@mdm/contracts";
import useSWR, { mutate } from "swr";
import { apiPath, callApi } from "@/lib/api";

export type IncidentFilter = "open" | "resolved" | "all";

const listKey = (filter: IncidentFilter) => apiPath(apiRoutes.listIncidents, { query: filter === "all" ? {} : { status: filter } });

export function useIncidents(filter: IncidentFilter) {
  return useSWR(listKey(filter), () => callApi(apiRoutes.listIncidents, { query: filter === "all" ? {} : { status: filter } }), { refreshInterval: 15_000 });
}

export function useIncident(incidentId: string | null) {
  return useSWR(incidentId ? apiPath(apiRoutes.getIncident, { params: { incidentId } }) : null, () =>
    callApi(apiRoutes.getIncident, { params: { incidentId: incidentId! } }),
  );
}

export async function acknowledgeIncident(incidentId: string) {
  const incident = await callApi(apiRoutes.acknowledgeIncident, { params: { incidentId } });
  // Every incident list and detail (their keys start with the list's path) show the acknowledgement.
  await mutate((key) => typeof key === "string" && key.startsWith(apiRoutes.listIncidents.path));
  return incident;
}
