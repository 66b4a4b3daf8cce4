import type { CommandStatusChange, DashboardServerFrame, DeviceLiveState } from "@mdm/contracts";
import { DashboardClientFrame, WsCloseCode } from "@mdm/contracts";
import { performance } from "node:perf_hooks";
import type { WebSocket } from "ws";
import type { AppDeps } from "../deps";
import { liveSessionIds } from "../modules/auth/session";
import { WATCH_REPEAT_MS } from "./dashboard-watch";

/** Whose socket it is: checked again every WS_SESSION_CHECK_SECONDS while it is open. */
export type DashboardSession = { userId: string; sessionId: string };

// One frame may carry at most this many command changes; the rest go in the next one.
const MAX_COMMANDS_PER_FRAME = 1000;
// A browser that cannot keep up is skipped until its buffer drains; latest state still wins.
const MAX_BUFFERED_BYTES = 1 << 20;
const WATCH_SAY_TIMEOUT_MS = 1_000;

type Client = {
  socket: WebSocket;
  session: DashboardSession;
  alive: boolean;
  /** The hello went out: updates follow it, never come before it. */
  greeted: boolean;
  devices: Map<string, DeviceLiveState>;
  commands: Map<string, CommandStatusChange>;
};

/**
 * Streams fleet changes to dashboards, coalesced: each client gets at most one frame per
 * flush interval, with the latest state of each changed device and each command's latest
 * status. A fleet of 100,000 devices heartbeating does not flood a browser.
 */
export class DashboardHub {
  private readonly clients = new Set<Client>();
  private readonly timer: NodeJS.Timeout;
  private readonly sessionTimer: NodeJS.Timeout;
  private readonly watchTimer: NodeJS.Timeout;
  private readonly unsubscribe: () => void;
  /** When the bus last took the word that dashboards are open here (performance.now()), and the word on its way. */
  private watchingSaidAt = Number.NEGATIVE_INFINITY;
  private watchingSaying: Promise<void> | undefined;

  constructor(private readonly deps: AppDeps) {
    this.unsubscribe = deps.bus.subscribe((event) => {
      if (this.clients.size === 0) return;
      for (const client of this.clients) {
        if (event.kind === "device_state") client.devices.set(event.state.deviceId, event.state);
        if (event.kind === "command_status") client.commands.set(event.change.requestId, event.change);
      }
    });
    this.timer = setInterval(() => this.flush(), deps.env.DASHBOARD_FLUSH_MS);
    this.timer.unref();
    this.watchTimer = setInterval(() => {
      if (this.clients.size > 0) void this.sayWatching();
    }, WATCH_REPEAT_MS);
    this.watchTimer.unref();
    this.sessionTimer = setInterval(() => {
      this.closeEndedSessions().catch((error: unknown) =>
        deps.logger.error("dashboard session check failed", { message: error instanceof Error ? error.message : String(error) }),
      );
    }, deps.env.WS_SESSION_CHECK_SECONDS * 1000);
    this.sessionTimer.unref();
  }

  get size(): number {
    return this.clients.size;
  }

  /** Open sockets of this user on this instance. */
  socketsOf(userId: string): number {
    let count = 0;
    for (const client of this.clients) if (client.session.userId === userId) count++;
    return count;
  }

  add(socket: WebSocket, session: DashboardSession): void {
    const client: Client = { socket, session, alive: true, greeted: false, devices: new Map(), commands: new Map() };
    this.clients.add(client);
    socket.on("pong", () => (client.alive = true));
    socket.on("message", (data) => {
      // Dashboards only listen; anything but a ping breaks the protocol.
      let valid = false;
      try {
        valid = DashboardClientFrame.safeParse(JSON.parse(data.toString())).success;
      } catch {
        valid = false;
      }
      if (!valid) socket.close(WsCloseCode.policyViolation, "frame does not match the protocol");
    });
    socket.on("close", () => this.clients.delete(client));
    // ws closes the socket itself after an error, with the code that says why (1009 for a
    // frame over the size limit); terminating here would cut that close frame off (1006).
    socket.on("error", () => undefined);
    // Heartbeats' device states go on the bus only while a dashboard is open somewhere
    // (DashboardWatch): the hello waits until the bus has taken the word, at most a second.
    void this.sayWatching().finally(() => {
      this.send(socket, { type: "hello", serverTime: this.deps.clock.now().toISOString(), flushIntervalMs: this.deps.env.DASHBOARD_FLUSH_MS });
      client.greeted = true;
    });
  }

  /**
   * Tells every instance dashboards are open here; resolves once the bus took the word, or
   * after WATCH_SAY_TIMEOUT_MS (a bus reconnecting): a hello waits no longer. Dashboards
   * connecting together (an instance died, its dashboards came here) share one word, and
   * one said within the last WATCH_SAY_TIMEOUT_MS still stands.
   */
  private sayWatching(): Promise<void> {
    this.deps.dashboards.heard();
    if (performance.now() - this.watchingSaidAt < WATCH_SAY_TIMEOUT_MS) return Promise.resolve();
    this.watchingSaying ??= this.deps.bus
      .publishNow({ kind: "dashboards_watching" })
      .then(
        () => {
          this.watchingSaidAt = performance.now();
        },
        (error: unknown) => {
          this.deps.logger.warn("could not tell the other instances a dashboard is open", { message: error instanceof Error ? error.message : String(error) });
        },
      )
      .finally(() => {
        this.watchingSaying = undefined;
      });
    return Promise.race([this.watchingSaying, new Promise<void>((resolve) => setTimeout(resolve, WATCH_SAY_TIMEOUT_MS).unref())]);
  }

  flush(): void {
    for (const client of this.clients) {
      if (!client.greeted || (client.devices.size === 0 && client.commands.size === 0)) continue;
      if (client.socket.bufferedAmount > MAX_BUFFERED_BYTES) continue;
      const commands = [...client.commands.values()].slice(0, MAX_COMMANDS_PER_FRAME);
      for (const change of commands) client.commands.delete(change.requestId);
      this.send(client.socket, { type: "update", devices: [...client.devices.values()], commands });
      client.devices.clear();
    }
  }

  /**
   * Closes, with 4003, the sockets whose session ended since they opened: signed out,
   * expired, revoked by a password change or reuse detection, or the user disabled.
   */
  async closeEndedSessions(): Promise<number> {
    if (this.clients.size === 0) return 0;
    const live = await liveSessionIds(this.deps, [...new Set([...this.clients].map((client) => client.session.sessionId))]);
    let closed = 0;
    for (const client of this.clients) {
      if (live.has(client.session.sessionId)) continue;
      this.clients.delete(client);
      client.socket.close(WsCloseCode.unauthorized, "session ended");
      closed++;
    }
    return closed;
  }

  pingAll(): void {
    for (const client of this.clients) {
      if (!client.alive) {
        client.socket.terminate();
        continue;
      }
      client.alive = false;
      client.socket.ping();
    }
  }

  private send(socket: WebSocket, frame: DashboardServerFrame): void {
    if (socket.readyState === socket.OPEN) socket.send(JSON.stringify(frame));
  }

  close(): void {
    clearInterval(this.timer);
    clearInterval(this.sessionTimer);
    clearInterval(this.watchTimer);
    this.unsubscribe();
    for (const client of this.clients) client.socket.close(WsCloseCode.goingAway, "server shutting down");
    this.clients.clear();
  }
}
