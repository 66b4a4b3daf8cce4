import type { SWRConfiguration } from "swr";
import { ApiError } from "@/lib/api";

/** Tries of a failed read after the first, before its page shows the error for good (its Retry button remains). */
export const READ_RETRIES = 5;
const RETRY_BASE_MS = 5_000;
const LONGEST_WAIT_MS = 60_000;

/**
 * How long to wait before reading again after `error`, the `retryCount`-th failure in a row;
 * undefined: not again. A read refused for its rate (429) waits what the server asked
 * (`Retry-After`), plus up to a second so the pages refused together do not all come back in
 * the same instant: a busy admin's tabs can pass the per-address budget, and their pages must
 * come back by themselves. Any other refusal (4xx) would be refused again. A server or network
 * failure waits longer each time, as SWR's own backoff does.
 */
export function retryDelayMs(error: unknown, retryCount: number, random: () => number = Math.random): number | undefined {
  if (retryCount > READ_RETRIES) return undefined;
  if (error instanceof ApiError && error.status === 429) {
    return Math.min(LONGEST_WAIT_MS, (error.retryAfterSeconds ?? 1) * 1_000) + Math.floor(random() * 1_000);
  }
  if (error instanceof ApiError && error.status >= 400 && error.status < 500) return undefined;
  return Math.min(LONGEST_WAIT_MS, Math.floor((random() + 0.5) * 2 ** Math.min(retryCount, 8) * RETRY_BASE_MS));
}

/** SWR's `onErrorRetry` on retryDelayMs. */
export const onErrorRetry: NonNullable<SWRConfiguration["onErrorRetry"]> = (error, _key, _config, revalidate, { retryCount }) => {
  const delayMs = retryDelayMs(error, retryCount);
  if (delayMs !== undefined) setTimeout(() => void revalidate({ retryCount }), delayMs);
};
