import { type AuditLogQuery, type ListAuditLogResponse, authRoutes } from "@mdm/contracts";
import useSWRInfinite from "swr/infinite";
import { apiPath, callApi } from "@/lib/api";

export type AuditLogFilters = Omit<Partial<AuditLogQuery>, "cursor" | "limit">;

const PAGE_SIZE = 50;

/** The audit log, newest first, one page per `loadMore` (cursor pagination); nothing is asked for when `enabled` is false (a viewer would only get 403). */
export function useAuditLog(filters: AuditLogFilters, enabled = true) {
  const pageKey = (index: number, previous: ListAuditLogResponse | null) => {
    if (!enabled) return null;
    if (index > 0 && !previous?.nextCursor) return null;
    const query = { ...filters, limit: PAGE_SIZE, cursor: previous?.nextCursor ?? undefined };
    return apiPath(authRoutes.listAuditLog, { query });
  };
  const pages = useSWRInfinite(pageKey, (path: string) => {
    const query = Object.fromEntries(new URLSearchParams(path.split("?")[1] ?? "")) as Partial<AuditLogQuery>;
    return callApi(authRoutes.listAuditLog, { query });
  });
  const entries = pages.data?.flatMap((page) => page.entries) ?? [];
  const hasMore = Boolean(pages.data?.at(-1)?.nextCursor);
  return { ...pages, entries, hasMore, loadMore: () => pages.setSize(pages.size + 1) };
}
