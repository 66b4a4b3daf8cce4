// Promises raced against a deadline, and conditions polled until one. The timer is cleared either way: one left running after
// the race held jest's worker past its exit ("A worker process has failed to exit gracefully").

/** `promise`'s value, or `fallback` if it has not settled within `ms`. */
export function settledWithin<T, F>(promise: Promise<T>, ms: number, fallback: F): Promise<T | F> {
  return raced(promise, ms, (resolve) => resolve(fallback));
}

/** `promise`'s value; rejects naming `what` if it has not settled within `ms`. */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  return raced(promise, ms, (_resolve, reject) => reject(new Error(`${what}: nothing within ${ms} ms`)));
}

function raced<T, F>(promise: Promise<T>, ms: number, onDeadline: (resolve: (value: F) => void, reject: (error: Error) => void) => void): Promise<T | F> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<F>((resolve, reject) => (timer = setTimeout(() => onDeadline(resolve, reject), ms)));
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

/** Polls `read` until `done` says yes; fails with the last value at the deadline. */
export async function waitFor<T>(read: () => T | Promise<T>, done: (value: T) => boolean, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    if (Date.now() > deadline) throw new Error(`${what} not reached within ${timeoutMs} ms; last: ${JSON.stringify(value)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
