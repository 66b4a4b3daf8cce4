import type { BareFetcher, Cache, Middleware, ScopedMutator } from "swr";

type Patch = (data: unknown) => unknown;

// Reads time out (lib/api.ts), so a key is not fetched for long; this bounds what a key
// holds even so. At the dashboard socket's flush interval (250 ms) it is a minute of
// frames; past it the oldest go, and what they described shows as fetched.
const MAX_HELD_PATCHES_PER_KEY = 256;

/**
 * Folds live frames into cached responses, and refetches responses, without losing the
 * responses being fetched.
 *
 * SWR discards a response whose request overlapped a mutation of its key, taking the
 * mutation to be newer, and of two overlapping fetches of a key keeps only the newer. A
 * live patch is a mutation, and frames come every 250 ms while devices report: a refetch
 * slower than that never landed, so the list kept its old names after an edit. So:
 * - while a key is being fetched its patches are held, and applied to whatever SWR kept
 *   once the key's last fetch has ended (the response, an older one, or what was cached
 *   before a failure). The patch functions ignore state older than what they patch, so a
 *   held frame applied to a newer response changes nothing;
 * - a refetch asked for while the key is being fetched starts when that fetch ends, so
 *   refetches of a slow answer do not overtake each other without end.
 */
export class CachePatcher {
  private readonly fetching = new Map<string, number>();
  private readonly held = new Map<string, Patch[]>();
  private readonly refetchWhenSettled = new Set<string>();

  constructor(
    readonly cache: Cache,
    private readonly mutate: ScopedMutator,
  ) {}

  /** SWR middleware that tells the patcher which keys are being fetched. */
  readonly middleware: Middleware = (useSWRNext) => (key, fetcher, config) =>
    useSWRNext(key, typeof key === "string" && fetcher ? this.tracked(key, fetcher) : fetcher, config);

  /**
   * Patches each cached response whose key matches, and returns the responses as they
   * were. A response that the patch leaves as it is is not rewritten: SWR re-renders
   * for every mutation.
   */
  patch<T>(matches: (key: string) => boolean, patch: (data: T) => T): T[] {
    const seen: T[] = [];
    for (const key of this.cache.keys()) {
      if (typeof key !== "string" || !matches(key)) continue;
      const data = this.cache.get(key)?.data as T | undefined;
      if (data === undefined) continue;
      seen.push(data);
      if (this.isBusy(key)) this.hold(key, patch as Patch);
      else this.rewrite(key, data, [patch as Patch]);
    }
    return seen;
  }

  /** Refetches each cached response whose key matches; one being fetched, once that fetch ends. */
  revalidate(matches: (key: string) => boolean): void {
    for (const key of this.cache.keys()) {
      if (typeof key !== "string" || !matches(key)) continue;
      if (this.isBusy(key)) this.refetchWhenSettled.add(key);
      else void this.mutate(key);
    }
  }

  /** Fetched, or fetched and not yet settled: its held patches are still to be applied. */
  private isBusy(key: string): boolean {
    return this.fetching.has(key) || this.held.has(key);
  }

  private hold(key: string, patch: Patch): void {
    const patches = this.held.get(key) ?? [];
    patches.push(patch);
    if (patches.length > MAX_HELD_PATCHES_PER_KEY) patches.shift();
    this.held.set(key, patches);
  }

  private rewrite(key: string, data: unknown, patches: Patch[]): void {
    const patched = applyAll(patches, data);
    if (patched !== data) void this.mutate(key, patched, { revalidate: false });
  }

  private tracked<Data>(key: string, fetcher: BareFetcher<Data>): BareFetcher<Data> {
    return async (...args) => {
      this.fetching.set(key, (this.fetching.get(key) ?? 0) + 1);
      try {
        return await fetcher(...args);
      } finally {
        const remaining = (this.fetching.get(key) ?? 1) - 1;
        if (remaining > 0) this.fetching.set(key, remaining);
        else {
          this.fetching.delete(key);
          // SWR takes or discards the result after this promise settles: a macrotask later
          // the cache holds whatever it kept.
          setTimeout(() => this.settle(key), 0);
        }
      }
    };
  }

  private settle(key: string): void {
    if (this.fetching.has(key)) return; // fetched again meanwhile: settled when that ends
    const held = this.held.get(key) ?? [];
    this.held.delete(key);
    const data = this.cache.get(key)?.data;
    if (held.length > 0 && data !== undefined) this.rewrite(key, data, held);
    if (this.refetchWhenSettled.delete(key)) void this.mutate(key);
  }
}

const applyAll = (patches: Patch[], data: unknown) => patches.reduce((patched, patch) => patch(patched), data);
