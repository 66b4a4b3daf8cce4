import type { ScopedMutator } from "swr";

type KeyFilter = (key: string) => boolean;

/**
 * Refetches matching SWR keys once, a short while after the first request for it: a burst
 * of frames asking for the same refresh costs one request.
 */
export class RevalidationScheduler {
  private readonly pending = new Map<string, ReturnType<typeof setTimeout>>();

  constructor(private readonly mutate: ScopedMutator) {}

  schedule(name: string, filter: KeyFilter, delayMs: number): void {
    if (this.pending.has(name)) return;
    const timer = setTimeout(() => {
      this.pending.delete(name);
      void this.mutate((key) => typeof key === "string" && filter(key));
    }, delayMs);
    this.pending.set(name, timer);
  }

  cancelAll(): void {
    for (const timer of this.pending.values()) clearTimeout(timer);
    this.pending.clear();
  }
}
