import { apiRoutes } from "@mdm/contracts";
import useSWR from "swr";
import { apiPath, callApi } from "@/lib/api";

export function batchKey(batchId: string): string {
  return apiPath(apiRoutes.getBatch, { params: { batchId } });
}

/** Progress of a bulk command. Polls slowly until done, in case live frames were missed. */
export function useBatch(batchId: string | undefined) {
  return useSWR(batchId ? batchKey(batchId) : null, () => callApi(apiRoutes.getBatch, { params: { batchId: batchId! } }), {
    refreshInterval: (batch) => (batch?.done ? 0 : 10_000),
  });
}
