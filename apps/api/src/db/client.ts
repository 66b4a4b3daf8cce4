import { PrismaPg } from "@prisma/adapter-pg";
import { Pool, type QueryResult, type QueryResultRow } from "pg";
import { PrismaClient } from "../generated/prisma/client";

export type Db = PrismaClient;

// A connection attempt that gets no answer (a database host gone silent, not refusing)
// fails after this instead of holding the request until the client gives up.
const CONNECT_TIMEOUT_MS = 5_000;
const POOL_IDLE_TIMEOUT_MS = 5 * 60_000;

// The API's statements are short (an index range, a count or top-N over the narrow
// DeviceListing): starting parallel workers for them costs more than it saves. Measured on
// 100,000 devices on 2 cores: a top-N sort of the listing took 11.5 ms alone, 22-25 ms with
// two workers, which also take cores from the heartbeats. Set on each new connection (not
// as a startup option, which PgBouncer refuses), and only where nobody chose a value: a
// setting of the server, database, role or DATABASE_URL's `options` stays.
const SESSION_SETUP = `SELECT set_config(name, '0', false) FROM pg_settings WHERE name = 'max_parallel_workers_per_gather' AND source = 'default'`;

const pools = new WeakMap<Db, Pool>();

export function createDb(databaseUrl: string, options: { maxConnections?: number } = {}): Db {
  const pool = new Pool({
    connectionString: databaseUrl,
    max: options.maxConnections ?? 10,
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    // Idle connections stay open for minutes, not pg-pool's 10 s: with that, the periodic
    // jobs' bursts kept opening new ones, each paying a fork, the setup below and its first
    // plans on a cold catalog cache (parse and bind of the heartbeat batch 35-64 ms in the
    // benchmark, against under 1 ms warm), with heartbeats queued behind them.
    idleTimeoutMillis: POOL_IDLE_TIMEOUT_MS,
    // A connection idle that long must survive a NAT or load balancer between the API and
    // PostgreSQL that forgets quiet connections (some after 4 minutes), and be replaced now
    // and then, so role or database settings and a failed-over server's new address reach
    // every connection (HikariCP's default lifetime).
    keepAlive: true,
    keepAliveInitialDelayMillis: 30_000,
    maxLifetimeSeconds: 30 * 60,
    // Before the connection's first query. Should it fail, the connection still works (only
    // slower scans), and a broken one reports itself at that query.
    onConnect: async (client) => {
      await client.query(SESSION_SETUP).catch(() => undefined);
    },
  });
  // Until Prisma connects and listens, an idle client's error (a restarted server) would crash
  // the process; the query that next takes a connection reports the failure instead.
  pool.on("error", () => undefined);
  const adapter = new PrismaPg(pool, { disposeExternalPool: true });
  // Under a burst, a transaction may wait its turn for a connection (the embedded database
  // has one): longer than Prisma's 2 s default before giving up.
  const db = new PrismaClient({ adapter, transactionOptions: { maxWait: 10_000, timeout: 15_000 } });
  pools.set(db, pool);
  return db;
}

/**
 * The pg pool under a client made by createDb (Prisma shares it). The heartbeat hot path
 * queries it directly: Prisma's per-query runtime cost about as much CPU as the rest of a
 * heartbeat (benchmark profile, bench/RESULTS.md).
 */
export function poolOf(db: Db): Pool {
  const pool = pools.get(db);
  if (!pool) throw new Error("This database client was not made by createDb");
  return pool;
}

// What PostgreSQL answers when a connection's copy of a named prepared statement is stale or
// gone, which says nothing of the data: a column the statement returns changed type under a
// migration another instance applied ("cached plan must not change result type", 0A000), or
// a pooler in transaction mode handed the statement to another session (26000, 42P05).
const STALE_STATEMENT_CODES = new Set(["0A000", "26000", "42P05"]);

/**
 * Runs `text` as the named prepared statement `name`: each connection parses and plans it
 * once, not at every call (for a statement as large as the heartbeat batch's, that was a
 * fifth of its time). Should the connection's copy be stale, pg-pool drops that connection
 * (it does after any error) and the statement runs again unnamed, so a rolling deploy or a
 * pooler costs a retry, not a failed request.
 */
export async function queryPrepared<R extends QueryResultRow>(pool: Pool, name: string, text: string, values: unknown[]): Promise<QueryResult<R>> {
  try {
    return await pool.query<R>({ name, text, values });
  } catch (error) {
    if (!STALE_STATEMENT_CODES.has((error as { code?: unknown }).code as string)) throw error;
    return pool.query<R>(text, values);
  }
}

// Prisma's codes for "no connection or transaction slot in time": the database is
// overloaded, not the request wrong.
const BUSY_CODES = new Set(["P2024", "P2028"]);
// Prisma's codes for a database it cannot reach or that closed the connection.
const UNREACHABLE_CODES = new Set(["P1001", "P1002", "P1008", "P1017"]);
// What @prisma/adapter-pg reports when the socket fails (ECONNREFUSED, ECONNRESET, ETIMEDOUT).
const UNREACHABLE_KINDS = new Set(["DatabaseNotReachable", "ConnectionClosed", "SocketTimeout", "TooManyConnections"]);
// PostgreSQL's SQLSTATEs of a server going away, starting up or out of resources: class 08
// (connection exception), 53 (insufficient resources), 57P01-57P03 (shut down, crashed,
// not accepting connections yet).
const UNAVAILABLE_SQLSTATE = /^(08|53|57P0[123])/;
// node-postgres throws these as plain errors without a code, and the adapter passes them on
// unwrapped: a pooled connection the server dropped, or no connection within the timeout.
// What node-postgres queried directly (the heartbeat path) throws when the socket fails.
const SOCKET_ERROR_CODES = new Set(["ECONNREFUSED", "ECONNRESET", "ETIMEDOUT", "EPIPE", "EHOSTUNREACH"]);
const UNAVAILABLE_MESSAGES = [
  /^Connection terminated/,
  /^Client has encountered a connection error/,
  /^timeout exceeded when trying to connect/,
  /^Connection terminated due to connection timeout/,
];

/**
 * True when an error says the database is unavailable (down, restarting, unreachable or
 * saturated) rather than that the query was wrong: the caller may retry, so it answers 503.
 */
export function isDatabaseUnavailable(error: unknown): boolean {
  if (typeof error !== "object" || error === null) return false;
  const { code, meta, message } = error as {
    code?: unknown;
    meta?: { driverAdapterError?: { cause?: { kind?: unknown; code?: unknown } } };
    message?: unknown;
  };
  if (typeof code === "string" && (BUSY_CODES.has(code) || UNREACHABLE_CODES.has(code))) return true;
  if (typeof code === "string" && (UNAVAILABLE_SQLSTATE.test(code) || SOCKET_ERROR_CODES.has(code))) return true;
  const cause = meta?.driverAdapterError?.cause;
  if (typeof cause?.kind === "string" && UNREACHABLE_KINDS.has(cause.kind)) return true;
  if (cause?.kind === "postgres" && typeof cause.code === "string" && UNAVAILABLE_SQLSTATE.test(cause.code)) return true;
  return typeof message === "string" && UNAVAILABLE_MESSAGES.some((pattern) => pattern.test(message));
}
