import { AdminClient, ApiError, ApiUnreachableError, SimulatedDevice, forEachLimit } from "@mdm/simulator";
import { Client } from "pg";
import { TEST_ADMIN_KEY, TEST_HMAC_SECRET, TEST_SECRETS } from "../test";

// What the fault runs share: the fleet (the simulator library, real sockets), the
// bookkeeping of what the API acknowledged, and the checks against the database.

/** Devices per run and their heartbeat interval: FAULTS_DEVICES (default 2000), FAULTS_INTERVAL_MS (5000). */
export const FLEET_SIZE = Number(process.env.FAULTS_DEVICES ?? 2000);
export const INTERVAL_MS = Number(process.env.FAULTS_INTERVAL_MS ?? 5000);

export const credentials = { adminKey: TEST_ADMIN_KEY, hmacSecret: TEST_HMAC_SECRET };

/** The API's settings in a fault run: production-like except generous per-client limits (the whole fleet is one address). */
export function apiSettings(databaseUrl: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    DATABASE_URL: databaseUrl,
    ...TEST_SECRETS,
    HEARTBEAT_INTERVAL_SECONDS: String(Math.max(1, Math.round(INTERVAL_MS / 1000))),
    COMMAND_RETRY_BASE_SECONDS: "2",
    RATE_LIMIT_GENERAL_PER_MINUTE: "1000000",
    RATE_LIMIT_ADMIN_PER_MINUTE: "1000000",
    RATE_LIMIT_DEVICE_PER_MINUTE: "1000000",
    RATE_LIMIT_ENROLLMENT_PER_MINUTE: "1000000",
    WS_MAX_DEVICE_SOCKETS_PER_IP: "100000",
    HTTP_MAX_REQUESTS_PER_CLIENT: "100000",
    RATE_LIMIT_LOGIN_PER_MINUTE: "1000000",
    ...extra,
  };
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

export async function waitFor<T>(read: () => T | Promise<T>, done: (value: T) => boolean, timeoutMs: number, what: string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  for (;;) {
    try {
      last = await read();
      if (done(last)) return last;
    } catch {
      // not yet
    }
    if (Date.now() > deadline) throw new Error(`${what} not reached within ${timeoutMs} ms; last: ${JSON.stringify(last)}`);
    await sleep(200);
  }
}

export type Fleet = {
  devices: SimulatedDevice[];
  /** Every heartbeat the API acknowledged (2xx or heartbeat_ok), as `deviceId deviceTime`. */
  acknowledged: Set<string>;
  closeCodes: Map<number, number>;
  /** Problems the devices met that say the server failed (500s, internal_error frames): must be none. */
  serverFailures: string[];
  stop: () => Promise<void>;
};

/** Enrolls `size` devices, connects their sockets and starts their heartbeat loops. */
export async function startFleet(url: string, size = FLEET_SIZE, options: { connectUrl?: string } = {}): Promise<Fleet> {
  const admin = new AdminClient(url, credentials);
  const { token } = await admin.createEnrollmentToken({ maxUses: size, expiresInSeconds: 3600 });
  const devices: SimulatedDevice[] = [];
  await forEachLimit(Array.from({ length: size }), 16, async () => {
    const device = await SimulatedDevice.enroll(options.connectUrl ?? url, token, {
      intervalMs: INTERVAL_MS,
      reconnectBaseMs: 250,
      reconnectMaxMs: 5000,
      retryMaxMs: 4 * INTERVAL_MS,
    });
    devices.push(device);
  });
  const acknowledged = new Set<string>();
  const closeCodes = new Map<number, number>();
  const serverFailures: string[] = [];
  for (const device of devices) {
    device.on("problem", (message) => {
      if (/internal_error|\b500\b/.test(message)) serverFailures.push(message);
    });
    device.on("heartbeat", ({ deviceTime }) => acknowledged.add(`${device.deviceId} ${new Date(deviceTime).toISOString()}`));
    // Sockets that were open: a reconnect attempt refused by the dying instance is not a socket it closed.
    device.on("disconnected", ({ code, wasLive }) => {
      if (wasLive) closeCodes.set(code, (closeCodes.get(code) ?? 0) + 1);
    });
  }
  await forEachLimit(devices, 16, (device) => device.connect());
  for (const device of devices) device.start();
  return { devices, acknowledged, closeCodes, serverFailures, stop: () => Promise.all(devices.map((device) => device.stop())).then(() => undefined) };
}

/** Acknowledged heartbeats with no TelemetryEvent row: must be none. */
export async function missingHeartbeats(databaseUrl: string, acknowledged: Set<string>): Promise<string[]> {
  const client = new Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const { rows } = await client.query<{ deviceId: string; deviceTime: Date }>(`SELECT "deviceId", "deviceTime" FROM "TelemetryEvent"`);
    const stored = new Set(rows.map((row) => `${row.deviceId} ${row.deviceTime.toISOString()}`));
    return [...acknowledged].filter((key) => !stored.has(key));
  } finally {
    await client.end();
  }
}

export type CommandLoad = { created: Map<string, SimulatedDevice>; refused: number; stop: () => Promise<void> };

/** Creates a `ping` for a random device every `everyMs`; keeps the ones the API answered 2xx. */
export function startCommandLoad(url: string, devices: SimulatedDevice[], everyMs = 100): CommandLoad {
  const admin = new AdminClient(url, credentials);
  const created = new Map<string, SimulatedDevice>();
  let refused = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      const device = devices[Math.floor(Math.random() * devices.length)]!;
      try {
        const command = await admin.createCommand({ deviceId: device.deviceId, type: "ping" });
        created.set(command.requestId, device);
      } catch (error) {
        // Refused, or no answer at all (an instance going away): not acknowledged, not counted.
        if (!(error instanceof ApiError) && !(error instanceof ApiUnreachableError)) throw error;
        refused++;
      }
      await sleep(everyMs);
    }
  })();
  return {
    created,
    get refused() {
      return refused;
    },
    stop: async () => {
      running = false;
      await loop;
    },
  };
}

/** Statuses of these commands in the database. */
export async function commandStatuses(databaseUrl: string, requestIds: string[]): Promise<Map<string, string>> {
  const client = new Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const { rows } = await client.query<{ requestId: string; status: string }>(
      `SELECT "requestId", status::text FROM "Command" WHERE "requestId" = ANY($1::uuid[])`,
      [requestIds],
    );
    return new Map(rows.map((row) => [row.requestId, row.status]));
  } finally {
    await client.end();
  }
}

/** Waits until every created command succeeded, then checks each ran exactly once on its device. */
export async function expectEveryCommandRanOnce(databaseUrl: string, load: CommandLoad, timeoutMs: number): Promise<void> {
  const ids = [...load.created.keys()];
  await waitFor(
    () => commandStatuses(databaseUrl, ids),
    (statuses) => ids.every((id) => statuses.get(id) === "succeeded"),
    timeoutMs,
    `all ${ids.length} acknowledged commands succeeded`,
  ).catch(async (error: Error) => {
    const statuses = await commandStatuses(databaseUrl, ids);
    const stuck = ids
      .filter((id) => statuses.get(id) !== "succeeded")
      .map((id) => `${id}: ${statuses.get(id) ?? "missing"}, ran ${load.created.get(id)!.executions.get(id) ?? 0}x`);
    throw new Error(`${error.message.split(";")[0]}; not succeeded: ${stuck.slice(0, 10).join(" | ")} (${stuck.length} in all)`);
  });
  const runs = ids.map((id) => load.created.get(id)!.executions.get(id) ?? 0);
  expect(runs.filter((count) => count !== 1)).toEqual([]);
}

/** One request's outcome, as a fault test records it. */
export type Outcome = { status: number; retryAfter: string | null; ms: number } | { error: string; ms: number };

export async function probe(url: string, init: RequestInit = {}, timeoutMs = 15_000): Promise<Outcome> {
  const started = Date.now();
  try {
    const res = await fetch(url, { ...init, signal: AbortSignal.timeout(timeoutMs) });
    await res.arrayBuffer();
    return { status: res.status, retryAfter: res.headers.get("retry-after"), ms: Date.now() - started };
  } catch (error) {
    return { error: error instanceof Error ? `${error.name}: ${error.message}` : String(error), ms: Date.now() - started };
  }
}
