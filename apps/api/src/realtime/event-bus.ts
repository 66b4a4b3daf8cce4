import { EventEmitter } from "node:events";
import Redis from "ioredis";
import { Client, Pool } from "pg";
import type { CommandStatusChange, DeviceLiveState } from "@mdm/contracts";
import type { Env } from "../config/env";
import type { Logger } from "../lib/logger";

/**
 * Redis when configured; else PostgreSQL NOTIFY, so instances sharing a database still
 * reach each other's sockets at once; in-process for the embedded database (one instance).
 */
export async function createEventBus(env: Pick<Env, "REDIS_URL" | "DATABASE_URL">, embedded: boolean, logger: Logger): Promise<EventBus> {
  if (env.REDIS_URL) return RedisEventBus.connect(env.REDIS_URL, (message) => logger.warn(message));
  if (env.DATABASE_URL && !embedded) return PgEventBus.connect(env.DATABASE_URL, (message) => logger.warn(message));
  return new LocalEventBus();
}

/** Messages API instances exchange. With one instance they stay in-process. */
export type FleetEvent =
  /** Commands are due for delivery: every instance's worker looks. */
  | { kind: "commands_due" }
  /** Send this command over the device's socket, on whichever instance holds it. */
  | { kind: "deliver"; deviceId: string; requestId: string }
  /** Only for dashboards; a heartbeat's only while one is open somewhere (DashboardWatch). */
  | { kind: "device_state"; state: DeviceLiveState }
  /** This instance has dashboards open: every instance publishes heartbeats' device states for a while (DashboardWatch). */
  | { kind: "dashboards_watching" }
  /** The device's effective policy changed: the instance holding its socket sends it. */
  | { kind: "policy_changed"; deviceId: string }
  /** Devices' effective policies changed: every instance's policy worker claims PolicyDispatch rows. */
  | { kind: "policy_dispatch_due" }
  /** Devices wait in PolicyRecompute: every instance's recompute worker claims them. */
  | { kind: "policy_recompute_due" }
  | { kind: "command_status"; change: CommandStatusChange }
  /** A device's token changed or stopped being valid: every instance drops it from its token cache (and, when retired or deleted, closes its socket). */
  | { kind: "device_token_revoked"; deviceId: string; reason: "retired" | "deleted" | "rotated" };

export type EventBus = {
  readonly name: "local" | "redis" | "postgresql";
  publish(event: FleetEvent): void;
  /**
   * Like publish, resolved once the event has left this instance (Redis or PostgreSQL took
   * it): for events a caller must have sent before it answers, such as a revoked token.
   */
  publishNow(event: FleetEvent): Promise<void>;
  subscribe(handler: (event: FleetEvent) => void): () => void;
  /** Hands an event to this instance's subscribers only, as if it had come over the bus (the token revocation feed). */
  deliverLocally(event: FleetEvent): void;
  close(): Promise<void>;
};

export class LocalEventBus implements EventBus {
  readonly name = "local";
  private readonly emitter = new EventEmitter().setMaxListeners(0);

  publish(event: FleetEvent): void {
    this.emitter.emit("event", event);
  }

  async publishNow(event: FleetEvent): Promise<void> {
    this.publish(event);
  }

  subscribe(handler: (event: FleetEvent) => void): () => void {
    this.emitter.on("event", handler);
    return () => this.emitter.off("event", handler);
  }

  deliverLocally(event: FleetEvent): void {
    this.publish(event);
  }

  async close(): Promise<void> {
    this.emitter.removeAllListeners();
  }
}

const CHANNEL = "mdm:fleet-events";

/** Redis pub/sub, so a command created on one instance reaches a socket held by another. */
export class RedisEventBus implements EventBus {
  readonly name = "redis";
  private readonly publisher: Redis;
  private readonly subscriber: Redis;
  private readonly local = new LocalEventBus();

  private constructor(url: string, onProblem: (message: string) => void) {
    this.publisher = new Redis(url, { maxRetriesPerRequest: 3 });
    this.subscriber = new Redis(url);
    // ioredis reconnects by itself; without a listener each failed attempt is an
    // "Unhandled error event" on stderr. Delivery falls back to the workers' poll meanwhile.
    this.publisher.on("error", (error: Error) => onProblem(`event bus (redis): ${error.message}`));
    this.subscriber.on("error", (error: Error) => onProblem(`event bus (redis): ${error.message}`));
    this.subscriber.on("message", (_channel: string, message: string) => this.local.publish(JSON.parse(message) as FleetEvent));
  }

  static async connect(url: string, onProblem: (message: string) => void = () => undefined): Promise<RedisEventBus> {
    const bus = new RedisEventBus(url, onProblem);
    await bus.subscriber.subscribe(CHANNEL);
    return bus;
  }

  publish(event: FleetEvent): void {
    this.publisher.publish(CHANNEL, JSON.stringify(event)).catch(() => undefined);
  }

  async publishNow(event: FleetEvent): Promise<void> {
    await this.publisher.publish(CHANNEL, JSON.stringify(event));
  }

  subscribe(handler: (event: FleetEvent) => void): () => void {
    return this.local.subscribe(handler);
  }

  deliverLocally(event: FleetEvent): void {
    this.local.publish(event);
  }

  async close(): Promise<void> {
    await this.local.close();
    this.subscriber.disconnect();
    this.publisher.disconnect();
  }
}

const PG_CHANNEL = "mdm_fleet_events";
// PostgreSQL refuses NOTIFY payloads of 8000 bytes or more.
const PG_PAYLOAD_LIMIT = 7500;
const PG_FLUSH_MS = 20;
const PG_BUFFER_LIMIT = 10_000;
const PG_RECONNECT_MS = 1000;

/**
 * PostgreSQL LISTEN/NOTIFY, for instances sharing a database but no Redis. Events are
 * batched into one NOTIFY every few milliseconds (a heartbeat's event must not cost a
 * transaction of its own). The bus only shortens delays: every command is a row the
 * delivery workers find on their own, so an event dropped while the buffer is full or the
 * listener reconnects costs latency, never a command.
 */
export class PgEventBus implements EventBus {
  readonly name = "postgresql";
  private readonly local = new LocalEventBus();
  private readonly publisher: Pool;
  private listener: Client | undefined;
  private buffer: string[] = [];
  private bufferBytes = 0;
  private flushTimer: NodeJS.Timeout | undefined;
  private closed = false;

  private constructor(
    private readonly url: string,
    private readonly onProblem: (message: string) => void,
  ) {
    this.publisher = new Pool({ connectionString: url, max: 2 });
    this.publisher.on("error", (error) => onProblem(`event bus publisher: ${error.message}`));
  }

  static async connect(url: string, onProblem: (message: string) => void = () => undefined): Promise<PgEventBus> {
    const bus = new PgEventBus(url, onProblem);
    await bus.listen();
    return bus;
  }

  private async listen(): Promise<void> {
    const listener = new Client({ connectionString: this.url });
    listener.on("notification", (message) => {
      if (message.channel !== PG_CHANNEL || !message.payload) return;
      for (const event of JSON.parse(message.payload) as FleetEvent[]) this.local.publish(event);
    });
    listener.on("error", (error) => {
      this.onProblem(`event bus listener: ${error.message}`);
      this.reconnectLater();
    });
    await listener.connect();
    await listener.query(`LISTEN ${PG_CHANNEL}`);
    this.listener = listener;
  }

  private reconnectLater(): void {
    const broken = this.listener;
    this.listener = undefined;
    broken?.end().catch(() => undefined);
    if (this.closed) return;
    setTimeout(() => {
      if (this.closed || this.listener) return;
      this.listen().catch((error: unknown) => {
        this.onProblem(`event bus reconnect: ${error instanceof Error ? error.message : String(error)}`);
        this.reconnectLater();
      });
    }, PG_RECONNECT_MS).unref();
  }

  publish(event: FleetEvent): void {
    if (this.closed) return;
    if (this.buffer.length >= PG_BUFFER_LIMIT) return;
    const text = JSON.stringify(event);
    if (this.bufferBytes + text.length + 1 > PG_PAYLOAD_LIMIT) this.flush();
    this.buffer.push(text);
    this.bufferBytes += text.length + 1;
    this.flushTimer ??= setTimeout(() => this.flush(), PG_FLUSH_MS);
  }

  async publishNow(event: FleetEvent): Promise<void> {
    if (this.closed) return;
    await this.publisher.query("SELECT pg_notify($1, $2)", [PG_CHANNEL, `[${JSON.stringify(event)}]`]);
  }

  private flush(): void {
    clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    if (this.buffer.length === 0) return;
    const payload = `[${this.buffer.join(",")}]`;
    this.buffer = [];
    this.bufferBytes = 0;
    this.publisher.query("SELECT pg_notify($1, $2)", [PG_CHANNEL, payload]).catch((error: unknown) => {
      this.onProblem(`event bus publish: ${error instanceof Error ? error.message : String(error)}`);
    });
  }

  subscribe(handler: (event: FleetEvent) => void): () => void {
    return this.local.subscribe(handler);
  }

  deliverLocally(event: FleetEvent): void {
    this.local.publish(event);
  }

  async close(): Promise<void> {
    this.flush();
    this.closed = true;
    await this.local.close();
    await this.listener?.end().catch(() => undefined);
    await this.publisher.end();
  }
}
