import { apiRoutes } from "@mdm/contracts";
import useSWR from "swr";
import { apiPath, callApi } from "@/lib/api";

export const batchesKey = apiPath(apiRoutes.listBatches);

/** Recent bulk commands, newest first. Polls slowly while any is still running. */
export function useBatches() {
  return useSWR(batchesKey, () => callApi(apiRoutes.listBatches), {
    refreshInterval: (data) => (data?.batches.some((batch) => !batch.done) ? 10_000 : 0),
  });
}
