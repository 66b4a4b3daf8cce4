import type { EventBus, FleetEvent } from "./event-bus";

/**
 * An instance with dashboards open says so over the bus (`dashboards_watching`) as one opens
 * and every WATCH_REPEAT_MS after; a repeat or two may be lost (a Redis reconnect).
 */
export const WATCH_REPEAT_MS = 10_000;
const WATCH_TTL_MS = 3 * WATCH_REPEAT_MS;

/**
 * `bus`, publishing device states only while a dashboard is open on some instance (heard
 * within WATCH_TTL_MS). A device state is published for every heartbeat, thousands a second
 * at 100,000 devices, and only dashboards read it: with none open, each would still be
 * serialised, sent through Redis or PostgreSQL, and parsed by every instance, for nothing.
 * Every other event passes as it is.
 */
export function publishingWhileWatched(bus: EventBus, now: () => number = Date.now): EventBus {
  let watchedUntil = 0;
  const note = (event: FleetEvent) => {
    if (event.kind === "dashboards_watching") watchedUntil = now() + WATCH_TTL_MS;
  };
  // Another instance's word comes over the bus; this instance's counts at once.
  const unsubscribe = bus.subscribe(note);
  return {
    name: bus.name,
    publish(event) {
      note(event);
      if (event.kind === "device_state" && now() >= watchedUntil) return;
      bus.publish(event);
    },
    publishNow(event) {
      note(event);
      return bus.publishNow(event);
    },
    subscribe: (handler) => bus.subscribe(handler),
    deliverLocally: (event) => bus.deliverLocally(event),
    async close() {
      unsubscribe();
      await bus.close();
    },
  };
}
