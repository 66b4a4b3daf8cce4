import { createHash } from "node:crypto";
import { EventEmitter } from "node:events";
import {
  type ActionResultRequest,
  ActionResultResponse,
  BEARER_PROTOCOL_PREFIX,
  DEVICE_WS_PROTOCOL,
  type DeviceClientFrame,
  type DeviceCommand,
  type DeviceFacts,
  type DevicePolicy,
  DeviceServerFrame,
  ErrorBody,
  HeartbeatResponse,
  type PolicyFailure,
  policySettingEntries,
  RegisterResponse,
  RotationSecrets,
  WsCloseCode,
  openWithCommandKey,
  verifyCommandSignature,
} from "@mdm/contracts";
import WebSocket from "ws";
import { type Execution, type LostMode, type Position, executeCommand } from "./execute";
import { ApiError, requestJson } from "./http";
import { type DeviceState, KIOSK_APP, type Random, drift, initialState, toHeartbeat } from "./telemetry";

export const SIMULATOR_AGENT_VERSION = "sim-0.1.0";

export type DeviceOptions = {
  /** Heartbeat loop interval; defaults to the interval the server asked for at registration. */
  intervalMs?: number;
  /** Facts sent at enrollment (model, fcmToken...). A simulated device has no FCM token unless given one. */
  facts?: DeviceFacts;
  /** WebSocket path; `/ws/<deviceId>` is the legacy path. */
  wsPath?: string;
  /** How the token rides on the upgrade: a `bearer.<token>` subprotocol (browsers can) or a header. */
  auth?: "subprotocol" | "header";
  reconnectBaseMs?: number;
  reconnectMaxMs?: number;
  /** Longest wait between heartbeat attempts while they keep failing (default 5 minutes). */
  retryMaxMs?: number;
  /**
   * Fetch install_app downloads from this origin instead of the one their URL names: the
   * server's PUBLIC_API_URL may be a TLS proxy this machine cannot reach (a local test run).
   */
  downloadOrigin?: string;
  /** Test knob: flip a byte of every download, as a tampering network would. */
  tamperDownloads?: boolean;
  /** Test knob: silently drop the first N command_ack frames and the results that follow them. */
  dropAcks?: number;
  /** Where `locate` says the device is (default DEFAULT_POSITION). */
  position?: Position;
  random?: Random;
  onCommand?: (received: ReceivedCommand) => void;
  /** Policy settings (paths such as `restrictions.camera`) this device refuses to apply, as a device without the feature would. */
  refuseSettings?: string[];
};

export type ReceivedCommand = { command: DeviceCommand; channel: "websocket" | "http"; at: number };

export type DeviceStats = {
  heartbeatsSent: number;
  /** Heartbeats the server answered with success (HTTP 2xx or a `heartbeat_ok` frame). */
  heartbeatsAcknowledged: number;
  heartbeatsFailed: number;
  commandsReceived: number;
  /** Commands run to a `succeeded` result. */
  commandsExecuted: number;
  /** Commands refused as expired or run to a `failed` result. */
  commandsFailed: number;
  /** Commands whose signature did not verify: dropped without a report. */
  commandsDropped: number;
  reconnects: number;
  errors: number;
};

/** The server refused the WebSocket upgrade with an HTTP error: no socket was opened. */
export class UpgradeRefusedError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    /** Seconds, from `Retry-After` on a 429 or 503. */
    readonly retryAfterSeconds?: number,
  ) {
    super(`WebSocket upgrade refused: ${status} ${code}: ${message}`);
    this.name = "UpgradeRefusedError";
  }
}

type DeviceEvents = {
  command: [ReceivedCommand];
  /** A result as reported to the server (dropped ones are not). */
  result: [ActionResultRequest];
  connected: [];
  /** The server acknowledged a heartbeat: it is recorded. `deviceTime` identifies it. */
  heartbeat: [{ deviceTime: string; channel: "websocket" | "http" }];
  /** The socket dropped or the server closed it (not emitted for `disconnect()` or a reboot). */
  disconnected: [{ code: number; reason: string; wasLive: boolean }];
  /** Something went wrong that the device survives: a server error frame, a failed report... */
  problem: [string];
  /** An effective policy was applied (`failures`: the settings refused). */
  policy: [{ hash: string; failures: PolicyFailure[] }];
};

// Closes after which reconnecting would be wrong: another connection took our place, or
// the token is no longer valid, or the device was retired.
const FINAL_CLOSE_CODES = new Set<number>([WsCloseCode.replaced, WsCloseCode.unauthorized, WsCloseCode.retired]);
/** Acks and results kept for a server that could not take them, at most. */
const MAX_UNREPORTED = 1000;

/**
 * One simulated Android device: a real client of the public API built on the contracts.
 * It enrolls, holds a WebSocket (reconnecting with backoff), heartbeats with drifting
 * telemetry, and executes the commands it receives exactly once per requestId, after
 * verifying their signature and expiry.
 */
export class SimulatedDevice extends EventEmitter<DeviceEvents> {
  /** Times each command ran on this device: a re-delivered command must never run twice. */
  readonly executions = new Map<string, number>();
  readonly stats: DeviceStats = {
    heartbeatsSent: 0,
    heartbeatsAcknowledged: 0,
    heartbeatsFailed: 0,
    commandsReceived: 0,
    commandsExecuted: 0,
    commandsFailed: 0,
    commandsDropped: 0,
    reconnects: 0,
    errors: 0,
  };
  state: DeviceState;
  /** What the lock screen shows while in lost mode; null otherwise. */
  lostMode: LostMode | null = null;
  /** Erased by `wipe` or `factory_reset`: no token any more, until `reenroll()` with a new enrollment token. */
  wiped = false;

  private readonly random: Random;
  private readonly receipts = new Map<string, ReceivedCommand[]>();
  private readonly results = new Map<string, ActionResultRequest>();
  private readonly inFlight = new Set<string>();
  private readonly droppedResults = new Set<string>();
  /**
   * Acks and results the server could not take for now (429, 503, no answer), by requestId:
   * sent again once a heartbeat is answered. Otherwise an acknowledged command whose result
   * met a busy server would expire on the server although it ran here.
   */
  private readonly unreported = new Map<string, ActionResultRequest>();
  /**
   * Results sent on the live socket and not yet answered by `result_ok`, by requestId. If
   * that socket closes first (an instance draining, a network drop), the frame may never
   * have been processed: they join `unreported` and go again on the next connection.
   */
  private readonly unconfirmed = new Map<string, ActionResultRequest>();
  private flushingUnreported = false;
  private acksToDrop: number;
  private socket: WebSocket | undefined;
  /** The socket that said hello: the one frames go out on. */
  private live: WebSocket | undefined;
  private shouldReconnect = false;
  private reconnectAttempts = 0;
  /** Retry-After of the last refused upgrade, honoured by the next reconnect. */
  private reconnectNotBeforeMs = 0;
  /** Heartbeats sent on the live socket and not yet answered, oldest first (frames are answered in order). */
  private unanswered: string[] = [];
  /** Heartbeats refused or failed in a row, and the server's Retry-After of the last: they set the next attempt's delay. */
  private heartbeatFailures = 0;
  private heartbeatRetryAfterMs = 0;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private connecting: Promise<void> | undefined;
  private loopTimer: NodeJS.Timeout | undefined;
  private running = false;
  private lastDriftAt: number;
  /** The effective policy last applied, and the settings of it this device refused. */
  private applied: { policy: DevicePolicy; failures: PolicyFailure[] } | undefined;

  constructor(
    readonly baseUrl: string,
    public registration: RegisterResponse,
    private readonly options: DeviceOptions = {},
  ) {
    super();
    this.random = options.random ?? Math.random;
    this.acksToDrop = options.dropAcks ?? 0;
    this.lastDriftAt = Date.now();
    this.state = initialState(this.random, this.lastDriftAt);
  }

  /** Enrolls a new device with `POST /v1/register`. */
  static async enroll(baseUrl: string, enrollmentToken: string, options: DeviceOptions = {}): Promise<SimulatedDevice> {
    const random = options.random ?? Math.random;
    const facts: DeviceFacts = {
      model: "Simulated Kiosk",
      manufacturer: "MDM Simulator",
      osVersion: "14",
      sdkInt: 34,
      appVersion: SIMULATOR_AGENT_VERSION,
      serialNumber: `SIM-${Math.floor(random() * 36 ** 8)
        .toString(36)
        .toUpperCase()
        .padStart(8, "0")}`,
      ...options.facts,
    };
    const registration = await requestJson(
      baseUrl,
      { method: "POST", path: "/v1/register", body: JSON.stringify({ enrollmentToken, device: facts }) },
      RegisterResponse,
    );
    return new SimulatedDevice(baseUrl, registration, options);
  }

  get deviceId(): string {
    return this.registration.deviceId;
  }

  /**
   * Enrolls again after a wipe, as a new device: an erased device kept no token, so it needs
   * an enrollment token, and a used single-use one is refused by the server.
   */
  async reenroll(enrollmentToken: string): Promise<void> {
    const facts: DeviceFacts = {
      model: "Simulated Kiosk",
      manufacturer: "MDM Simulator",
      osVersion: "14",
      sdkInt: 34,
      appVersion: SIMULATOR_AGENT_VERSION,
      ...this.options.facts,
    };
    this.registration = await requestJson(
      this.baseUrl,
      { method: "POST", path: "/v1/register", body: JSON.stringify({ enrollmentToken, device: facts }) },
      RegisterResponse,
    );
    this.wiped = false;
  }

  /**
   * Opens a rotation's secrets with the current command key and swaps token and key: from
   * now on requests carry the new token and commands verify with the new key. The server
   * completes the rotation (and drops the old token) only when it first sees the new one,
   * so the socket, opened with the old token, is opened again with the new one.
   */
  private async takeNewKeys(execution: Execution, sealed: string): Promise<Execution> {
    try {
      const secrets = RotationSecrets.parse(JSON.parse(await openWithCommandKey(this.registration.commandKey, sealed)));
      this.registration = { ...this.registration, ...secrets };
      return execution;
    } catch (error) {
      return {
        apps: execution.apps,
        outcome: { status: "failed", error: `cannot open the new keys: ${error instanceof Error ? error.message : String(error)}` },
      };
    }
  }

  /** Erases the device: state, command memory and enrollment. */
  private async erase(): Promise<void> {
    await this.stop();
    this.state = initialState(this.random, Date.now());
    this.lostMode = null;
    this.results.clear();
    this.executions.clear();
    this.wiped = true;
  }

  get connected(): boolean {
    return this.live !== undefined && this.live.readyState === WebSocket.OPEN;
  }

  get intervalMs(): number {
    return this.options.intervalMs ?? this.registration.heartbeatIntervalSeconds * 1000;
  }

  // ---- Connection -------------------------------------------------------------------

  /**
   * Opens the WebSocket and resolves once the server said hello. From then on, a dropped
   * socket is reopened with backoff until `disconnect()` or `stop()`. A refused upgrade
   * rejects with `UpgradeRefusedError`.
   */
  async connect(): Promise<void> {
    if (this.connected) return;
    if (this.connecting) return this.connecting;
    clearTimeout(this.reconnectTimer);
    this.shouldReconnect = true;
    this.connecting = this.open(false).finally(() => (this.connecting = undefined));
    try {
      await this.connecting;
    } catch (error) {
      this.shouldReconnect = false;
      throw error;
    }
  }

  /** Closes the socket (code 1000) and stays disconnected. */
  async disconnect(): Promise<void> {
    this.shouldReconnect = false;
    clearTimeout(this.reconnectTimer);
    const socket = this.socket;
    this.socket = undefined;
    this.live = undefined;
    if (socket) await closeSocket(socket, WsCloseCode.normal, "disconnect");
  }

  /** Test knob: sends text as is, e.g. a frame the contract refuses. */
  sendRaw(text: string): void {
    if (!this.socket || this.socket.readyState !== WebSocket.OPEN) throw new Error("not connected");
    this.socket.send(text);
  }

  private wsUrl(): string {
    const url = new URL(this.options.wsPath ?? "/ws/devices", this.baseUrl);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    return url.toString();
  }

  private open(isReconnect: boolean): Promise<void> {
    return new Promise((resolve, reject) => {
      const token = this.registration.deviceToken;
      const viaHeader = this.options.auth === "header";
      const protocols = viaHeader ? [DEVICE_WS_PROTOCOL] : [DEVICE_WS_PROTOCOL, `${BEARER_PROTOCOL_PREFIX}${token}`];
      const socket = new WebSocket(this.wsUrl(), protocols, {
        handshakeTimeout: 10_000,
        ...(viaHeader ? { headers: { Authorization: `Bearer ${token}` } } : {}),
      });
      this.socket = socket;
      let settled = false;
      let refused: UpgradeRefusedError | undefined;
      const settle = (error?: Error) => {
        if (settled) return;
        settled = true;
        if (error) reject(error);
        else resolve();
      };

      socket.on("unexpected-response", (_req, res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () => {
          const body = ErrorBody.safeParse(safeJson(Buffer.concat(chunks).toString("utf8")));
          const retryAfter = Number(res.headers["retry-after"]);
          refused = new UpgradeRefusedError(
            res.statusCode ?? 0,
            body.success ? body.data.error.code : "unexpected_response",
            body.success ? body.data.error.message : "no error body",
            Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter : undefined,
          );
          this.reconnectNotBeforeMs = (refused.retryAfterSeconds ?? 0) * 1000;
          settle(refused);
          socket.terminate();
        });
      });
      socket.on("message", (data, isBinary) => {
        const frame = isBinary ? undefined : DeviceServerFrame.safeParse(safeJson(data.toString()));
        if (!frame?.success) {
          this.noteProblem("server sent a frame the contract refuses");
          socket.close(WsCloseCode.policyViolation, "frame does not match the protocol");
          return;
        }
        if (frame.data.type === "hello") {
          this.live = socket;
          this.unanswered = [];
          this.reconnectAttempts = 0;
          this.reconnectNotBeforeMs = 0;
          settle();
          this.emit("connected");
          // The server took our socket, so it takes requests: what it missed goes now.
          this.flushUnreported();
          return;
        }
        if (this.live === socket) this.onHeartbeatAnswer(frame.data);
        void this.onFrame(frame.data);
      });
      socket.on("error", (error) => {
        if (!settled) settle(refused ?? error);
      });
      socket.on("close", (code, reasonBuffer) => {
        const reason = reasonBuffer.toString();
        settle(refused ?? new Error(`WebSocket closed before hello (${code}${reason ? ` ${reason}` : ""})`));
        const wasLive = this.live === socket;
        if (wasLive) {
          this.live = undefined;
          for (const result of this.unconfirmed.values()) this.holdUnreported(result);
          this.unconfirmed.clear();
        }
        // `wasLive`: the socket had opened (hello received); otherwise a connect attempt failed.
        if (wasLive || this.socket === socket) this.emit("disconnected", { code, reason, wasLive });
        // Replaced on purpose (disconnect, reboot): whoever did it decides what comes next.
        if (this.socket !== socket) return;
        this.socket = undefined;
        const fatal = FINAL_CLOSE_CODES.has(code) || (refused !== undefined && (refused.status === 401 || refused.status === 403));
        if (fatal) {
          this.shouldReconnect = false;
          this.noteProblem(refused ? refused.message : `socket closed for good (${code} ${reason})`);
          return;
        }
        // A first connect that fails is the caller's to handle; after that, we retry.
        if (this.shouldReconnect && (wasLive || isReconnect)) this.scheduleReconnect();
      });
    });
  }

  private scheduleReconnect(): void {
    const base = this.options.reconnectBaseMs ?? 500;
    const max = this.options.reconnectMaxMs ?? 30_000;
    // A refusal's Retry-After is a floor, spread by jitter so a fleet does not return at once.
    const delay = Math.max(reconnectDelayMs(this.reconnectAttempts++, base, max, this.random), jitteredFloorMs(this.reconnectNotBeforeMs, this.random));
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = setTimeout(() => {
      if (!this.shouldReconnect || this.socket) return;
      this.stats.reconnects++;
      // A failure closes the socket, and its close handler schedules the next attempt.
      this.open(true).catch((error: unknown) => this.emit("problem", `reconnect failed: ${error instanceof Error ? error.message : String(error)}`));
    }, delay);
  }

  /** What a reboot does to the connection: it drops, and comes back. */
  private async restart(): Promise<void> {
    this.lastDriftAt = Date.now();
    this.state = { ...this.state, bootedAt: this.lastDriftAt };
    await this.reopenSocket("rebooting");
  }

  /** Closes the socket (if any) and opens it again, with the token held now. */
  private async reopenSocket(reason: string): Promise<void> {
    const socket = this.socket;
    if (!socket) return;
    this.socket = undefined;
    this.live = undefined;
    await closeSocket(socket, WsCloseCode.normal, reason);
    if (!this.shouldReconnect) return;
    this.stats.reconnects++;
    // If the server is not there, the failed socket's close handler keeps retrying.
    await this.open(true).catch(() => undefined);
  }

  private async onFrame(frame: DeviceServerFrame): Promise<void> {
    switch (frame.type) {
      case "command":
        return this.receive(frame.command, "websocket");
      case "error": {
        // An ack or result the server could not take for now: kept to send again.
        // Any error about a result answers it: held again if transient, given up otherwise.
        if (frame.requestId) this.unconfirmed.delete(frame.requestId);
        const refused = frame.requestId && (frame.code === "service_unavailable" || frame.code === "rate_limited") ? frame.requestId : undefined;
        if (refused) this.holdUnreported(this.results.get(refused) ?? { requestId: refused, status: "acknowledged" });
        return this.noteProblem(`server error ${frame.code}: ${frame.message}${frame.requestId ? ` (${frame.requestId})` : ""}`);
      }
      case "policy":
        return this.applyPolicy(frame.policy);
      case "result_ok":
        this.unconfirmed.delete(frame.requestId);
        return;
      case "hello":
      case "heartbeat_ok":
        return;
    }
  }

  private noteProblem(message: string): void {
    this.stats.errors++;
    this.emit("problem", message);
  }

  // ---- Heartbeats ---------------------------------------------------------------------

  /** Sends one heartbeat now: over the socket when connected, else by HTTP (running the commands the answer carries). */
  async heartbeat(): Promise<void> {
    if (this.wiped) throw new Error("the device was wiped: enroll it again with a new enrollment token");
    const now = Date.now();
    this.state = drift(this.state, (now - this.lastDriftAt) / 1000, this.random);
    this.lastDriftAt = now;
    const heartbeat = {
      ...toHeartbeat(this.state, now, { appVersion: SIMULATOR_AGENT_VERSION }),
      ...(this.applied && { policy: { appliedHash: this.applied.policy.hash, failures: this.applied.failures } }),
    };
    if (this.connected) {
      this.sendFrame({ type: "heartbeat", heartbeat });
      this.unanswered.push(heartbeat.deviceTime);
      this.stats.heartbeatsSent++;
      return;
    }
    let response: HeartbeatResponse;
    try {
      response = await requestJson(
        this.baseUrl,
        { method: "POST", path: "/v1/heartbeat", headers: this.authorization(), body: JSON.stringify(heartbeat) },
        HeartbeatResponse,
      );
    } catch (error) {
      this.heartbeatFailed(error instanceof ApiError ? error.retryAfterSeconds : undefined);
      throw error;
    }
    this.stats.heartbeatsSent++;
    this.heartbeatAcknowledged(heartbeat.deviceTime, "http");
    for (const command of response.commands) await this.receive(command, "http");
    if (response.policy) await this.applyPolicy(response.policy);
  }

  /** Answers to heartbeat frames come in the order they were sent: match them up. */
  private onHeartbeatAnswer(frame: DeviceServerFrame): void {
    if (frame.type === "heartbeat_ok") {
      const deviceTime = this.unanswered.shift();
      if (deviceTime) this.heartbeatAcknowledged(deviceTime, "websocket");
      return;
    }
    // An error without a requestId answers a heartbeat (acks and results carry theirs).
    if (frame.type === "error" && !frame.requestId && this.unanswered.shift()) {
      this.stats.heartbeatsFailed++;
      if (frame.code === "service_unavailable" || frame.code === "rate_limited") this.heartbeatFailed(undefined);
    }
  }

  private heartbeatAcknowledged(deviceTime: string, channel: "websocket" | "http"): void {
    this.heartbeatFailures = 0;
    this.heartbeatRetryAfterMs = 0;
    this.stats.heartbeatsAcknowledged++;
    this.emit("heartbeat", { deviceTime, channel });
    this.flushUnreported();
  }

  private heartbeatFailed(retryAfterSeconds: number | undefined): void {
    this.heartbeatFailures++;
    this.heartbeatRetryAfterMs = (retryAfterSeconds ?? 0) * 1000;
  }

  /** When the next heartbeat goes: on schedule, or later with backoff and jitter while they fail. */
  private nextHeartbeatDelayMs(): number {
    if (this.heartbeatFailures === 0) return this.intervalMs;
    return heartbeatRetryDelayMs(this.heartbeatFailures, this.intervalMs, this.options.retryMaxMs ?? 300_000, this.heartbeatRetryAfterMs, this.random);
  }

  /**
   * Heartbeats every `intervalMs` (the first one at a random point of the first interval, so
   * a fleet spreads out). While they fail (429 or 503, an auth error, no answer), the next
   * attempt backs off exponentially with jitter, never sooner than the server's Retry-After.
   */
  start(): void {
    if (this.running) return;
    this.running = true;
    const tick = async () => {
      try {
        await this.heartbeat();
      } catch (error) {
        this.stats.heartbeatsFailed++;
        this.noteProblem(`heartbeat failed: ${error instanceof Error ? error.message : String(error)}`);
      }
      if (this.running) this.loopTimer = setTimeout(tick, this.nextHeartbeatDelayMs());
    };
    this.loopTimer = setTimeout(tick, Math.floor(this.random() * this.intervalMs));
  }

  /** Stops the heartbeat loop and disconnects. */
  async stop(): Promise<void> {
    this.running = false;
    clearTimeout(this.loopTimer);
    await this.disconnect();
  }

  /** Test knob: the kiosk app crashes; heartbeats report it not running until it is relaunched. */
  stopApp(packageName = KIOSK_APP): void {
    this.state = { ...this.state, apps: this.state.apps.map((app) => (app.packageName === packageName ? { ...app, running: false, foreground: false } : app)) };
  }

  // ---- Policies -----------------------------------------------------------------------

  /** The hash of the effective policy this device applied, if any. */
  get appliedPolicyHash(): string | undefined {
    return this.applied?.policy.hash;
  }

  /** The effective policy this device applied, and the settings it refused. */
  get appliedPolicy(): { policy: DevicePolicy; failures: PolicyFailure[] } | undefined {
    return this.applied;
  }

  /**
   * Applies an effective policy as a device-owner agent would: every setting it can, the
   * ones it is configured to refuse reported with a reason; the first lock-task app is
   * brought to the front. Then reports the applied hash in a heartbeat at once.
   */
  async applyPolicy(policy: DevicePolicy): Promise<void> {
    if (this.applied?.policy.hash === policy.hash) return;
    const refuse = new Set(this.options.refuseSettings ?? []);
    const failures = policySettingEntries(policy.settings)
      .filter(([path]) => refuse.has(path))
      .map(([setting]) => ({ setting, reason: "This device does not support the setting (simulator option refuseSettings, --refuse-settings)" }));
    this.applied = { policy, failures };
    this.keepLockTaskAppInFront();
    this.emit("policy", { hash: policy.hash, failures });
    await this.heartbeat().catch((error: unknown) => this.noteProblem(`policy report failed: ${error instanceof Error ? error.message : String(error)}`));
  }

  /**
   * Lock-task mode: the applied policy's first lock-task app runs in front, every other app
   * in the background. An app that is not installed cannot run: nothing is invented (it
   * would be reported installed, and a policy requiring it read as compliant); it comes to
   * the front once an install puts it there.
   */
  private keepLockTaskAppInFront(): void {
    const lockTaskApp = this.applied?.policy.settings.kiosk?.lockTaskPackages?.[0];
    if (!lockTaskApp || this.applied!.failures.some((failure) => failure.setting === "kiosk.lockTaskPackages")) return;
    if (!this.state.apps.some((app) => app.packageName === lockTaskApp)) return;
    this.state = {
      ...this.state,
      apps: this.state.apps.map((app) => (app.packageName === lockTaskApp ? { ...app, running: true, foreground: true } : { ...app, foreground: false })),
    };
  }

  /** Resolves once this device applied the policy with this hash. */
  waitForPolicy(hash: string, timeoutMs = 5000): Promise<void> {
    if (this.applied?.policy.hash === hash) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const onPolicy = (applied: { hash: string; failures: PolicyFailure[] }) => {
        if (applied.hash !== hash) return;
        clearTimeout(timer);
        this.off("policy", onPolicy);
        resolve();
      };
      const timer = setTimeout(() => {
        this.off("policy", onPolicy);
        reject(new Error(`device ${this.deviceId} did not apply policy ${hash} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.on("policy", onPolicy);
    });
  }

  // ---- Commands -----------------------------------------------------------------------

  /** Every receipt of this command so far (a re-delivered command shows up more than once). */
  receiptsOf(requestId: string): ReceivedCommand[] {
    return this.receipts.get(requestId) ?? [];
  }

  /** The first receipt of this command, as soon as there is one. */
  waitForCommand(requestId: string, timeoutMs = 5000): Promise<ReceivedCommand> {
    const first = this.receipts.get(requestId)?.[0];
    if (first) return Promise.resolve(first);
    return new Promise((resolve, reject) => {
      const onCommand = (received: ReceivedCommand) => {
        if (received.command.requestId !== requestId) return;
        clearTimeout(timer);
        this.off("command", onCommand);
        resolve(received);
      };
      const timer = setTimeout(() => {
        this.off("command", onCommand);
        reject(new Error(`device ${this.deviceId} did not receive command ${requestId} within ${timeoutMs} ms`));
      }, timeoutMs);
      this.on("command", onCommand);
    });
  }

  private async receive(command: DeviceCommand, channel: ReceivedCommand["channel"]): Promise<void> {
    const { requestId } = command;
    // A command signed under another key id than ours cannot be checked: unverifiable too.
    const verified = await verifyCommandSignature(this.registration.commandKey, command);
    if (!verified || command.keyId !== this.registration.commandKeyId) {
      // Dropped in silence: whoever forged it may have reused a genuine requestId, and a
      // `failed` report would close that real command before it arrives. Never run, never
      // remembered (not even as received, so a flood of forgeries grows nothing and cannot
      // stand in for the genuine command), so it cannot shadow the genuine one either.
      this.stats.commandsDropped++;
      this.noteProblem(`dropped command ${requestId}: signature does not verify`);
      return;
    }
    const received: ReceivedCommand = { command, channel, at: Date.now() };
    this.receipts.set(requestId, [...(this.receipts.get(requestId) ?? []), received]);
    this.stats.commandsReceived++;
    this.options.onCommand?.(received);
    this.emit("command", received);
    const recorded = this.results.get(requestId);
    if (!recorded && Date.parse(command.expiresAt) <= Date.now()) {
      this.stats.commandsFailed++;
      await this.report({ requestId, status: "failed", error: `expired at ${command.expiresAt}`, completedAt: new Date().toISOString() });
      return;
    }
    if (recorded) {
      // Already ran: the server missed our ack or result. Say both again; run nothing.
      await this.acknowledge(requestId);
      await this.report(recorded);
      return;
    }
    if (this.inFlight.has(requestId)) return this.acknowledge(requestId);

    this.inFlight.add(requestId);
    try {
      await this.acknowledge(requestId);
      // An agent installs only what hashes to the command's sha256.
      const refused = command.type === "install_app" ? await this.downloadRefusal(command.payload) : undefined;
      let execution = refused
        ? { outcome: { status: "failed" as const, error: refused }, apps: this.state.apps }
        : executeCommand(command, this.state.apps, this.options.position);
      if (execution.rekey) {
        execution = await this.takeNewKeys(execution, execution.rekey.sealed);
        if (execution.outcome.status === "succeeded") await this.reopenSocket("new token");
      }
      this.state = { ...this.state, apps: execution.apps };
      // An update of the lock-task app (or its first install) goes back in front.
      this.keepLockTaskAppInFront();
      if (execution.lostMode !== undefined) this.lostMode = execution.lostMode;
      if (execution.reboot) await this.restart();
      this.executions.set(requestId, (this.executions.get(requestId) ?? 0) + 1);
      const result: ActionResultRequest =
        execution.outcome.status === "succeeded"
          ? { requestId, status: "succeeded", result: execution.outcome.result, completedAt: new Date().toISOString() }
          : { requestId, status: "failed", error: execution.outcome.error, completedAt: new Date().toISOString() };
      this.results.set(requestId, result);
      if (result.status === "succeeded") this.stats.commandsExecuted++;
      else this.stats.commandsFailed++;
      if (execution.erase) {
        // Over HTTP, answered before the socket goes: a frame sent just before closing may
        // never be processed, and an erased device cannot report it again.
        await this.postResult(result);
        this.emit("result", result);
        await this.erase();
      } else {
        await this.report(result);
      }
    } finally {
      this.inFlight.delete(requestId);
    }
  }

  /** Downloads an install_app's APK and checks its SHA-256: the reason to refuse it, if any. */
  private async downloadRefusal(payload: Record<string, unknown>): Promise<string | undefined> {
    if (typeof payload.url !== "string" || typeof payload.sha256 !== "string") return undefined;
    let url = new URL(payload.url);
    if (this.options.downloadOrigin) url = new URL(`${url.pathname}${url.search}`, this.options.downloadOrigin);
    let bytes: Buffer;
    try {
      const response = await fetch(url, { signal: AbortSignal.timeout(60_000) });
      if (!response.ok) return `download failed: HTTP ${response.status}`;
      bytes = Buffer.from(await response.arrayBuffer());
    } catch (error) {
      return `download failed: ${error instanceof Error ? error.message : String(error)}`;
    }
    if (this.options.tamperDownloads && bytes.length > 0) bytes[bytes.length - 1] = (bytes[bytes.length - 1] ?? 0) ^ 0xff;
    const actual = createHash("sha256").update(bytes).digest("hex");
    return actual === payload.sha256 ? undefined : `sha256 mismatch: expected ${payload.sha256}, downloaded ${actual}`;
  }

  private async acknowledge(requestId: string): Promise<void> {
    if (this.acksToDrop > 0) {
      this.acksToDrop--;
      this.droppedResults.add(requestId);
      return;
    }
    if (this.connected) return this.sendFrame({ type: "command_ack", requestId });
    await this.postResult({ requestId, status: "acknowledged" });
  }

  private async report(result: ActionResultRequest): Promise<void> {
    // The result of a command whose ack was lost is lost with it.
    if (this.droppedResults.delete(result.requestId)) return;
    if (this.connected) this.sendResultFrame(result);
    else await this.postResult(result);
    this.emit("result", result);
  }

  private async postResult(result: ActionResultRequest): Promise<void> {
    try {
      await requestJson(
        this.baseUrl,
        { method: "POST", path: "/v1/action-result", headers: this.authorization(), body: JSON.stringify(result) },
        ActionResultResponse,
      );
      if (result.status !== "acknowledged") this.unreported.delete(result.requestId);
    } catch (error) {
      const transient = !(error instanceof ApiError) || error.status === 429 || error.status >= 500;
      if (transient) this.holdUnreported(result);
      this.noteProblem(
        `action result ${result.status} for ${result.requestId} ${transient ? "held for retry" : "refused"}: ${error instanceof Error ? error.message : String(error)}`,
      );
    }
  }

  /** Keeps a result to send again; a later one for the same command replaces it. The oldest give way past the bound. */
  private holdUnreported(result: ActionResultRequest): void {
    const held = this.unreported.get(result.requestId);
    if (held && held.status !== "acknowledged" && result.status === "acknowledged") return;
    this.keepNewest(this.unreported, result, "waiting");
  }

  /** Puts `result` last in `kept`; past MAX_UNREPORTED the oldest is given up, and said so. */
  private keepNewest(kept: Map<string, ActionResultRequest>, result: ActionResultRequest, state: string): void {
    kept.delete(result.requestId);
    kept.set(result.requestId, result);
    if (kept.size <= MAX_UNREPORTED) return;
    const oldest = kept.keys().next().value!;
    kept.delete(oldest);
    this.noteProblem(`more than ${MAX_UNREPORTED} results ${state}: the one for ${oldest} is given up`);
  }

  /** After an answered heartbeat, the server takes requests again: send what it could not take before. */
  private flushUnreported(): void {
    if (this.flushingUnreported || this.unreported.size === 0) return;
    this.flushingUnreported = true;
    const pending = [...this.unreported.values()];
    this.unreported.clear();
    void (async () => {
      for (const result of pending) {
        if (!this.connected) await this.postResult(result);
        else if (result.status === "acknowledged") this.sendFrame({ type: "command_ack", requestId: result.requestId });
        else this.sendResultFrame(result);
      }
    })().finally(() => (this.flushingUnreported = false));
  }

  /** A result on the socket is kept until the server answers it (`result_ok` or an error frame). */
  private sendResultFrame(result: ActionResultRequest): void {
    this.keepNewest(this.unconfirmed, result, "unanswered");
    this.sendFrame({ type: "command_result", result });
  }

  private sendFrame(frame: DeviceClientFrame): void {
    this.live!.send(JSON.stringify(frame));
  }

  private authorization(): Record<string, string> {
    return { Authorization: `Bearer ${this.registration.deviceToken}` };
  }
}

/**
 * Delay before the next heartbeat after `failures` failed in a row: exponential from the
 * normal interval (half fixed, half random), capped at `maxMs`, and never shorter than the
 * server's Retry-After, itself spread by up to half again so a refused fleet returns spread out.
 */
export function heartbeatRetryDelayMs(failures: number, intervalMs: number, maxMs: number, retryAfterMs: number, random: Random): number {
  return Math.max(reconnectDelayMs(Math.max(0, failures - 1), intervalMs, Math.max(intervalMs, maxMs), random), jitteredFloorMs(retryAfterMs, random));
}

/** A server-given wait, plus up to half of it at random (0 when there is none). */
export function jitteredFloorMs(floorMs: number, random: Random): number {
  return floorMs > 0 ? Math.round(floorMs * (1 + random() / 2)) : 0;
}

/** Exponential backoff with jitter: half of the delay fixed, half random. */
export function reconnectDelayMs(attempt: number, baseMs: number, maxMs: number, random: Random): number {
  const ceiling = Math.min(maxMs, baseMs * 2 ** Math.min(attempt, 30));
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

function safeJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

function closeSocket(socket: WebSocket, code: number, reason: string): Promise<void> {
  if (socket.readyState === WebSocket.CLOSED) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => socket.terminate(), 2000);
    socket.once("close", () => {
      clearTimeout(timer);
      resolve();
    });
    if (socket.readyState === WebSocket.CONNECTING) socket.terminate();
    else socket.close(code, reason);
  });
}
