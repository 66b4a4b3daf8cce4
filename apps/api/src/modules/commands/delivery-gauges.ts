import client from "prom-client";
import type { AppDeps } from "../../deps";

/**
 * Gauges read at scrape time: the fleet's and the delivery queue's state from the shared
 * database (the same on every instance), the open device sockets from this instance.
 */
export function registerDeliveryGauges(deps: Pick<AppDeps, "db" | "clock" | "metrics">, hub: { readonly size: number; readonly framesInFlight: number }): void {
  const registers = [deps.metrics.registry];
  new client.Gauge({
    name: "mdm_devices_online",
    help: "Devices whose last heartbeat is recent enough to count as online.",
    registers,
    async collect() {
      this.set(await deps.db.device.count({ where: { online: true } }));
    },
  });
  new client.Gauge({
    name: "mdm_device_sockets_open",
    help: "Device WebSockets held by this instance.",
    registers,
    collect() {
      this.set(hub.size);
    },
  });
  new client.Gauge({
    name: "mdm_device_frames_in_flight",
    help: "Device WebSocket frames received by this instance and not yet processed.",
    registers,
    collect() {
      this.set(hub.framesInFlight);
    },
  });
  const due = async () => {
    const now = deps.clock.now();
    const [row] = await deps.db.$queryRaw<Array<{ count: bigint; oldest: Date | null }>>`
      SELECT count(*) AS count, min("nextAttemptAt") AS oldest FROM "Command"
      WHERE status IN ('queued', 'sent') AND "nextAttemptAt" <= ${now} AND "expiresAt" > ${now}`;
    return { count: Number(row?.count ?? 0), oldestAgeSeconds: row?.oldest ? (now.getTime() - row.oldest.getTime()) / 1000 : 0 };
  };
  new client.Gauge({
    name: "mdm_commands_due",
    help: "Commands whose delivery attempt is due and not yet claimed by a worker.",
    registers,
    async collect() {
      this.set((await due()).count);
    },
  });
  new client.Gauge({
    name: "mdm_commands_due_oldest_age_seconds",
    help: "How long the oldest due command has waited for its attempt (0 when none is due).",
    registers,
    async collect() {
      this.set((await due()).oldestAgeSeconds);
    },
  });
}
