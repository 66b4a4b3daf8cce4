import type { SWRConfiguration } from "swr";
import { ApiError } from "@/lib/api";

const RETRY_BASE_MS = 5_000;
const LONGEST_WAIT_MS = 60_000;

/** A read refused for its rate (429). The session read retries only these: its other failures are shown at once. */
export const isRateLimited = (error: unknown) => error instanceof ApiError && error.status === 429;

/**
 * How long to wait before reading again after `error`, the `retryCount`-th failure in a row;
 * undefined: not again. A read refused for its rate (429) waits what the server asked
 * (`Retry-After`), plus up to a second so the pages refused together do not all come back in
 * the same instant: a busy admin's tabs can pass the per-address budget, and their pages must
 * come back by themselves. Any other refusal (4xx) would be refused again. A server or network
 * failure waits longer each time, as SWR's own backoff does, and at least its Retry-After (a
 * 503 of an overloaded instance).
 */
export function retryDelayMs(error: unknown, retryCount: number, random: () => number = Math.random): number | undefined {
  const asked = error instanceof ApiError && error.retryAfterSeconds !== undefined ? error.retryAfterSeconds * 1_000 : 0;
  if (isRateLimited(error)) return Math.min(LONGEST_WAIT_MS, asked || 1_000) + Math.floor(random() * 1_000);
  if (error instanceof ApiError && error.status >= 400 && error.status < 500) return undefined;
  const backoff = Math.floor((random() + 0.5) * 2 ** Math.min(retryCount, 8) * RETRY_BASE_MS);
  return Math.min(LONGEST_WAIT_MS, Math.max(backoff, asked));
}

/** SWR's `onErrorRetry` on retryDelayMs; the retry joins a read already under way (`dedupe`), as SWR's own does. */
export const onErrorRetry: NonNullable<SWRConfiguration["onErrorRetry"]> = (error, _key, _config, revalidate, options) => {
  const delayMs = retryDelayMs(error, options.retryCount);
  if (delayMs !== undefined) setTimeout(() => void revalidate(options), delayMs);
};
