// The heartbeat benchmark. Every server runs in its own process, and so does every load
// generator, so no two share an event loop:
//   api:    the built API started the way production starts it (NODE_ENV=production,
//           `node apps/api/dist/server.js`, real PostgreSQL, explicit secrets);
//   floor:  a bare node:http + pg server making the same writes per heartbeat (floor-server.ts),
//           on a copy of the same database.
// Devices are inserted in bulk with hashed tokens, as registration stores them, then a sample
// is verified with real heartbeats. The machine's cores are shared with the load generator and
// PostgreSQL, so the ratio to the floor is the figure that matters, not absolute rates.
//
//   npm run bench                   full run (about 20 minutes on 2 cores)
//   BENCH_QUICK=1 npm run bench     quick run (1-2 minutes)
//   BENCH_DEVICES=100000            devices in the database
//   BENCH_DATABASE_URL              PostgreSQL server (default TEST_DATABASE_URL, else local)
//   BENCH_ONLY=bulk,list            only these phases (while working on one), figures logged,
//                                   no report; phases: max, fixed, half, websocket, long, list, bulk
//   BENCH_LONG_SECONDS=240          the long run's length (default 600; quick 30)
//   BENCH_RATE=1000                 the fixed rate (default 2000; a full run caps it at the floor's best)
//   BENCH_LOADGEN=autocannon        the HTTP load generator (default wrk where installed: apt-get
//                                   install wrk; else autocannon)
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes, randomUUID } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import os from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { CommandBatch, HeartbeatResponse, signAdminRequest } from "@mdm/contracts";
import { Client, Pool } from "pg";
import { DEFAULT_MIGRATIONS_DIR, migrate } from "../../apps/api/src/db/migrate";
import { offlineAfterSeconds } from "../../apps/api/src/config/env";
import { hashSecret } from "../../apps/api/src/lib/secrets";
import { appVersionOf, chosenLoadGenerator, heartbeatBody, percentile, round, runScript, spawnScript } from "./common";
import type { HttpLoadJob, HttpLoadResult } from "./http-load";
import type { WsFleetReady, WsHeartbeatResult, WsJob } from "./ws-devices";

const QUICK = process.env.BENCH_QUICK === "1";
const SERVER_URL = process.env.BENCH_DATABASE_URL ?? process.env.TEST_DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/postgres";
const DEVICES = Number(process.env.BENCH_DEVICES ?? 100_000);
const PLAN = QUICK
  ? { warmupSeconds: 3, maxSeconds: 8, maxRounds: 1, fixedSeconds: 10, wsSockets: 1000, wsSeconds: 10, longSeconds: 30, bulkDevices: 1000, listSamples: 15 }
  : {
      warmupSeconds: 5,
      maxSeconds: 20,
      maxRounds: 2,
      fixedSeconds: 30,
      wsSockets: 5000,
      wsSeconds: 30,
      longSeconds: 600,
      bulkDevices: 10_000,
      listSamples: 40,
    };
// The long run's length (seconds), to look at what a shorter one leaves behind.
if (process.env.BENCH_LONG_SECONDS) PLAN.longSeconds = Number(process.env.BENCH_LONG_SECONDS);
// The API's offline threshold as the bench starts it (HEARTBEAT_INTERVAL_SECONDS left at its default).
const BENCH_OFFLINE_AFTER_SECONDS = offlineAfterSeconds(60);
const ONLY = process.env.BENCH_ONLY?.split(",").map((phase) => phase.trim());
const TARGET_RATE = Number(process.env.BENCH_RATE ?? 2000);
const CONNECTIONS = 64;
// At a fixed rate each connection waits for its answer before its next slot: 64 at ~50 ms
// each capped the rate near 1,280/s, below the one asked for. Under ADMISSION_MAX_IN_FLIGHT.
const RATE_CONNECTIONS = 128;
const LOAD_GENERATOR = chosenLoadGenerator();
const API_ROOT = path.resolve(__dirname, "../../apps/api");
const secret = () => randomBytes(32).toString("hex");
const SECRETS = { ADMIN_KEY: secret(), HMAC_SECRET: secret(), JWT_SECRET: secret(), COMMAND_MASTER_KEY: secret() };

const log = (line: string) => console.error(`[bench ${new Date().toISOString().slice(11, 19)}] ${line}`);
/** Each phase's figures as it ends: a run that fails later still leaves them in the log. */
const logResult = (phase: string, figures: unknown) => log(`${phase} result: ${JSON.stringify(figures)}`);

function databaseUrlFor(name: string): string {
  const url = new URL(SERVER_URL);
  url.pathname = `/${name}`;
  return url.toString();
}

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const port = (server.address() as { port: number }).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Enrolled devices, as registration stores them (a row with sha256 of the secret), with the live state of a running fleet. */
export async function seedDevices(databaseUrl: string, count: number, tokensFile: string): Promise<string[]> {
  const pool = new Pool({ connectionString: databaseUrl, max: 4 });
  const tokens: string[] = [];
  const CHUNK = 10_000;
  for (let base = 0; base < count; base += CHUNK) {
    const ids: string[] = [];
    const hashes: string[] = [];
    const appVersions: string[] = [];
    for (let i = base; i < Math.min(count, base + CHUNK); i++) {
      const id = randomUUID();
      const deviceSecret = randomBytes(32).toString("base64url");
      ids.push(id);
      hashes.push(hashSecret(deviceSecret));
      appVersions.push(appVersionOf(i));
      tokens.push(`${id}.${deviceSecret}`);
    }
    // With the live state a heartbeating device has (memory, storage, network, apps...): a
    // row enrolled without it grows at its first heartbeat, which then moves it to another
    // page (not a HOT update), once. The benchmark measures a fleet already running.
    await pool.query(
      `INSERT INTO "Device" (id, "tokenHash", model, manufacturer, alias, "appVersion", "serialNumber", "batteryLevel", "batteryCharging",
         "memoryTotal", "memoryAvailable", "storageTotal", "storageAvailable", "networkType", "networkSignal", "ipAddress",
         "uptimeSeconds", "deviceTime", "appStatus", "appsReportedAt",
         "lastSeenAt", online, "offlineSince", groups, "enrolledAt", "updatedAt")
       SELECT id, hash, 'Pixel ' || (n % 9), 'Google', 'kiosk-' || ($3 + n), version, 'SN' || lpad(($3 + n)::text, 8, '0'),
         (n * 37) % 100, n % 7 = 0, 4000000000, 1500000000 + n * 1000, 64000000000, 20000000000, 'wifi', -40 - n % 50, '10.0.0.12',
         86400 + n, now() - (n % 60) * interval '1 second', apps, now() - (n % 60) * interval '1 second',
         now() - (n % 60) * interval '1 second' - CASE WHEN n % 10 = 0 THEN interval '1 day' ELSE interval '0' END,
         n % 10 <> 0, CASE WHEN n % 10 = 0 THEN now() - interval '1 day' END,
         ARRAY['store-' || (n % 50)], now() - ($3 + n) * interval '1 second', now()
       FROM unnest($1::uuid[], $2::text[], $4::text[], $5::jsonb[]) WITH ORDINALITY AS t(id, hash, version, apps, n)`,
      [ids, hashes, base, appVersions, appVersions.map((version) => JSON.stringify(JSON.parse(heartbeatBody(0, version)).apps))],
    );
  }
  await pool.query(`VACUUM ANALYZE "Device", "DeviceListing"`);
  await pool.end();
  writeFileSync(tokensFile, `${tokens.join("\n")}\n`);
  return tokens;
}

type Server = { url: string; pid: number; stop: () => Promise<void> };

async function waitForHealth(url: string, child: ChildProcess): Promise<void> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}`);
    const ok = await fetch(`${url}/api/health`).then(
      (res) => res.ok,
      () => false,
    );
    if (ok) return;
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  throw new Error(`${url} did not become healthy`);
}

function stopper(child: ChildProcess): () => Promise<void> {
  return async () => {
    if (child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.on("exit", resolve));
    child.kill("SIGTERM");
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 15_000))]);
    if (child.exitCode === null) child.kill("SIGKILL");
  };
}

export async function startApi(databaseUrl: string): Promise<Server> {
  const port = await freePort();
  // BENCH_API_NODE_ARGS: e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof" to profile the API under load.
  const nodeArgs = (process.env.BENCH_API_NODE_ARGS ?? "").split(" ").filter(Boolean);
  const child = spawn(process.execPath, [...nodeArgs, path.join(API_ROOT, "dist/server.js")], {
    cwd: API_ROOT,
    // Its log (errors only) goes to the bench's stderr, beside the bench's own lines.
    stdio: ["ignore", process.stderr, "inherit"],
    env: {
      PATH: process.env.PATH ?? "",
      NODE_ENV: "production",
      HOST: "127.0.0.1",
      PORT: String(port),
      DATABASE_URL: databaseUrl,
      ...SECRETS,
      LOG_LEVEL: "error",
      // One client address stands in for a whole fleet here: per-IP limits would measure the
      // limiter, not the server. The per-device budget is the production default.
      RATE_LIMIT_GENERAL_PER_MINUTE: "100000000",
      RATE_LIMIT_ADMIN_PER_MINUTE: "100000000",
      RATE_LIMIT_DEVICE_PER_MINUTE: "100000000",
      RATE_LIMIT_AUTH_FAILURES_PER_MINUTE: "100000000",
      WS_MAX_DEVICE_SOCKETS_PER_IP: "100000",
      HTTP_MAX_REQUESTS_PER_CLIENT: "100000",
      // A bulk command may name 10,000 device ids (the contract's maximum): about 400 KB,
      // above the default 64 KB body limit.
      BODY_LIMIT_BYTES: String(1024 * 1024),
    },
  });
  const url = `http://127.0.0.1:${port}`;
  await waitForHealth(url, child);
  return { url, pid: child.pid!, stop: stopper(child) };
}

async function startFloor(databaseUrl: string): Promise<Server> {
  const child = spawnScript("floor-server.ts", { BENCH_JOB: JSON.stringify({ databaseUrl }) });
  const line = await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout! }).once("line", resolve);
    child.once("exit", (code) => reject(new Error(`floor exited with ${code}`)));
  });
  const { url } = JSON.parse(line) as { url: string };
  return { url, pid: child.pid!, stop: stopper(child) };
}

/**
 * CPU time a process has used, user + system, all threads (ms; /proc counts in USER_HZ
 * ticks, 100 a second on Linux). Unlike a rate, the CPU a server spends per heartbeat hardly
 * moves with what else runs on the machine.
 */
function cpuMs(pid: number): number {
  // The fields after the command name, which is in parentheses and may hold spaces.
  const fields = readFileSync(`/proc/${pid}/stat`, "utf8").split(") ")[1]!.split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** A load run against `server`, with the CPU its process spent on it. */
async function measuredLoad(server: Server, job: HttpLoadJob): Promise<HttpLoadResult & { cpuMsPerHeartbeat: number }> {
  const before = cpuMs(server.pid);
  const result = await httpLoad(job);
  return { ...result, cpuMsPerHeartbeat: round((cpuMs(server.pid) - before) / Math.max(1, result.ok), 3) };
}

function rssBytes(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return match ? Number(match[1]) * 1024 : 0;
}

const MEMORY_SAMPLE_MS = 10_000;

type MemorySample = { atSeconds: number; rssMb: number; heapUsedMb: number };

/** The API's V8 heap in use (prom-client's default metrics), MB. */
async function heapUsedMb(apiUrl: string): Promise<number> {
  const text = await (await fetch(`${apiUrl}/api/metrics`)).text();
  return round(Number(/^nodejs_heap_size_used_bytes (\S+)$/m.exec(text)?.[1] ?? 0) / 1024 / 1024);
}

/**
 * `load` with the API's RSS and heap sampled every MEMORY_SAMPLE_MS, so growth can be told
 * from warm-up (caches filling, V8 sizing its heap in the first minutes): a leak keeps
 * growing past it. Samples are taken one after another, the last once the load is done.
 */
async function withMemorySamples<T>(api: Server, load: () => Promise<T>): Promise<{ result: T; samples: MemorySample[] }> {
  const started = Date.now();
  const samples: MemorySample[] = [];
  const sample = async () => {
    const rssMb = round(rssBytes(api.pid) / 1024 / 1024);
    samples.push({ atSeconds: round((Date.now() - started) / 1000), rssMb, heapUsedMb: await heapUsedMb(api.url) });
  };
  await sample();
  let sampling: Promise<void> = Promise.resolve();
  const timer = setInterval(() => {
    sampling = sampling.then(sample).catch(() => undefined);
  }, MEMORY_SAMPLE_MS);
  try {
    const result = await load();
    clearInterval(timer);
    await sampling;
    await sample().catch(() => undefined);
    return { result, samples };
  } finally {
    clearInterval(timer);
  }
}

/**
 * RSS growth over the whole run, and past the warm-up: the mean of the last quarter of the
 * samples against the mean of the second quarter (single samples swing by several percent
 * with the heap's sawtooth). Flagged above 5%.
 */
function memoryGrowth(samples: MemorySample[]) {
  const first = samples[0]!;
  const last = samples.at(-1)!;
  const end = last.atSeconds;
  const meanRss = (from: number, to: number) => {
    const window = samples.filter((sample) => sample.atSeconds >= from && sample.atSeconds <= to);
    return window.length === 0 ? last.rssMb : window.reduce((sum, sample) => sum + sample.rssMb, 0) / window.length;
  };
  const percent = (from: number, to: number) => round(((to - from) / Math.max(1, from)) * 100);
  const secondQuarter = meanRss(end / 4, end / 2);
  const lastQuarter = meanRss((end * 3) / 4, end);
  const afterWarmUpGrowthPercent = percent(secondQuarter, lastQuarter);
  return {
    rssMb: {
      start: first.rssMb,
      secondQuarterMean: round(secondQuarter),
      lastQuarterMean: round(lastQuarter),
      end: last.rssMb,
      max: Math.max(...samples.map((sample) => sample.rssMb)),
    },
    heapUsedMb: { min: Math.min(...samples.map((sample) => sample.heapUsedMb)), max: Math.max(...samples.map((sample) => sample.heapUsedMb)) },
    growthPercent: percent(first.rssMb, last.rssMb),
    afterWarmUpGrowthPercent,
    grew: afterWarmUpGrowthPercent > 5,
  };
}

async function adminFetch(apiUrl: string, method: string, pathWithQuery: string, body?: unknown): Promise<Response> {
  const text = body === undefined ? undefined : JSON.stringify(body);
  const headers = await signAdminRequest({
    adminKey: SECRETS.ADMIN_KEY,
    hmacSecret: SECRETS.HMAC_SECRET,
    method,
    host: new URL(apiUrl).host,
    pathWithQuery,
    ...(text ? { body: text } : {}),
  });
  return fetch(`${apiUrl}${pathWithQuery}`, { method, headers: { ...headers, ...(text ? { "Content-Type": "application/json" } : {}) }, body: text });
}

type ApiCounters = { statements: number; heartbeats: number; lookupStatements: number; lookups: number; shed: Record<string, number> };

/**
 * The API's own counters (GET /api/metrics, answered to a direct call from this host):
 * heartbeat statements and the heartbeats they carried (group commit), and refusals by reason.
 */
async function apiCounters(apiUrl: string): Promise<ApiCounters> {
  const text = await (await fetch(`${apiUrl}/api/metrics`)).text();
  const value = (pattern: RegExp) => Number(pattern.exec(text)?.[1] ?? 0);
  const shed = Object.fromEntries([...text.matchAll(/^mdm_requests_shed_total\{reason="([^"]+)"\} (\S+)$/gm)].map((match) => [match[1]!, Number(match[2])]));
  return {
    statements: value(/^mdm_heartbeat_batch_size_count (\S+)$/m),
    heartbeats: value(/^mdm_heartbeat_batch_size_sum (\S+)$/m),
    lookupStatements: value(/^mdm_device_token_lookup_batch_size_count (\S+)$/m),
    lookups: value(/^mdm_device_token_lookup_batch_size_sum (\S+)$/m),
    shed,
  };
}

/** What the API counted between two readings: heartbeats per statement, device tokens looked up (not cached) per statement, and refusals by reason. */
function countedBetween(before: ApiCounters, after: ApiCounters) {
  const statements = after.statements - before.statements;
  const heartbeats = after.heartbeats - before.heartbeats;
  const lookupStatements = after.lookupStatements - before.lookupStatements;
  const lookups = after.lookups - before.lookups;
  const shed = Object.fromEntries(
    Object.entries(after.shed)
      .map(([reason, count]) => [reason, count - (before.shed[reason] ?? 0)] as const)
      .filter(([, count]) => count > 0),
  );
  return {
    statements,
    heartbeats,
    perStatement: round(heartbeats / Math.max(1, statements), 1),
    tokenLookups: { statements: lookupStatements, tokens: lookups, perStatement: round(lookups / Math.max(1, lookupStatements), 1) },
    shed,
  };
}

async function telemetryRows(db: Client): Promise<number> {
  return Number((await db.query<{ count: string }>(`SELECT count(*) FROM "TelemetryEvent"`)).rows[0]!.count);
}

/** Real heartbeats from a sample of the inserted devices: each must be accepted and recorded. */
async function verifySample(apiUrl: string, tokens: string[], db: Client): Promise<{ sampled: number; accepted: number; recorded: number }> {
  const sample = Array.from({ length: 20 }, (_, i) => Math.floor((i * tokens.length) / 20));
  const before = await telemetryRows(db);
  let accepted = 0;
  for (const index of sample) {
    const res = await fetch(`${apiUrl}/v1/heartbeat`, {
      method: "POST",
      headers: { "Content-Type": "application/json", Authorization: `Bearer ${tokens[index]}` },
      body: heartbeatBody(index, appVersionOf(index)),
    });
    if (res.ok && HeartbeatResponse.safeParse(await res.json()).success) accepted++;
  }
  return { sampled: sample.length, accepted, recorded: (await telemetryRows(db)) - before };
}

export const httpLoad = (job: HttpLoadJob) => runScript<HttpLoadResult>("http-load.ts", job);

/** Heartbeats over HTTP through the API, counting the telemetry rows they wrote. */
async function countedLoad(db: Client, job: HttpLoadJob): Promise<HttpLoadResult & { telemetryRows: number }> {
  const before = await telemetryRows(db);
  const result = await httpLoad(job);
  return { ...result, telemetryRows: (await telemetryRows(db)) - before };
}

// Unmeasured requests before each list query's samples, the first one's time reported. A
// PostgreSQL backend maps the shared buffers it reads page by page, the first time it reads
// them: on this VM a new session's first count of the listing (23 MB) took 65 ms, the next
// 7 ms, and the API's pool replaces a connection idle for 10 s. (In the runs of 2026-12-02
// the first requests were mostly not the slow ones: this is not what sets the p95s.)
const LIST_WARMUP_REQUESTS = 3;

/** Each list query's samples' p50 and p95, and the time of its first (unmeasured) request. */
async function listQueryLatencies(apiUrl: string): Promise<Record<string, { first: number; p50: number; p95: number; status: number }>> {
  const queries: Record<string, string> = {
    "sort=enrolledAt": "/admin/devices?sort=enrolledAt",
    "sort=lastSeenAt": "/admin/devices?sort=lastSeenAt",
    "sort=batteryLevel": "/admin/devices?sort=batteryLevel&order=asc",
    "sort=alias": "/admin/devices?sort=alias&order=asc",
    "sort=model": "/admin/devices?sort=model",
    "sort=appVersion": "/admin/devices?sort=appVersion",
    "status=online": "/admin/devices?status=online",
    "status=offline": "/admin/devices?status=offline",
    "group=store-7": "/admin/devices?group=store-7",
    "batteryBelow=20": "/admin/devices?batteryBelow=20",
    "appVersion=3.1.0": "/admin/devices?appVersion=3.1.0",
    "search=kiosk-4242": "/admin/devices?search=kiosk-4242",
    "search=pixel": "/admin/devices?search=pixel",
    "fleet/summary": "/admin/fleet/summary",
  };
  const first = (await (await adminFetch(apiUrl, "GET", "/admin/devices?sort=enrolledAt")).json()) as { nextCursor?: string | null };
  if (first.nextCursor) queries["sort=enrolledAt, page 2 (cursor)"] = `/admin/devices?sort=enrolledAt&cursor=${first.nextCursor}`;
  const results: Record<string, { first: number; p50: number; p95: number; status: number }> = {};
  for (const [name, pathWithQuery] of Object.entries(queries)) {
    const times: number[] = [];
    let status = 0;
    const warmups: number[] = [];
    for (let i = 0; i < LIST_WARMUP_REQUESTS; i++) {
      const started = performance.now();
      await (await adminFetch(apiUrl, "GET", pathWithQuery)).arrayBuffer();
      warmups.push(performance.now() - started);
    }
    for (let i = 0; i < PLAN.listSamples; i++) {
      const started = performance.now();
      const res = await adminFetch(apiUrl, "GET", pathWithQuery);
      await res.arrayBuffer();
      times.push(performance.now() - started);
      status = res.status;
    }
    times.sort((a, b) => a - b);
    results[name] = { first: round(warmups[0]!), p50: round(percentile(times, 50)), p95: round(percentile(times, 95)), status };
  }
  return results;
}

/**
 * A ping to `count` devices holding WebSockets, from the POST until the batch is done. They
 * are put in a group of their own, the bulk command's target (a list of ids holds at most
 * 1,000, as the contract allows).
 */
async function bulkCommand(db: Client, api: Server, tokensFile: string, tokens: string[], count: number) {
  const rssBefore = rssBytes(api.pid);
  const job: WsJob = { url: api.url, tokensFile, sockets: count, mode: "fleet" };
  const fleet = spawnScript("ws-devices.ts", { BENCH_JOB: JSON.stringify(job) });
  const lines = createInterface({ input: fleet.stdout! });
  const ready = JSON.parse(await new Promise<string>((resolve) => lines.once("line", resolve))) as WsFleetReady;
  const rssConnected = rssBytes(api.pid);
  const deviceIds = tokens.slice(0, count).map((token) => token.split(".")[0]!);
  await db.query(`UPDATE "Device" SET groups = ARRAY['bench-bulk'] WHERE id = ANY($1::uuid[])`, [deviceIds]);
  const started = performance.now();
  const created = await adminFetch(api.url, "POST", "/admin/commands/bulk", { type: "ping", payload: {}, target: { group: "bench-bulk" } });
  if (created.status !== 202) throw new Error(`bulk command answered ${created.status}: ${await created.text()}`);
  let batch = CommandBatch.parse(await created.json());
  const deadline = Date.now() + 300_000;
  while (!batch.done && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 200));
    const polled = await adminFetch(api.url, "GET", `/admin/batches/${batch.batchId}`);
    if (polled.status !== 200) throw new Error(`GET /admin/batches/{id} answered ${polled.status}: ${await polled.text()}`);
    batch = CommandBatch.parse(await polled.json());
  }
  const seconds = (performance.now() - started) / 1000;
  const exited = new Promise((resolve) => fleet.on("exit", resolve));
  fleet.kill("SIGTERM");
  await exited;
  return {
    devices: count,
    connected: ready.connected,
    done: batch.done,
    succeeded: batch.counts.succeeded,
    allSucceeded: batch.done && batch.counts.succeeded === count,
    seconds: round(seconds, 2),
    apiRssPerSocketKb: round((rssConnected - rssBefore) / 1024 / Math.max(1, ready.connected), 1),
  };
}

/**
 * The floor makes the bare writes of a heartbeat: its copy of the database drops the triggers
 * by which the API's schema keeps the device list's narrow copy (DeviceListing), so the
 * listing's update counts against the API, not the floor.
 */
async function withoutListingTriggers(databaseUrl: string): Promise<void> {
  const client = new Client({ connectionString: databaseUrl });
  await client.connect();
  await client.query(`DROP TRIGGER "Device_listing_insert" ON "Device"; DROP TRIGGER "Device_listing_update" ON "Device"`);
  await client.end();
}

type HotRatio = { updates: number; hotUpdates: number; ratio: number };

const AUTOVACUUM_SAMPLE_MS = 250;

/**
 * `work` with PostgreSQL's autovacuum workers sampled beside it: the share of samples in
 * which one ran, and on which tables. After the long run's updates they may share the
 * cores with the list queries, which a p95 shows and a p50 hardly does.
 */
async function withAutovacuumSampled<T>(db: Client, work: () => Promise<T>) {
  // A server may run without it (this project's CI machines do: autovacuum = off); then
  // nothing the run left behind was vacuumed, as a default server would have done.
  const enabled = (await db.query<{ autovacuum: string }>("SHOW autovacuum")).rows[0]?.autovacuum === "on";
  const tables = new Set<string>();
  let samples = 0;
  let busy = 0;
  let done = false;
  // A failed sample ends the sampling (it is reported as such), not the phase.
  let failed: string | undefined;
  const sampling = (async () => {
    while (!done) {
      const { rows } = await db.query<{ query: string }>(`SELECT query FROM pg_stat_activity WHERE backend_type = 'autovacuum worker' AND query <> ''`);
      samples++;
      if (rows.length > 0) busy++;
      for (const { query } of rows) tables.add(query.replace(/^autovacuum: /, ""));
      await new Promise((resolve) => setTimeout(resolve, AUTOVACUUM_SAMPLE_MS));
    }
  })().catch((error: unknown) => {
    failed = error instanceof Error ? error.message : String(error);
  });
  let result: T;
  try {
    result = await work();
  } finally {
    done = true;
    await sampling;
  }
  return {
    result,
    autovacuum: { enabled, samples, busyShare: round(busy / Math.max(1, samples), 2), tables: [...tables].sort(), ...(failed ? { failed } : {}) },
  };
}

/** Device's and DeviceListing's heap size and live and dead row versions: what the list queries scan. */
async function tableStates(db: Client) {
  await db.query("SELECT pg_stat_clear_snapshot()");
  const { rows } = await db.query<{ relname: string; heap_mb: string; live: string; dead: string }>(
    `SELECT relname, round(pg_relation_size(relid) / 1048576.0, 1) AS heap_mb, n_live_tup AS live, n_dead_tup AS dead
     FROM pg_stat_user_tables WHERE relname IN ('Device', 'DeviceListing') ORDER BY relname`,
  );
  return Object.fromEntries(rows.map((row) => [row.relname, { heapMb: Number(row.heap_mb), live: Number(row.live), dead: Number(row.dead) }]));
}

type HotCounters = { device: { updates: number; hotUpdates: number }; listing: { updates: number; hotUpdates: number }; online: number };

/** pg_stat_user_tables' update counters of Device and DeviceListing, and the devices online now. */
async function hotCounters(db: Client): Promise<HotCounters> {
  await new Promise((resolve) => setTimeout(resolve, 1500)); // statistics reach pg_stat_* within a second
  await db.query("SELECT pg_stat_clear_snapshot()");
  const { rows } = await db.query<{ relname: string; n_tup_upd: string; n_tup_hot_upd: string }>(
    `SELECT relname, n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables WHERE relname IN ('Device', 'DeviceListing')`,
  );
  const of = (table: string) => {
    const row = rows.find((candidate) => candidate.relname === table)!;
    return { updates: Number(row.n_tup_upd), hotUpdates: Number(row.n_tup_hot_upd) };
  };
  const online = await db.query<{ count: string }>(`SELECT count(*) FROM "DeviceListing" WHERE online`);
  return { device: of("Device"), listing: of("DeviceListing"), online: Number(online.rows[0]!.count) };
}

/** The counters of a database just created: from there, a ratio is the whole run's. */
const NO_UPDATES = { device: { updates: 0, hotUpdates: 0 }, listing: { updates: 0, hotUpdates: 0 } };

type HotReport = { ratio: number; device: HotRatio; listing: HotRatio; onlineAtStart?: number; onlineAtEnd: number };

/**
 * HOT updates among the updates of Device and of DeviceListing (each heartbeat updates
 * both) between two readings. A device going offline or coming back is never a HOT update
 * of its listing row (the offline index's predicate reads `online`), so a ratio over a
 * stretch where devices change state counts those too.
 */
function hotRatio(to: HotCounters, from?: HotCounters): HotReport {
  const start = from ?? NO_UPDATES;
  const of = (table: "device" | "listing"): HotRatio => {
    const updates = to[table].updates - start[table].updates;
    const hotUpdates = to[table].hotUpdates - start[table].hotUpdates;
    return { updates, hotUpdates, ratio: round(hotUpdates / Math.max(1, updates), 3) };
  };
  const device = of("device");
  const listing = of("listing");
  const ratio = round((device.hotUpdates + listing.hotUpdates) / Math.max(1, device.updates + listing.updates), 3);
  return { ratio, device, listing, ...(from && { onlineAtStart: from.online }), onlineAtEnd: to.online };
}

async function main() {
  const stamp = Date.now();
  const apiDb = `mdm_bench_api_${stamp}`;
  const floorDb = `mdm_bench_floor_${stamp}`;
  const workDir = mkdtempSync(path.join(os.tmpdir(), "mdm-bench-"));
  const tokensFile = path.join(workDir, "tokens.txt");
  const admin = new Client({ connectionString: SERVER_URL });
  await admin.connect();
  const stops: Array<() => Promise<void>> = [];
  try {
    await admin.query(`CREATE DATABASE "${apiDb}"`);
    await migrate(databaseUrlFor(apiDb), DEFAULT_MIGRATIONS_DIR);
    log(`inserting ${DEVICES} devices; HTTP load by ${LOAD_GENERATOR}`);
    const tokens = await seedDevices(databaseUrlFor(apiDb), DEVICES, tokensFile);
    await admin.query(`CREATE DATABASE "${floorDb}" TEMPLATE "${apiDb}"`);
    await withoutListingTriggers(databaseUrlFor(floorDb));

    const api = await startApi(databaseUrlFor(apiDb));
    stops.push(api.stop);
    const floor = await startFloor(databaseUrlFor(floorDb));
    stops.push(floor.stop);
    const db = new Client({ connectionString: databaseUrlFor(apiDb) });
    await db.connect();
    stops.push(() => db.end());
    const rssAtStart = rssBytes(api.pid);

    const verified = await verifySample(api.url, tokens, db);
    log(`sample verified: ${JSON.stringify(verified)}`);
    if (ONLY) {
      await onlyPhases(ONLY, { api, floor, db, tokens, tokensFile });
      return;
    }
    const base = { tokensFile, connections: CONNECTIONS, generator: LOAD_GENERATOR };
    await httpLoad({ ...base, url: floor.url, seconds: PLAN.warmupSeconds });
    await httpLoad({ ...base, url: api.url, seconds: PLAN.warmupSeconds });

    log("max throughput (interleaved rounds)");
    type Measured = Awaited<ReturnType<typeof measuredLoad>>;
    const rounds: { api: Measured[]; floor: Measured[] } = { api: [], floor: [] };
    const countersAtMax = await apiCounters(api.url);
    for (let i = 0; i < PLAN.maxRounds; i++) {
      rounds.floor.push(await measuredLoad(floor, { ...base, url: floor.url, seconds: PLAN.maxSeconds }));
      rounds.api.push(await measuredLoad(api, { ...base, url: api.url, seconds: PLAN.maxSeconds }));
    }
    const best = <T extends HttpLoadResult>(results: T[]) => results.reduce((a, b) => (b.requestsPerSecond > a.requestsPerSecond ? b : a));
    const countersAtFixed = await apiCounters(api.url);
    const maxApi = best(rounds.api);
    const maxFloor = best(rounds.floor);
    logResult("max throughput", { api: maxApi, floor: maxFloor });

    const rate = Math.max(100, Math.min(TARGET_RATE, maxFloor.requestsPerSecond));
    log(`fixed rate ${rate}/s for ${PLAN.fixedSeconds} s`);
    const fixedJob = { ...base, connections: RATE_CONNECTIONS, rate, amount: rate * PLAN.fixedSeconds };
    const fixedFloor = await httpLoad({ ...fixedJob, url: floor.url });
    const fixedApi = await countedLoad(db, { ...fixedJob, url: api.url });
    logResult("fixed rate", { api: fixedApi, floor: fixedFloor });

    // At the fixed rate the floor alone keeps these cores nearly busy, so its p99 is mostly
    // queueing; at half that rate the p99 is what each server adds while cores are to spare.
    const halfRate = Math.max(50, Math.round(rate / 2));
    log(`half rate ${halfRate}/s for ${PLAN.fixedSeconds} s`);
    const countersAtHalf = await apiCounters(api.url);
    const halfJob = { ...base, connections: RATE_CONNECTIONS, rate: halfRate, amount: halfRate * PLAN.fixedSeconds };
    const halfFloor = await httpLoad({ ...halfJob, url: floor.url });
    const halfApi = await countedLoad(db, { ...halfJob, url: api.url });
    logResult("half rate", { api: halfApi, floor: halfFloor });

    log(`websocket heartbeats at ${rate}/s over ${PLAN.wsSockets} sockets`);
    const countersAtWs = await apiCounters(api.url);
    const wsBefore = await telemetryRows(db);
    const ws = await runScript<WsHeartbeatResult>("ws-devices.ts", {
      url: api.url,
      tokensFile,
      sockets: PLAN.wsSockets,
      mode: "heartbeats",
      rate,
      seconds: PLAN.fixedSeconds,
    } satisfies WsJob);
    const wsTelemetry = (await telemetryRows(db)) - wsBefore;
    logResult("websocket", { ...ws, telemetryRows: wsTelemetry });
    const countersAtLong = await apiCounters(api.url);

    // Memory is measured at a rate the API sustains, so the run lasts as long as planned.
    const longRate = Math.max(50, Math.min(rate, Math.floor(maxApi.requestsPerSecond * 0.8)));
    log(`long run: ${longRate}/s for ${PLAN.longSeconds} s`);
    // Halfway through, every device has been heard in this run if one pass over the fleet
    // (tokens / longRate seconds) fits in half the run and within the offline threshold, and
    // none was refused: from then on no device goes offline or comes back, and the HOT ratio
    // is that of heartbeats alone. Otherwise the table flags the figure.
    const passSeconds = tokens.length / longRate;
    const halfway = new Promise<HotCounters>((resolve, reject) => {
      setTimeout(() => hotCounters(db).then(resolve, reject), (PLAN.longSeconds * 1000) / 2).unref();
    });
    // Awaited after the long run: a reading that fails must not end the bench before then.
    halfway.catch(() => undefined);
    const { result: longRun, samples: memorySamples } = await withMemorySamples(api, () =>
      countedLoad(db, { ...base, url: api.url, connections: RATE_CONNECTIONS, rate: longRate, amount: longRate * PLAN.longSeconds }),
    );
    const memory = memoryGrowth(memorySamples);
    const countersAfterLong = await apiCounters(api.url);
    logResult("long run", { ...longRun, memory });

    const hotAtEnd = await hotCounters(db);
    const heartbeatsAlone = passSeconds < Math.min(PLAN.longSeconds / 2, BENCH_OFFLINE_AFTER_SECONDS) && longRun.errors === 0;
    const hot = {
      ...hotRatio(hotAtEnd),
      longRunSecondHalf: { ...hotRatio(hotAtEnd, await halfway), passSeconds: round(passSeconds), heartbeatsAlone },
    };
    log("list queries");
    const { result: listQueries, autovacuum: autovacuumDuringList } = await withAutovacuumSampled(db, () => listQueryLatencies(api.url));
    logResult("list queries", { hot, tables: await tableStates(db), listQueries, autovacuumDuringList });
    log(`bulk command to ${Math.min(PLAN.bulkDevices, DEVICES)} websocket devices`);
    const bulk = await bulkCommand(db, api, tokensFile, tokens, Math.min(PLAN.bulkDevices, DEVICES));

    const mb = (bytes: number) => round(bytes / 1024 / 1024);
    const counted = fixedApi.ok + halfApi.ok + ws.ok + longRun.ok;
    const written = fixedApi.telemetryRows + halfApi.telemetryRows + wsTelemetry + longRun.telemetryRows;
    const report = {
      date: new Date().toISOString(),
      quick: QUICK,
      machine: { cpus: os.cpus().length, ramGb: round(os.totalmem() / 1024 ** 3), node: process.version },
      devices: DEVICES,
      loadGenerator: LOAD_GENERATOR,
      sampleVerified: verified,
      maxThroughput: {
        connections: CONNECTIONS,
        seconds: PLAN.maxSeconds,
        rounds: PLAN.maxRounds,
        api: maxApi,
        floor: maxFloor,
        ratio: round(maxApi.requestsPerSecond / Math.max(1, maxFloor.requestsPerSecond), 3),
        // The server process's CPU per heartbeat answered (PostgreSQL's not included), and API / floor.
        cpuMsPerHeartbeat: { api: maxApi.cpuMsPerHeartbeat, floor: maxFloor.cpuMsPerHeartbeat },
        cpuRatio: round(maxApi.cpuMsPerHeartbeat / Math.max(0.001, maxFloor.cpuMsPerHeartbeat), 2),
        allRounds: rounds,
      },
      fixedRate: { rate, seconds: PLAN.fixedSeconds, connections: RATE_CONNECTIONS, api: fixedApi, floor: fixedFloor },
      halfRate: { rate: halfRate, seconds: PLAN.fixedSeconds, connections: RATE_CONNECTIONS, api: halfApi, floor: halfFloor },
      websocket: { rate, seconds: PLAN.fixedSeconds, ...ws, telemetryRows: wsTelemetry },
      memory: {
        longRunSeconds: PLAN.longSeconds,
        rate: longRate,
        longRun,
        rssAtStartMb: mb(rssAtStart),
        ...memory,
        samples: memorySamples,
      },
      heartbeatsCounted: { answered2xx: counted, telemetryRows: written, equal: counted === written },
      // Per phase, as the API counted: heartbeats per statement, and heartbeats or requests it refused by reason.
      apiCounted: {
        maxThroughput: countedBetween(countersAtMax, countersAtFixed),
        fixedRate: countedBetween(countersAtFixed, countersAtHalf),
        halfRate: countedBetween(countersAtHalf, countersAtWs),
        websocket: countedBetween(countersAtWs, countersAtLong),
        longRun: countedBetween(countersAtLong, countersAfterLong),
      },
      hot,
      listQueries,
      autovacuumDuringList,
      listQueriesOver50msP95: Object.entries(listQueries)
        .filter(([, value]) => value.p95 > 50)
        .map(([name]) => name),
      bulkCommand: bulk,
    };
    printTable(report);
    console.log(JSON.stringify(report));
  } finally {
    for (const stop of stops.reverse()) await stop().catch(() => undefined);
    await admin.query(`DROP DATABASE IF EXISTS "${apiDb}" WITH (FORCE)`);
    await admin.query(`DROP DATABASE IF EXISTS "${floorDb}" WITH (FORCE)`);
    await admin.end();
    rmSync(workDir, { recursive: true, force: true });
  }
}

/** BENCH_ONLY: the named phases alone, each logging its figures (the fixed rate is TARGET_RATE). */
async function onlyPhases(phases: string[], run: { api: Server; floor: Server; db: Client; tokens: string[]; tokensFile: string }) {
  const { api, floor, db, tokens, tokensFile } = run;
  const base = { tokensFile, connections: CONNECTIONS, generator: LOAD_GENERATOR };
  for (const phase of phases) {
    const before = await apiCounters(api.url);
    if (phase === "max")
      logResult(phase, {
        floor: await measuredLoad(floor, { ...base, url: floor.url, seconds: PLAN.maxSeconds }),
        api: await measuredLoad(api, { ...base, url: api.url, seconds: PLAN.maxSeconds }),
      });
    else if (phase === "fixed" || phase === "half") {
      // The floor at the same rate (TARGET_RATE, or half of it; a full run caps TARGET_RATE at the floor's best): a p99 means something only beside the floor's.
      const rate = phase === "fixed" ? TARGET_RATE : Math.round(TARGET_RATE / 2);
      const fixedJob = { ...base, connections: RATE_CONNECTIONS, rate, amount: rate * PLAN.fixedSeconds };
      logResult(phase, { floor: await httpLoad({ ...fixedJob, url: floor.url }), api: await countedLoad(db, { ...fixedJob, url: api.url }) });
    } else if (phase === "long") {
      const { result, samples } = await withMemorySamples(api, () =>
        countedLoad(db, { ...base, url: api.url, connections: RATE_CONNECTIONS, rate: TARGET_RATE, amount: TARGET_RATE * PLAN.longSeconds }),
      );
      logResult(phase, { ...result, memory: memoryGrowth(samples), samples });
    } else if (phase === "websocket") {
      const job: WsJob = { url: api.url, tokensFile, sockets: PLAN.wsSockets, mode: "heartbeats", rate: TARGET_RATE, seconds: PLAN.fixedSeconds };
      logResult(phase, await runScript<WsHeartbeatResult>("ws-devices.ts", job));
    } else if (phase === "list") {
      const { result: listQueries, autovacuum } = await withAutovacuumSampled(db, () => listQueryLatencies(api.url));
      logResult(phase, { hot: hotRatio(await hotCounters(db)), tables: await tableStates(db), listQueries, autovacuumDuringList: autovacuum });
    } else if (phase === "bulk") logResult(phase, await bulkCommand(db, api, tokensFile, tokens, Math.min(PLAN.bulkDevices, DEVICES)));
    else throw new Error(`unknown phase ${phase}`);
    logResult(`${phase} (API counted)`, countedBetween(before, await apiCounters(api.url)));
  }
}

type Report = {
  loadGenerator: string;
  maxThroughput: { api: HttpLoadResult; floor: HttpLoadResult; ratio: number; cpuMsPerHeartbeat: { api: number; floor: number }; cpuRatio: number };
  fixedRate: { rate: number; api: HttpLoadResult; floor: HttpLoadResult };
  halfRate: { rate: number; api: HttpLoadResult; floor: HttpLoadResult };
  websocket: WsHeartbeatResult;
  memory: { longRunSeconds: number } & ReturnType<typeof memoryGrowth>;
  heartbeatsCounted: { answered2xx: number; telemetryRows: number };
  apiCounted: Record<"maxThroughput" | "fixedRate" | "halfRate" | "websocket" | "longRun", ReturnType<typeof countedBetween>>;
  hot: HotReport & { longRunSecondHalf: HotReport & { passSeconds: number; heartbeatsAlone: boolean } };
  listQueries: Record<string, { first: number; p50: number; p95: number }>;
  autovacuumDuringList: { enabled: boolean; samples: number; busyShare: number; tables: string[] };
  bulkCommand: { devices: number; succeeded: number; seconds: number; apiRssPerSocketKb: number };
};

/** The markdown table RESULTS.md and the README keep. */
function printTable(r: Report) {
  const rows = [
    ["HTTP load generator (its own process)", r.loadGenerator],
    [
      "Max heartbeats/s (HTTP), API / floor",
      `${r.maxThroughput.api.requestsPerSecond} / ${r.maxThroughput.floor.requestsPerSecond} (${r.maxThroughput.ratio}×), errors ${r.maxThroughput.api.errors} / ${r.maxThroughput.floor.errors}`,
    ],
    [
      "CPU ms per heartbeat at max throughput (server process), API / floor",
      `${r.maxThroughput.cpuMsPerHeartbeat.api} / ${r.maxThroughput.cpuMsPerHeartbeat.floor} (${r.maxThroughput.cpuRatio}×)`,
    ],
    [`p50 / p99 at ${r.fixedRate.rate}/s, API (HTTP)`, `${r.fixedRate.api.p50} / ${r.fixedRate.api.p99} ms, errors ${r.fixedRate.api.errors}`],
    [`p50 / p99 at ${r.fixedRate.rate}/s, floor`, `${r.fixedRate.floor.p50} / ${r.fixedRate.floor.p99} ms`],
    [`p50 / p99 at ${r.halfRate.rate}/s (half that rate), API (HTTP)`, `${r.halfRate.api.p50} / ${r.halfRate.api.p99} ms, errors ${r.halfRate.api.errors}`],
    [`p50 / p99 at ${r.halfRate.rate}/s, floor`, `${r.halfRate.floor.p50} / ${r.halfRate.floor.p99} ms`],
    [`p50 / p99 at ${r.fixedRate.rate}/s, API (WebSocket)`, `${r.websocket.p50} / ${r.websocket.p99} ms, errors ${r.websocket.errors}`],
    [
      `API RSS over ${r.memory.longRunSeconds} s, sampled every 10 s: start → mean of the 2nd quarter → of the last quarter (max); V8 heap in use`,
      `${r.memory.rssMb.start} → ${r.memory.rssMb.secondQuarterMean} → ${r.memory.rssMb.lastQuarterMean} MB (${r.memory.rssMb.max}): ${r.memory.afterWarmUpGrowthPercent}% past the warm-up${r.memory.grew ? " (GREW)" : ""}, ${r.memory.growthPercent}% overall; heap ${r.memory.heapUsedMb.min}-${r.memory.heapUsedMb.max} MB`,
    ],
    ["Heartbeats answered 2xx / telemetry rows", `${r.heartbeatsCounted.answered2xx} / ${r.heartbeatsCounted.telemetryRows}`],
    [
      "Heartbeats per statement (API): max / fixed HTTP / half rate / WebSocket / long run",
      [r.apiCounted.maxThroughput, r.apiCounted.fixedRate, r.apiCounted.halfRate, r.apiCounted.websocket, r.apiCounted.longRun]
        .map((phase) => phase.perStatement)
        .join(" / "),
    ],
    [
      "Device tokens looked up / per statement (API): max / fixed HTTP / half rate / WebSocket / long run",
      [r.apiCounted.maxThroughput, r.apiCounted.fixedRate, r.apiCounted.halfRate, r.apiCounted.websocket, r.apiCounted.longRun]
        .map((phase) => `${phase.tokenLookups.tokens} / ${phase.tokenLookups.perStatement}`)
        .join(", "),
    ],
    ["Refused by the API (reason: count)", refusals(r.apiCounted)],
    ["HOT ratio (Device, DeviceListing), whole run", `${r.hot.ratio} (${r.hot.device.ratio}, ${r.hot.listing.ratio})`],
    [
      "HOT ratio (Device, DeviceListing), long run's second half (devices online then / at its end; one pass over the fleet)",
      `${r.hot.longRunSecondHalf.ratio} (${r.hot.longRunSecondHalf.device.ratio}, ${r.hot.longRunSecondHalf.listing.ratio}); online ${r.hot.longRunSecondHalf.onlineAtStart} / ${r.hot.longRunSecondHalf.onlineAtEnd}; pass ${r.hot.longRunSecondHalf.passSeconds} s: ${r.hot.longRunSecondHalf.heartbeatsAlone ? "heartbeats alone" : "NOT heartbeats alone (a pass longer than half the run or the offline threshold, or refusals)"}`,
    ],
    ...Object.entries(r.listQueries).map(([name, value]) => [
      `List query p50 / p95 (first request), ${name}`,
      `${value.p50} / ${value.p95} ms (${value.first})`,
    ]),
    [
      "Autovacuum beside the list queries (share of samples)",
      r.autovacuumDuringList.enabled
        ? `${r.autovacuumDuringList.busyShare} of ${r.autovacuumDuringList.samples} samples${r.autovacuumDuringList.tables.length ? `: ${r.autovacuumDuringList.tables.join(", ")}` : ""}`
        : "off on this server (autovacuum = off): nothing was vacuumed during the run",
    ],
    [
      `Bulk ping to ${r.bulkCommand.devices} WebSocket devices`,
      `${r.bulkCommand.succeeded} succeeded in ${r.bulkCommand.seconds} s; ${r.bulkCommand.apiRssPerSocketKb} KB RSS per socket`,
    ],
  ];
  console.log(["| Measure | Result |", "|---|---|", ...rows.map(([name, value]) => `| ${name} | ${value} |`)].join("\n"));
}

function refusals(counted: Report["apiCounted"]): string {
  const phases = Object.entries(counted)
    .filter(([, phase]) => Object.keys(phase.shed).length > 0)
    .map(
      ([name, phase]) =>
        `${name}: ${Object.entries(phase.shed)
          .map(([reason, count]) => `${reason} ${count}`)
          .join(", ")}`,
    );
  return phases.length > 0 ? phases.join("; ") : "none";
}

if (require.main === module) {
  main().catch((error) => {
    console.error(error);
    process.exit(1);
  });
}
