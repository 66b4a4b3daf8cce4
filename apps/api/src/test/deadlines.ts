/**
 * `promise`'s value, or `fallback` if it has not settled within `ms`. The timer is cleared
 * either way: one left running after the race held jest's worker past its exit ("A worker
 * process has failed to exit gracefully").
 */
export async function settledWithin<T, F>(promise: Promise<T>, ms: number, fallback: F): Promise<T | F> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([promise, new Promise<F>((resolve) => (timer = setTimeout(() => resolve(fallback), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}
