import { type ListCommandsQuery, apiRoutes } from "@mdm/contracts";
import useSWR, { mutate } from "swr";
import { apiPath, callApi } from "@/lib/api";

export type CommandListFilters = Partial<ListCommandsQuery>;

/** Whether an SWR key is a page of the command list (any filters). */
export function isCommandListKey(key: unknown): key is string {
  return typeof key === "string" && (key === apiRoutes.listCommands.path || key.startsWith(`${apiRoutes.listCommands.path}?`));
}

export function useCommands(query: CommandListFilters, options: { refreshInterval?: number } = {}) {
  const input = { query };
  return useSWR(apiPath(apiRoutes.listCommands, input), () => callApi(apiRoutes.listCommands, input), {
    keepPreviousData: true,
    ...options,
  });
}

/** Cancels a command that has not finished, and refreshes every command list. */
export async function cancelCommand(requestId: string) {
  const command = await callApi(apiRoutes.cancelCommand, { params: { requestId } });
  await mutate(isCommandListKey);
  return command;
}
