import type { BareFetcher, Cache, Middleware, ScopedMutator } from "swr";

type Patch = (data: unknown) => unknown;

// A fetch has no deadline of its own, so a hung one must not hold patches without end.
// At the dashboard socket's flush interval (250 ms) this is a minute of frames; past it
// the oldest go, and the devices they describe show their state as fetched.
export const MAX_HELD_PATCHES_PER_KEY = 256;

/**
 * Folds live frames into cached responses without losing the responses being fetched.
 *
 * SWR discards a response whose request overlapped a mutation of its key, taking the
 * mutation to be newer. A live patch is such a mutation, and frames come every 250 ms
 * while devices report: a refetch slower than that never landed, so the list kept its
 * old names after an edit. While a key is being fetched its patches are therefore held,
 * and applied to the response as it arrives; the patch functions ignore state older than
 * what they patch, so a response newer than a held frame keeps its own values.
 */
export class CachePatcher {
  private readonly fetching = new Map<string, number>();
  private readonly held = new Map<string, Patch[]>();

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
      if (this.fetching.has(key)) {
        this.hold(key, patch as Patch);
        continue;
      }
      const patched = patch(data);
      if (patched !== data) void this.mutate(key, patched, { revalidate: false });
    }
    return seen;
  }

  private hold(key: string, patch: Patch): void {
    const patches = this.held.get(key) ?? [];
    patches.push(patch);
    if (patches.length > MAX_HELD_PATCHES_PER_KEY) patches.shift();
    this.held.set(key, patches);
  }

  private tracked<Data>(key: string, fetcher: BareFetcher<Data>): BareFetcher<Data> {
    return async (...args) => {
      this.fetching.set(key, (this.fetching.get(key) ?? 0) + 1);
      let data: Data;
      try {
        data = await fetcher(...args);
      } catch (error) {
        const { held, last } = this.endFetch(key);
        // The cached response stays on screen, so the frames held for it still apply.
        const cached = this.cache.get(key)?.data;
        if (last && held.length > 0 && cached !== undefined) void this.mutate(key, applyAll(held, cached), { revalidate: false });
        throw error;
      }
      return applyAll(this.endFetch(key).held, data) as Data;
    };
  }

  /** The patches held for the key; they are dropped with its last fetch, as SWR keeps only the newest of overlapping fetches. */
  private endFetch(key: string): { held: Patch[]; last: boolean } {
    const held = this.held.get(key) ?? [];
    const remaining = (this.fetching.get(key) ?? 1) - 1;
    if (remaining > 0) this.fetching.set(key, remaining);
    else {
      this.fetching.delete(key);
      this.held.delete(key);
    }
    return { held, last: remaining <= 0 };
  }
}

const applyAll = (patches: Patch[], data: unknown) => patches.reduce((patched, patch) => patch(patched), data);
