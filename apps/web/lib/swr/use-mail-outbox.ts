import { type ListOutboxResponse, type OutboxQuery, apiRoutes } from "@mdm/contracts";
import useSWRInfinite from "swr/infinite";
import { apiPath, callApi } from "@/lib/api";

const PAGE_SIZE = 50;

/**
 * The mail outbox, newest first, one page per `loadMore`; refreshed every 5 s so new mails
 * appear. Nothing is asked for when `enabled` is false (a non-admin would only get 403).
 */
export function useMailOutbox(enabled = true) {
  const pageKey = (index: number, previous: ListOutboxResponse | null) => {
    if (!enabled || (index > 0 && !previous?.nextCursor)) return null;
    return apiPath(apiRoutes.listMailOutbox, { query: { limit: PAGE_SIZE, cursor: previous?.nextCursor ?? undefined } });
  };
  const pages = useSWRInfinite(
    pageKey,
    (path: string) => {
      const query = Object.fromEntries(new URLSearchParams(path.split("?")[1] ?? "")) as Partial<OutboxQuery>;
      return callApi(apiRoutes.listMailOutbox, { query });
    },
    { refreshInterval: 5000 },
  );
  const first = pages.data?.[0];
  const mails = pages.data?.flatMap((page) => page.mails) ?? [];
  const hasMore = Boolean(pages.data?.at(-1)?.nextCursor);
  return { ...pages, mails, provider: first?.provider, sending: first?.sending, hasMore, loadMore: () => pages.setSize(pages.size + 1) };
}
