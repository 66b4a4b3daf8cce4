// Heartbeat throughput of the API against two floors measured in the same run, on the
// same database, by bare node:http servers with a pg pool:
//   minimal:  the least a heartbeat must do (parse JSON, one UPDATE by primary key);
//   sameSql:  the statement the API runs per heartbeat (update the live state, append
//             telemetry, look up pending commands and policies), without the framework.
// api/sameSql is our framework overhead (Express, validation, Prisma, auth);
// sameSql/minimal is the price of keeping history. Machines here are shared and noisy,
// so the ratios are the figures that matter, not the absolute requests per second.
//
//   npm run bench            (uses BENCH_DATABASE_URL, TEST_DATABASE_URL or local PostgreSQL)
import http from "node:http";
import type { AddressInfo } from "node:net";
import { signAdminRequest } from "@mdm/contracts";
import autocannon from "autocannon";
import { Client, Pool } from "pg";
import { parseEnv } from "../apps/api/src/config/env";
import { startServer } from "../apps/api/src/server";

const SERVER_URL = process.env.BENCH_DATABASE_URL ?? process.env.TEST_DATABASE_URL ?? "postgresql://postgres@127.0.0.1:5432/postgres";
const DEVICES = Number(process.env.BENCH_DEVICES ?? 200);
const DURATION_SECONDS = Number(process.env.BENCH_SECONDS ?? 10);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 32);
const ADMIN_KEY = "bench-admin-key-0123456789abcdef0123456789";
const HMAC_SECRET = "bench-hmac-secret-0123456789abcdef01234567";

function heartbeatBody(level: number): string {
  return JSON.stringify({
    deviceTime: new Date().toISOString(),
    battery: { level, charging: false },
    memory: { total: 4_000_000_000, available: 1_500_000_000 },
    network: { type: "wifi", signal: -55 },
    apps: [{ packageName: "com.example.kiosk", running: true, foreground: true }],
  });
}

async function withDatabase<T>(run: (url: string) => Promise<T>): Promise<T> {
  const name = `mdm_bench_${Date.now()}`;
  const admin = new Client({ connectionString: SERVER_URL });
  await admin.connect();
  await admin.query(`CREATE DATABASE "${name}"`);
  const url = new URL(SERVER_URL);
  url.pathname = `/${name}`;
  try {
    return await run(url.toString());
  } finally {
    await admin.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
    await admin.end();
  }
}

async function enroll(baseUrl: string, count: number): Promise<Array<{ deviceId: string; deviceToken: string }>> {
  const body = JSON.stringify({ maxUses: count });
  const headers = await signAdminRequest({ adminKey: ADMIN_KEY, hmacSecret: HMAC_SECRET, method: "POST", host: new URL(baseUrl).host, pathWithQuery: "/admin/enrollment-tokens", body });
  const token = (await (await fetch(`${baseUrl}/admin/enrollment-tokens`, { method: "POST", headers: { ...headers, "Content-Type": "application/json" }, body })).json()) as { token: string };
  const devices = [];
  for (let i = 0; i < count; i++) {
    const res = await fetch(`${baseUrl}/v1/register`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ enrollmentToken: token.token, device: { model: "bench" } }),
    });
    devices.push((await res.json()) as { deviceId: string; deviceToken: string });
  }
  return devices;
}

const MINIMAL_SQL = `UPDATE "Device" SET "batteryLevel" = $1, "lastSeenAt" = now() WHERE id = $2`;
const SAME_SQL = `
  WITH updated AS (
    UPDATE "Device" SET "batteryLevel" = $1, "lastSeenAt" = now(), online = true, "appStatus" = $3::jsonb WHERE id = $2 RETURNING *),
  telemetry AS (
    INSERT INTO "TelemetryEvent" ("deviceId", "batteryLevel", "appStatus") SELECT id, $1, $3::jsonb FROM updated)
  SELECT updated.*,
    EXISTS (SELECT 1 FROM "Command" c WHERE c."deviceId" = updated.id AND c.status IN ('queued', 'sent') AND c."expiresAt" > now()) AS "hasPending",
    ARRAY(SELECT DISTINCT p."packageName" FROM "AppPolicy" p WHERE p.enabled AND (p."deviceId" = updated.id OR p."group" = ANY(updated.groups))) AS "mustRun"
  FROM updated`;

/** A floor: parse the body, run `sql`, answer. Nothing else. */
async function startFloor(databaseUrl: string, sql: string) {
  const pool = new Pool({ connectionString: databaseUrl, max: 20 });
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const deviceId = (req.headers.authorization ?? "").slice("Bearer ".length).split(".")[0];
      const body = JSON.parse(Buffer.concat(chunks).toString()) as { battery: { level: number }; apps: unknown };
      const params = sql === MINIMAL_SQL ? [body.battery.level, deviceId] : [body.battery.level, deviceId, JSON.stringify(body.apps)];
      pool
        .query(sql, params)
        .then(() => {
          res.writeHead(200, { "Content-Type": "application/json" });
          res.end('{"ok":true}');
        })
        .catch(() => {
          res.writeHead(500);
          res.end();
        });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: async () => {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await pool.end();
    },
  };
}

async function load(url: string, tokens: string[]) {
  let next = 0;
  const result = await autocannon({
    url: `${url}/v1/heartbeat`,
    connections: CONNECTIONS,
    duration: DURATION_SECONDS,
    requests: [
      {
        method: "POST",
        setupRequest: (request) => ({
          ...request,
          headers: { "content-type": "application/json", authorization: `Bearer ${tokens[next++ % tokens.length]}` },
          body: heartbeatBody(next % 100),
        }),
      },
    ],
  });
  return { requestsPerSecond: result.requests.average, p50: result.latency.p50, p99: result.latency.p99, errors: result.errors + result.non2xx };
}

async function main() {
  await withDatabase(async (databaseUrl) => {
    const api = await startServer(
      parseEnv({
        NODE_ENV: "test",
        PORT: "0",
        HOST: "127.0.0.1",
        DATABASE_URL: databaseUrl,
        ADMIN_KEY,
        HMAC_SECRET,
        LOG_LEVEL: "error",
        RATE_LIMIT_GENERAL_PER_MINUTE: "1000000",
        RATE_LIMIT_ADMIN_PER_MINUTE: "1000000",
        RATE_LIMIT_DEVICE_PER_MINUTE: "1000000",
        RATE_LIMIT_ENROLLMENT_PER_MINUTE: "1000000",
        // The load generator is one address.
        HTTP_MAX_REQUESTS_PER_CLIENT: "1000000",
      }),
    );
    const minimal = await startFloor(databaseUrl, MINIMAL_SQL);
    const sameSql = await startFloor(databaseUrl, SAME_SQL);
    try {
      const tokens = (await enroll(api.url, DEVICES)).map((device) => device.deviceToken);
      const results = { minimal: await load(minimal.url, tokens), sameSql: await load(sameSql.url, tokens), api: await load(api.url, tokens) };
      const ratio = (a: number, b: number) => Number((a / Math.max(b, 1)).toFixed(3));
      const report = {
        devices: DEVICES,
        connections: CONNECTIONS,
        seconds: DURATION_SECONDS,
        ...results,
        throughput: {
          apiVsSameSql: ratio(results.api.requestsPerSecond, results.sameSql.requestsPerSecond),
          apiVsMinimal: ratio(results.api.requestsPerSecond, results.minimal.requestsPerSecond),
          sameSqlVsMinimal: ratio(results.sameSql.requestsPerSecond, results.minimal.requestsPerSecond),
        },
        p99: { apiVsSameSql: ratio(results.api.p99, results.sameSql.p99), apiVsMinimal: ratio(results.api.p99, results.minimal.p99) },
      };
      console.log(JSON.stringify(report, null, 2));
    } finally {
      await minimal.close();
      await sameSql.close();
      await api.close();
    }
  });
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
