import { EventEmitter } from "node:events";
import Redis from "ioredis";
import type { CommandStatusChange, DeviceLiveState } from "@mdm/contracts";

/** Messages API instances exchange. With one instance they stay in-process. */
export type FleetEvent =
  /** Commands are due for delivery: every instance's worker looks. */
  | { kind: "commands_due" }
  /** Send this command over the device's socket, on whichever instance holds it. */
  | { kind: "deliver"; deviceId: string; requestId: string }
  | { kind: "device_state"; state: DeviceLiveState }
  | { kind: "command_status"; change: CommandStatusChange };

export type EventBus = {
  publish(event: FleetEvent): void;
  subscribe(handler: (event: FleetEvent) => void): () => void;
  close(): Promise<void>;
};

export class LocalEventBus implements EventBus {
  private readonly emitter = new EventEmitter().setMaxListeners(0);

  publish(event: FleetEvent): void {
    this.emitter.emit("event", event);
  }

  subscribe(handler: (event: FleetEvent) => void): () => void {
    this.emitter.on("event", handler);
    return () => this.emitter.off("event", handler);
  }

  async close(): Promise<void> {
    this.emitter.removeAllListeners();
  }
}

const CHANNEL = "mdm:fleet-events";

/** Redis pub/sub, so a command created on one instance reaches a socket held by another. */
export class RedisEventBus implements EventBus {
  private readonly publisher: Redis;
  private readonly subscriber: Redis;
  private readonly local = new LocalEventBus();

  private constructor(url: string) {
    this.publisher = new Redis(url, { maxRetriesPerRequest: 3 });
    this.subscriber = new Redis(url);
    this.subscriber.on("message", (_channel: string, message: string) => this.local.publish(JSON.parse(message) as FleetEvent));
  }

  static async connect(url: string): Promise<RedisEventBus> {
    const bus = new RedisEventBus(url);
    await bus.subscriber.subscribe(CHANNEL);
    return bus;
  }

  publish(event: FleetEvent): void {
    this.publisher.publish(CHANNEL, JSON.stringify(event)).catch(() => undefined);
  }

  subscribe(handler: (event: FleetEvent) => void): () => void {
    return this.local.subscribe(handler);
  }

  async close(): Promise<void> {
    await this.local.close();
    this.subscriber.disconnect();
    this.publisher.disconnect();
  }
}
