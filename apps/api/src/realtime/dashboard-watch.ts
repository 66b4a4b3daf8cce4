import { performance } from "node:perf_hooks";
import type { EventBus } from "./event-bus";

/**
 * An instance with dashboards open says so over the bus (`dashboards_watching`) as one opens
 * and every WATCH_REPEAT_MS after; a repeat or two may be lost (a Redis reconnect).
 */
export const WATCH_REPEAT_MS = 10_000;
export const WATCH_TTL_MS = 3 * WATCH_REPEAT_MS;

/**
 * Whether a dashboard is open on some instance: heard within WATCH_TTL_MS. A heartbeat's
 * device state (thousands a second at 100,000 devices, and only dashboards read it) goes on
 * the bus only then: with none open, each would still be serialised, sent through Redis or
 * PostgreSQL, and parsed by every instance, for nothing. Only heartbeats are held back: the
 * next one says it all again. A change that happens once (a device going offline, a socket
 * closing, an edit) is always published.
 *
 * It starts open: a dashboard may be open elsewhere, its next word up to WATCH_REPEAT_MS
 * away. After a bus outage of more than WATCH_TTL_MS, heartbeats' states wait for that word.
 */
export class DashboardWatch {
  private watchedUntil: number;

  constructor(
    bus: EventBus,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.watchedUntil = now() + WATCH_TTL_MS;
    bus.subscribe((event) => {
      if (event.kind === "dashboards_watching") this.heard();
    });
  }

  /** A `dashboards_watching` word, from another instance or this one (which need not wait for its echo). */
  heard(): void {
    this.watchedUntil = this.now() + WATCH_TTL_MS;
  }

  get watched(): boolean {
    return this.now() < this.watchedUntil;
  }
}
