import { apiRoutes } from "@mdm/contracts";
import useSWR from "swr";
import { apiPath, callApi } from "@/lib/api";

export const groupsKey = apiPath(apiRoutes.listGroups);

export function useGroups() {
  return useSWR(groupsKey, () => callApi(apiRoutes.listGroups));
}
