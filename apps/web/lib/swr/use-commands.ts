import { type ListCommandsQuery, apiRoutes } from "@mdm/contracts";
import useSWR, { mutate } from "swr";
import { apiPath, callApi } from "@/lib/api";

export type CommandListFilters = Partial<ListCommandsQuery>;

/** Whether an SWR key is a page of the command list (any filters). */
export function isCommandListKey(key: unknown): key is string {
  return typeof key === "string" && (key === apiRoutes.listCommands.path || key.startsWith(`${apiRoutes.listCommands.path}?`));
}

/**
 * A page of the command list. The previous page stays on screen while the next one loads,
 * but never the answer to other filters: a list headed "this batch only" shows nothing
 * rather than other commands.
 */
export function useCommands(query: CommandListFilters, options: { refreshInterval?: number } = {}) {
  const input = { query };
  const filters = apiPath(apiRoutes.listCommands, { query: { ...query, offset: undefined } });
  const result = useSWR(apiPath(apiRoutes.listCommands, input), async () => ({ ...(await callApi(apiRoutes.listCommands, input)), filters }), {
    keepPreviousData: true,
    ...options,
  });
  const data = result.data?.filters === filters ? result.data : undefined;
  return { data, error: result.error, isLoading: result.isLoading || (result.data !== undefined && data === undefined), mutate: result.mutate };
}

/** Cancels a command that has not finished, and refreshes every command list. */
export async function cancelCommand(requestId: string) {
  const command = await callApi(apiRoutes.cancelCommand, { params: { requestId } });
  await mutate(isCommandListKey);
  return command;
}
