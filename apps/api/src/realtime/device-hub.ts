import { type DeviceServerFrame, DeviceClientFrame, Uuid, WsCloseCode } from "@mdm/contracts";
import type { WebSocket } from "ws";
import type { AppDeps } from "../deps";
import type { Command } from "../generated/prisma/client";
import { admissionOf } from "../lib/admission";
import { type GroupCommit, createGroupCommit, writeEachAlone } from "../lib/group-commit";
import { isDatabaseUnavailable } from "../db/client";
import { toHttpError } from "../lib/error-handler";
import { HttpError } from "../lib/http-error";
import { transition } from "../modules/commands/command-transitions";
import { acknowledgeCommand, canSignFor, recordActionResult, toDeviceCommand } from "../modules/commands/commands.service";
import { wakeDelivery } from "../modules/commands/delivery";
import { deviceBudget, deviceBudgetKey } from "../modules/devices/device-budget";
import { handleHeartbeat } from "../modules/devices/heartbeat";
import { DeviceRevokedError, currentTokenHash } from "../modules/devices/devices.service";
import { toLiveState } from "../modules/fleet/fleet.service";
import { pendingPolicy } from "../modules/policies/policies.service";
import { type LeasedDevice, releaseSocketLeases, renewSocketLeases, takeSocketLeases } from "./presence";

// Frames per socket per minute, counted as they arrive; well above any honest agent (a
// heartbeat a minute plus an ack and a result per command), low enough that one socket
// cannot hog an instance. Heartbeats, acks and results also spend the device's request
// budget, the same one its HTTP requests spend.
const FRAMES_PER_MINUTE = 600;
// Frames received but not yet processed. Past the first, the socket stops being read (TCP
// pushes back on the device); past the second, which only a client ignoring that can
// reach, it is closed. Either way a socket holds at most this many 64 KiB frames.
const PAUSE_AT_IN_FLIGHT = 8;
const CLOSE_AT_IN_FLIGHT = 32;
// Leases of a failed batch taken one by one, this many at once (as many as the batches' own).
const FALLBACK_CONCURRENCY = 2;

// Socket deliveries waiting for their read, at most, per instance (a bulk command may name
// 10,000 devices of one instance; past it an attempt is dropped and retried by the worker).
const DELIVERIES_QUEUED_MAX = 20_000;

type DeliverableCommand = Command & { commandMasterKeyId: string | null; commandKeyGeneration: number };

/**
 * The commands, each with its device's command key: one statement for a batch of deliveries.
 * An id that is no UUID (a malformed bus event) is left out, as unknown: it must not fail
 * the statement, and with it every other delivery of the batch.
 */
async function readDeliverableCommands({ db }: Pick<AppDeps, "db">, requestIds: string[]): Promise<DeliverableCommand[]> {
  return db.$queryRaw<DeliverableCommand[]>`
    SELECT c.*, d."commandMasterKeyId", d."commandKeyGeneration"
    FROM "Command" c JOIN "Device" d ON d.id = c."deviceId"
    WHERE c."requestId" = ANY(${requestIds.filter((id) => Uuid.safeParse(id).success)}::uuid[])`;
}

type Connection = {
  socket: WebSocket;
  /** The token this socket was opened with: once a rotation replaces it, the socket closes. */
  tokenHash: string;
  alive: boolean;
  frames: number;
  windowStart: number;
  inFlight: number;
  /** Frames are handled one after another, in the order the device sent them (an ack before its result). */
  queue: Promise<void>;
};

/**
 * The device sockets this instance holds, with their presence leases. Carries commands the
 * delivery worker (of any instance: the bus brings them here) sends to its devices, and
 * hands their frames to the same services as the HTTP routes.
 */
export class DeviceHub {
  private readonly connections = new Map<string, Connection>();
  private readonly unsubscribe: () => void;
  private readonly leaseTimer: NodeJS.Timeout;
  private closed = false;

  // Sockets closing together give up their leases in one statement, which also reads the
  // rows dashboards are told about: 5,000 sockets dropped at once (a site's network, a load
  // balancer restarting) were 10,000 queries queued on the pool, and every heartbeat and
  // worker waited seconds behind them (bench/RESULTS.md). A device that reconnected here
  // meanwhile keeps its lease. Bounded by the sockets an instance may hold.
  private readonly releases: GroupCommit<string, undefined>;
  private readonly leases: GroupCommit<string, LeasedDevice | undefined>;
  // Commands the delivery workers route here are read, with their device's command key, in
  // one statement per batch: a bulk command brings thousands within a second, and two reads
  // each queued them on the pool past ADMISSION_MAX_DATABASE_QUEUE, so the instance shed
  // every request (the progress polls, heartbeats) for the length of the fan-out.
  private readonly deliveries: GroupCommit<string, DeliverableCommand | undefined>;

  constructor(private readonly deps: AppDeps) {
    // Sockets opening together (devices reconnecting after an instance restart or a network
    // outage) take their leases in one statement too, which also makes their waiting
    // commands due and reads what the hello, dashboards and the policy need: four queries
    // per socket before.
    this.leases = createGroupCommit<string, LeasedDevice | undefined>({
      maxBatch: 1000,
      maxWaitMs: 5,
      maxQueued: deps.env.HTTP_MAX_CONNECTIONS,
      maxRunning: 2,
      run: async (deviceIds) => {
        try {
          const byId = new Map((await takeSocketLeases(this.deps, deviceIds)).map((device) => [device.id, device]));
          return deviceIds.map((id) => byId.get(id));
        } catch (error) {
          // One device's trouble (a lock timeout, a deadlock) must not close a thousand
          // sockets: the batch's leases are taken one by one, each answered by its own.
          if (deviceIds.length === 1 || isDatabaseUnavailable(error)) throw error;
          return writeEachAlone(deviceIds, FALLBACK_CONCURRENCY, async (id) => (await takeSocketLeases(this.deps, [id]))[0]);
        }
      },
      // Answered as a database out of reach is: the device is told to come back shortly.
      full: () => new HttpError("service_unavailable", "too many socket opens waiting to be written"),
    });
    this.releases = createGroupCommit<string, undefined>({
      maxBatch: 1000,
      maxWaitMs: 5,
      maxQueued: deps.env.HTTP_MAX_CONNECTIONS,
      maxRunning: 1,
      run: async (deviceIds) => {
        const released = await releaseSocketLeases(
          this.deps,
          deviceIds.filter((id) => !this.connections.has(id)),
        );
        for (const device of released) this.deps.bus.publish({ kind: "device_state", state: toLiveState(device) });
        return deviceIds.map(() => undefined);
      },
      full: () => new Error("too many socket closes waiting to be written"),
    });
    this.deliveries = createGroupCommit<string, DeliverableCommand | undefined>({
      maxBatch: 1000,
      maxWaitMs: 2,
      maxQueued: DELIVERIES_QUEUED_MAX,
      maxRunning: 1,
      run: async (requestIds) => {
        const byId = new Map((await readDeliverableCommands(deps, requestIds)).map((row) => [row.requestId, row]));
        // PostgreSQL answers ids in lower case; the contract's UUIDs may come in upper case.
        return requestIds.map((requestId) => byId.get(requestId.toLowerCase()));
      },
      // The command keeps its next attempt time: the delivery worker tries it again then.
      full: () => new Error("too many socket deliveries waiting to be read"),
    });
    // A third of the lease: two renewals may fail before a live socket's lease lapses.
    this.leaseTimer = setInterval(() => void this.renewLeases(), (deps.env.WS_LEASE_SECONDS * 1000) / 3);
    this.leaseTimer.unref();
    this.unsubscribe = deps.bus.subscribe((event) => {
      if (event.kind === "policy_changed" && this.connections.has(event.deviceId)) {
        this.sendPolicy(event.deviceId).catch((error: unknown) =>
          deps.logger.warn("websocket policy delivery failed", { deviceId: event.deviceId, message: error instanceof Error ? error.message : String(error) }),
        );
        return;
      }
      if (event.kind === "device_token_revoked") {
        if (event.reason !== "rotated") this.connections.get(event.deviceId)?.socket.close(WsCloseCode.retired, `device ${event.reason}`);
        else
          this.closeReplacedToken(event.deviceId).catch((error: unknown) =>
            deps.logger.warn("closing a socket of a rotated token failed", {
              deviceId: event.deviceId,
              message: error instanceof Error ? error.message : String(error),
            }),
          );
        return;
      }
      if (event.kind !== "deliver" || !this.connections.has(event.deviceId)) return;
      // A failed attempt must not take the process down; the command keeps its next attempt time.
      this.deliver(event.deviceId, event.requestId).catch((error: unknown) =>
        deps.logger.error("websocket delivery failed", {
          deviceId: event.deviceId,
          requestId: event.requestId,
          message: error instanceof Error ? error.message : String(error),
        }),
      );
    });
  }

  get size(): number {
    return this.connections.size;
  }

  /** Frames received and not yet processed, over all sockets: bounded by CLOSE_AT_IN_FLIGHT each. */
  get framesInFlight(): number {
    let total = 0;
    for (const connection of this.connections.values()) total += connection.inFlight;
    return total;
  }

  isConnected(deviceId: string): boolean {
    return this.connections.has(deviceId);
  }

  /**
   * A rotation completed: a socket opened with the old token closes (4003), or whoever holds
   * a leaked old token would keep its socket, and the commands sent on it, after the re-key.
   * The device itself reconnects with its new token.
   */
  private async closeReplacedToken(deviceId: string): Promise<void> {
    const connection = this.connections.get(deviceId);
    if (!connection) return;
    const current = await currentTokenHash(this.deps, deviceId);
    if (this.connections.get(deviceId) === connection && connection.tokenHash !== current)
      connection.socket.close(WsCloseCode.unauthorized, "token rotated: reconnect with the new token");
  }

  async connect(deviceId: string, socket: WebSocket, tokenHash: string): Promise<void> {
    const { deps } = this;
    // An upgrade that was still authenticating when the instance began to shut down: send
    // the device elsewhere now, or its socket would hold the drain until the grace period ends.
    if (this.closed) {
      socket.close(WsCloseCode.goingAway, "server shutting down");
      return;
    }
    const previous = this.connections.get(deviceId);
    // Listeners first: a frame may arrive while the hello and pending commands go out.
    const connection: Connection = { socket, tokenHash, alive: true, frames: 0, windowStart: Date.now(), inFlight: 0, queue: Promise.resolve() };
    this.connections.set(deviceId, connection);
    previous?.socket.close(WsCloseCode.replaced, "replaced by a newer connection");
    socket.on("pong", () => (connection.alive = true));
    socket.on("message", (data, isBinary) => {
      if (!this.admit(connection)) return;
      const text = isBinary ? undefined : data.toString();
      connection.queue = connection.queue
        .then(() => this.onMessage(deviceId, connection, text))
        .finally(() => {
          connection.inFlight--;
          if (connection.inFlight < PAUSE_AT_IN_FLIGHT && socket.isPaused) socket.resume();
        });
    });
    socket.on("close", () => void this.onClose(deviceId, connection));
    // ws closes the socket itself after an error, with the code that says why (1009 for a
    // frame over the size limit); terminating here would cut that close frame off (1006).
    socket.on("error", () => undefined);

    const leased = await this.leases.submit(deviceId, deviceId);
    if (!leased) {
      socket.close(WsCloseCode.retired, "device retired");
      return;
    }
    // Closed while the lease was being written: its close found nothing to release.
    if (this.connections.get(deviceId) !== connection) {
      if (!this.connections.has(deviceId)) await releaseSocketLeases(deps, [deviceId]);
      return;
    }
    deps.logger.info("device connected", { deviceId });
    deps.bus.publish({ kind: "device_state", state: toLiveState(leased) });
    this.send(socket, {
      type: "hello",
      deviceId,
      serverTime: deps.clock.now().toISOString(),
      heartbeatIntervalSeconds: deps.env.HEARTBEAT_INTERVAL_SECONDS,
    });
    // What waited for this device goes out now, through the delivery worker (the lease's
    // statement made it due), and its effective policy if it has not applied it yet.
    if (leased.dueCommands > 0) wakeDelivery(deps);
    const policy = pendingPolicy(leased);
    if (policy) this.send(socket, { type: "policy", policy });
  }

  /** Sends the device its effective policy if it has not reported applying it. */
  private async sendPolicy(deviceId: string): Promise<void> {
    const device = await this.deps.db.device.findUnique({
      where: { id: deviceId },
      select: { policyDesired: true, policyDesiredHash: true, policyAppliedHash: true },
    });
    const policy = device && pendingPolicy(device);
    const connection = this.connections.get(deviceId);
    if (policy && connection) this.send(connection.socket, { type: "policy", policy });
  }

  /** Renews this instance's socket leases (every third of WS_LEASE_SECONDS, on a timer). */
  async renewLeases(): Promise<void> {
    try {
      const ids = [...this.connections.keys()];
      // Retired or deleted, and the revocation event never came (the bus was down, or the
      // retiring instance died after its commit): the socket goes now, as the event would do.
      for (const id of await renewSocketLeases(this.deps, ids)) this.connections.get(id)?.socket.close(WsCloseCode.retired, "device retired");
      // A device that disconnected while the renewal ran may just have had its lease taken
      // back after its close released it: release it again.
      await releaseSocketLeases(
        this.deps,
        ids.filter((id) => !this.connections.has(id)),
      );
    } catch (error) {
      this.deps.logger.warn("socket lease renewal failed", { message: error instanceof Error ? error.message : String(error) });
    }
  }

  /** Sends one command if its device is here and it still waits for delivery. */
  private async deliver(deviceId: string, requestId: string): Promise<void> {
    const connection = this.connections.get(deviceId);
    if (!connection) return;
    const now = this.deps.clock.now();
    const command = await this.deliveries.submit(undefined, requestId);
    if (!command || command.deviceId !== deviceId || command.expiresAt <= now) return;
    if (command.status !== "queued" && command.status !== "sent") return;
    const key = { masterKeyId: command.commandMasterKeyId, generation: command.commandKeyGeneration };
    if (!canSignFor(this.deps, deviceId, key)) return;
    const signed = await toDeviceCommand(this.deps.env, command, key);
    // Recorded before it goes out, so the device's ack cannot overtake it.
    await transition(this.deps, requestId, ["queued"], "sent", now, "websocket", { sentAt: now });
    this.send(connection.socket, { type: "command", command: signed });
  }

  /** Counts a frame as it arrives, before anything is queued; false when the socket must go. */
  private admit(connection: Connection): boolean {
    const { socket } = connection;
    if (socket.readyState !== socket.OPEN) return false;
    if (Date.now() - connection.windowStart > 60_000) {
      connection.frames = 0;
      connection.windowStart = Date.now();
    }
    if (++connection.frames > FRAMES_PER_MINUTE) {
      socket.close(WsCloseCode.policyViolation, "too many frames");
      return false;
    }
    if (connection.inFlight >= CLOSE_AT_IN_FLIGHT) {
      socket.close(WsCloseCode.tryAgainLater, "too many frames in flight");
      return false;
    }
    if (++connection.inFlight >= PAUSE_AT_IN_FLIGHT) socket.pause();
    return true;
  }

  private async onMessage(deviceId: string, connection: Connection, text: string | undefined): Promise<void> {
    const { socket } = connection;
    if (socket.readyState !== socket.OPEN) return;
    const frame = text === undefined ? undefined : parseFrame(text);
    if (!frame) return socket.close(WsCloseCode.policyViolation, "frame does not match the protocol");
    // Overloaded: a heartbeat is refused before any work (the device sends the next one on
    // schedule); acks and results are always processed, they finish work already done.
    const overloaded = frame.type === "heartbeat" ? admissionOf(this.deps).overloaded() : undefined;
    if (overloaded) {
      this.deps.metrics.shed.inc({ reason: "websocket_heartbeat" });
      this.send(socket, { type: "error", code: "service_unavailable", message: `This instance is overloaded (${overloaded}); heartbeat not recorded` });
      return;
    }
    const budget = await deviceBudget(this.deps).consume(deviceBudgetKey(deviceId));
    if (!budget.allowed) {
      const requestId = frame.type === "command_ack" ? frame.requestId : frame.type === "command_result" ? frame.result.requestId : undefined;
      this.send(socket, {
        type: "error",
        code: "rate_limited",
        message: `Over this device's request budget (shared with its HTTP requests); retry in ${budget.retryAfterSeconds} s`,
        ...(requestId ? { requestId } : {}),
      });
      return;
    }
    try {
      switch (frame.type) {
        case "heartbeat": {
          const answer = await handleHeartbeat(this.deps, deviceId, frame.heartbeat, "websocket");
          this.send(socket, {
            type: "heartbeat_ok",
            serverTime: answer.serverTime,
            ...(answer.ignoredPolicyFailures && { ignoredPolicyFailures: answer.ignoredPolicyFailures }),
          });
          for (const command of answer.commands) this.send(socket, { type: "command", command });
          if (answer.policy) this.send(socket, { type: "policy", policy: answer.policy });
          return;
        }
        case "command_ack":
          await acknowledgeCommand(this.deps, deviceId, frame.requestId);
          return;
        case "command_result": {
          const outcome = await recordActionResult(this.deps, deviceId, frame.result);
          this.send(socket, { type: "result_ok", ...outcome });
          return;
        }
      }
    } catch (error) {
      // The device was retired (or deleted) since this socket opened, and this instance
      // missed the revocation event: the frame changed nothing, and the socket goes.
      if (error instanceof DeviceRevokedError) return socket.close(WsCloseCode.retired, "device retired");
      const requestId = frame.type === "command_ack" ? frame.requestId : frame.type === "command_result" ? frame.result.requestId : undefined;
      // Known errors (a database outage among them: service_unavailable) tell the device what to do.
      const known = toHttpError(error);
      if (known) {
        this.send(socket, { type: "error", code: known.code, message: known.message, ...(requestId ? { requestId } : {}) });
        return;
      }
      this.deps.logger.error("device frame failed", { deviceId, type: frame.type, message: error instanceof Error ? error.message : String(error) });
      this.send(socket, { type: "error", code: "internal_error", message: "The server could not process this frame", ...(requestId ? { requestId } : {}) });
    }
  }

  private async onClose(deviceId: string, connection: Connection): Promise<void> {
    if (this.connections.get(deviceId) !== connection) return;
    this.connections.delete(deviceId);
    this.deps.logger.info("device disconnected", { deviceId });
    // If this fails (or too many closes wait), the lease lapses by itself.
    await this.releases.submit(deviceId, deviceId).catch(() => undefined);
  }

  private send(socket: WebSocket, frame: DeviceServerFrame): void {
    if (socket.readyState === socket.OPEN) socket.send(JSON.stringify(frame));
  }

  /** Terminates sockets that did not answer the previous ping; pings the others. */
  pingAll(): void {
    for (const connection of this.connections.values()) {
      if (!connection.alive) {
        connection.socket.terminate();
        continue;
      }
      connection.alive = false;
      connection.socket.ping();
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    this.unsubscribe();
    clearInterval(this.leaseTimer);
    const ids = [...this.connections.keys()];
    for (const connection of this.connections.values()) connection.socket.close(WsCloseCode.goingAway, "server shutting down");
    this.connections.clear();
    await this.leases.drain();
    await this.releases.drain();
    await this.deliveries.drain();
    await releaseSocketLeases(this.deps, ids).catch(() => undefined);
  }
}

function parseFrame(text: string): DeviceClientFrame | undefined {
  try {
    const parsed = DeviceClientFrame.safeParse(JSON.parse(text));
    return parsed.success ? parsed.data : undefined;
  } catch {
    return undefined;
  }
}
