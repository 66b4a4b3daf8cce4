import { HealthResponse } from "@mdm/contracts";
import { AdminClient, localDevCredentials } from "./admin-client";
import { SimulatedDevice } from "./device";
import { ApiError, ApiUnreachableError, requestJson } from "./http";
import { seededRandom } from "./telemetry";

export type FleetOptions = {
  baseUrl: string;
  devices: number;
  intervalMs: number;
  /** Stop after this long; without it (and without `signal`), the fleet runs until SIGINT or SIGTERM. */
  durationMs?: number;
  /** Enroll with this token; without it, one is created through the signed admin API. */
  enrollmentToken?: string;
  adminKey?: string;
  hmacSecret?: string;
  /** Enrollments and connections in flight at once. */
  concurrency?: number;
  summaryEveryMs?: number;
  /** Where the live summary lines go. */
  log?: (line: string) => void;
  signal?: AbortSignal;
  /** Makes the fleet's telemetry repeatable. */
  seed?: number;
  /** See DeviceOptions.downloadOrigin. */
  downloadOrigin?: string;
  /** See DeviceOptions.refuseSettings: every device of the fleet refuses these policy settings. */
  refuseSettings?: string[];
};

export type FleetTotals = {
  connected: number;
  heartbeatsSent: number;
  heartbeatsAcknowledged: number;
  heartbeatsFailed: number;
  commandsReceived: number;
  commandsExecuted: number;
  commandsFailed: number;
  reconnects: number;
  errors: number;
};

export type FleetReport = {
  baseUrl: string;
  startedAt: string;
  /** From the first enrollment to the stop. */
  elapsedMs: number;
  /** How long the enrolled fleet ran with its heartbeat loop. */
  runMs: number;
  stoppedBy: "duration" | "signal" | "setup_aborted";
  devices: { requested: number; enrolled: number; connected: number; failedToEnroll: number; failedToConnect: number };
  timings: { enrollMs: number; connectMs: number };
  heartbeats: { sent: number; acknowledged: number; failed: number; perSecond: number };
  commands: { received: number; executed: number; failed: number };
  reconnects: number;
  errors: { total: number; samples: string[] };
};

/** A failure that ends the run before the fleet exists: the CLI prints its message and exits non-zero. */
export class FleetSetupError extends Error {
  override name = "FleetSetupError";
}

const MAX_ERROR_SAMPLES = 10;
const ENROLL_ATTEMPTS = 5;

export function totalsOf(devices: SimulatedDevice[]): FleetTotals {
  const totals: FleetTotals = {
    connected: 0,
    heartbeatsSent: 0,
    heartbeatsAcknowledged: 0,
    heartbeatsFailed: 0,
    commandsReceived: 0,
    commandsExecuted: 0,
    commandsFailed: 0,
    reconnects: 0,
    errors: 0,
  };
  for (const device of devices) {
    if (device.connected) totals.connected++;
    totals.heartbeatsSent += device.stats.heartbeatsSent;
    totals.heartbeatsAcknowledged += device.stats.heartbeatsAcknowledged;
    totals.heartbeatsFailed += device.stats.heartbeatsFailed;
    totals.commandsReceived += device.stats.commandsReceived;
    totals.commandsExecuted += device.stats.commandsExecuted;
    totals.commandsFailed += device.stats.commandsFailed;
    totals.reconnects += device.stats.reconnects;
    totals.errors += device.stats.errors;
  }
  return totals;
}

export function formatSummary(elapsedMs: number, totals: FleetTotals, fleetSize: number, setupErrors = 0): string {
  const time = `[${Math.round(elapsedMs / 1000)
    .toString()
    .padStart(5)}s]`;
  return `${time} ${[
    `connected ${totals.connected}/${fleetSize}`,
    `heartbeats ${totals.heartbeatsSent}${totals.heartbeatsFailed ? ` (${totals.heartbeatsFailed} failed)` : ""}`,
    `commands ${totals.commandsReceived} received, ${totals.commandsExecuted} executed, ${totals.commandsFailed} failed`,
    `reconnects ${totals.reconnects}`,
    `errors ${totals.errors + setupErrors}`,
  ].join(" | ")}`;
}

/**
 * Runs `task` over `items` with at most `limit` at once. Stops taking new items once
 * `signal` aborts or a task fails; a failure is rethrown after the tasks in flight settle,
 * so nothing keeps running behind the caller's back.
 */
export async function forEachLimit<T>(
  items: readonly T[],
  limit: number,
  task: (item: T, index: number) => Promise<void>,
  signal?: AbortSignal,
): Promise<void> {
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async () => {
    while (next < items.length && !signal?.aborted && !failure) {
      const index = next++;
      try {
        await task(items[index]!, index);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(limit, items.length)) }, worker));
  if (failure) throw failure.error;
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(done, ms);
    function done() {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    }
    signal?.addEventListener("abort", done, { once: true });
  });

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/**
 * Enrolls a fleet of simulated devices, connects them, heartbeats until the duration ends
 * or the run is stopped, logging a summary line every few seconds, and returns a report.
 */
export async function runFleet(options: FleetOptions): Promise<FleetReport> {
  const log = options.log ?? ((line: string) => console.error(line));
  const concurrency = options.concurrency ?? 25;
  const startedAt = Date.now();
  const errorSamples: string[] = [];
  const noteError = (message: string) => {
    if (errorSamples.length < MAX_ERROR_SAMPLES && !errorSamples.includes(message)) errorSamples.push(message);
  };

  const stop = new AbortController();
  let stoppedBy: FleetReport["stoppedBy"] = "signal";
  const onSignal = () => stop.abort();
  const ownSignals = !options.signal;
  if (options.signal) options.signal.addEventListener("abort", onSignal, { once: true });
  else {
    process.once("SIGINT", onSignal);
    process.once("SIGTERM", onSignal);
  }

  const devices: SimulatedDevice[] = [];
  let failedToEnroll = 0;
  let failedToConnect = 0;
  let enrollMs = 0;
  let connectMs = 0;
  let runStartedAt = Date.now();
  let connectedAtEnd = 0;
  let summaryTimer: NodeJS.Timeout | undefined;
  try {
    try {
      await requestJson(options.baseUrl, { method: "GET", path: "/api/health", timeoutMs: 5000 }, HealthResponse);
    } catch (error) {
      if (error instanceof ApiUnreachableError) throw new FleetSetupError(`${error.message}. Is the API running? Start it with \`npm start\` or pass --url.`);
      throw new FleetSetupError(`The API at ${options.baseUrl} is not healthy: ${describe(error)}`);
    }

    const enrollmentToken = options.enrollmentToken ?? (await createEnrollmentToken(options));
    log(`enrolling ${options.devices} devices at ${options.baseUrl} (${concurrency} at a time)`);
    const random = seededRandom(options.seed ?? Date.now());
    const enrollStarted = Date.now();
    await forEachLimit(
      Array.from({ length: options.devices }, (_, index) => index),
      concurrency,
      async () => {
        try {
          devices.push(await enrollWithRetry(options, enrollmentToken, random, stop.signal));
        } catch (error) {
          if (error instanceof ApiUnreachableError) throw new FleetSetupError(`${error.message} while enrolling devices`);
          failedToEnroll++;
          noteError(`enroll: ${describe(error)}`);
        }
      },
      stop.signal,
    );
    enrollMs = Date.now() - enrollStarted;
    if (devices.length === 0 && !stop.signal.aborted) throw new FleetSetupError(`No device could enroll: ${errorSamples[0] ?? "unknown error"}`);

    for (const device of devices) device.on("problem", noteError);
    const connectStarted = Date.now();
    await forEachLimit(
      devices,
      concurrency,
      async (device) => {
        try {
          await device.connect();
        } catch (error) {
          // It still heartbeats, by HTTP, and gets its commands in the answers.
          failedToConnect++;
          noteError(`connect: ${describe(error)}`);
        }
      },
      stop.signal,
    );
    connectMs = Date.now() - connectStarted;
    log(`enrolled ${devices.length} in ${enrollMs} ms, connected ${totalsOf(devices).connected} in ${connectMs} ms; heartbeat every ${options.intervalMs} ms`);

    runStartedAt = Date.now();
    for (const device of devices) device.start();
    const summaryEveryMs = options.summaryEveryMs ?? 5000;
    summaryTimer = setInterval(
      () => log(formatSummary(Date.now() - startedAt, totalsOf(devices), options.devices, failedToEnroll + failedToConnect)),
      summaryEveryMs,
    );

    if (!stop.signal.aborted) {
      if (options.durationMs === undefined) await sleep(2 ** 31 - 1, stop.signal);
      else {
        await sleep(Math.max(0, options.durationMs - (Date.now() - runStartedAt)), stop.signal);
        if (!stop.signal.aborted) stoppedBy = "duration";
      }
    } else stoppedBy = "setup_aborted";
  } finally {
    clearInterval(summaryTimer);
    if (ownSignals) {
      process.off("SIGINT", onSignal);
      process.off("SIGTERM", onSignal);
    } else options.signal!.removeEventListener("abort", onSignal);
    // Counted before the sockets close, so the report says how many were connected at the end.
    connectedAtEnd = totalsOf(devices).connected;
    await Promise.all(devices.map((device) => device.stop()));
  }

  const totals = totalsOf(devices);
  const runMs = Date.now() - runStartedAt;
  log(formatSummary(Date.now() - startedAt, { ...totals, connected: connectedAtEnd }, options.devices, failedToEnroll + failedToConnect));
  return {
    baseUrl: options.baseUrl,
    startedAt: new Date(startedAt).toISOString(),
    elapsedMs: Date.now() - startedAt,
    runMs,
    stoppedBy,
    devices: { requested: options.devices, enrolled: devices.length, connected: connectedAtEnd, failedToEnroll, failedToConnect },
    timings: { enrollMs, connectMs },
    heartbeats: {
      sent: totals.heartbeatsSent,
      acknowledged: totals.heartbeatsAcknowledged,
      failed: totals.heartbeatsFailed,
      perSecond: runMs > 0 ? Math.round((totals.heartbeatsSent / runMs) * 10_000) / 10 : 0,
    },
    commands: { received: totals.commandsReceived, executed: totals.commandsExecuted, failed: totals.commandsFailed },
    reconnects: totals.reconnects,
    errors: { total: totals.errors + failedToEnroll + failedToConnect, samples: errorSamples },
  };
}

async function createEnrollmentToken(options: FleetOptions): Promise<string> {
  const local = localDevCredentials();
  const adminKey = options.adminKey ?? local?.adminKey;
  const hmacSecret = options.hmacSecret ?? local?.hmacSecret;
  if (!adminKey || !hmacSecret) {
    throw new FleetSetupError(
      "No admin credentials: set ADMIN_KEY and HMAC_SECRET (or --admin-key, --hmac-secret) to the server's, or pass --enrollment-token. " +
        "A local `npm start` without them keeps its generated ones in apps/api/.data/dev-secrets.json, read automatically.",
    );
  }
  const admin = new AdminClient(options.baseUrl, { adminKey, hmacSecret });
  try {
    const token = await admin.createEnrollmentToken({ maxUses: options.devices, expiresInSeconds: 3600, label: `simulator ${new Date().toISOString()}` });
    return token.token;
  } catch (error) {
    if (error instanceof ApiError && error.status === 401) {
      throw new FleetSetupError(
        `The API refused the admin credentials (${error.message}). Set ADMIN_KEY and HMAC_SECRET (or --admin-key, --hmac-secret) to the server's, or pass --enrollment-token.`,
      );
    }
    throw new FleetSetupError(`Could not create an enrollment token: ${describe(error)}`);
  }
}

/** Enrollment is rate-limited per token: on a 429, wait as told and try again. */
async function enrollWithRetry(options: FleetOptions, token: string, random: () => number, signal: AbortSignal): Promise<SimulatedDevice> {
  const { baseUrl, intervalMs, downloadOrigin, refuseSettings } = options;
  for (let attempt = 1; ; attempt++) {
    try {
      return await SimulatedDevice.enroll(baseUrl, token, {
        intervalMs,
        random,
        ...(downloadOrigin ? { downloadOrigin } : {}),
        ...(refuseSettings ? { refuseSettings } : {}),
      });
    } catch (error) {
      if (!(error instanceof ApiError) || error.status !== 429 || attempt >= ENROLL_ATTEMPTS || signal.aborted) throw error;
      await sleep((error.retryAfterSeconds ?? 1) * 1000, signal);
    }
  }
}
