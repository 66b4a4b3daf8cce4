export type KeyFilter = (key: string) => boolean;

/**
 * Refetches matching SWR keys once, a short while after the first request for it: a burst
 * of frames asking for the same refresh costs one request.
 */
export class RevalidationScheduler {
  private readonly pending = new Map<string, ReturnType<typeof setTimeout>>();

  constructor(private readonly revalidate: (filter: KeyFilter) => void) {}

  schedule(name: string, filter: KeyFilter, delayMs: number): void {
    if (this.pending.has(name)) return;
    const timer = setTimeout(() => {
      this.pending.delete(name);
      this.revalidate(filter);
    }, delayMs);
    this.pending.set(name, timer);
  }

  cancelAll(): void {
    for (const timer of this.pending.values()) clearTimeout(timer);
    this.pending.clear();
  }
}
