import { performance } from "node:perf_hooks";
import type { AppDeps } from "../../deps";
import type { Prisma } from "../../generated/prisma/client";
import type { FleetEvent } from "../../realtime/event-bus";

// Verified token hashes by device id, one cache per app (instance): a heartbeat then needs
// no statement to authenticate. Every revocation (the device retired or deleted, or its
// token rotation started or completed) writes a DeviceTokenRevocation row in its own
// transaction. Each instance hears of it from the event bus at once, and from its
// revocation feed, which reads the new rows every REVOCATION_POLL_MS and hands each to the
// instance's subscribers as the bus event would (the cache drops the token, the socket
// opened with it closes): a lost event delays a revocation by seconds.
//
// An entry lives CONFIRMED_TTL_MS, longer than a device's heartbeat interval (a 60-second
// lifetime missed nearly every heartbeat: bench/RESULTS.md), but only while the feed keeps
// up. Should it fall behind (the database unreachable, a poll stuck), entries older than
// UNCONFIRMED_TTL_MS are looked up again: how long a revoked token may then keep working
// here is bounded as it was before there was a feed. Ages are read on the monotonic clock,
// so a wall clock stepped back does not make entries or the feed look younger.
const CONFIRMED_TTL_MS = 15 * 60_000;
const UNCONFIRMED_TTL_MS = 60_000;
const MAX_ENTRIES = 200_000;
const REVOCATION_POLL_MS = 5_000;
/** A poll that has not answered in this long counts as failed (a half-open connection, say). */
const POLL_TIMEOUT_MS = 10_000;
/** The feed keeps up while its last successful poll started less than this ago. */
const FEED_CURRENT_MS = 3 * REVOCATION_POLL_MS;
/** Rows older than this are deleted by housekeeping: far past any entry's lifetime. */
const REVOCATION_RETENTION_MS = 24 * 3600_000;

export type RevocationReason = Extract<FleetEvent, { kind: "device_token_revoked" }>["reason"];

type Entry = { hash: string; cachedAt: number };

export type DeviceTokenCache = {
  readonly entries: Map<string, Entry>;
  /**
   * Bumped by every revocation this cache hears of: a lookup that began before one does not
   * cache what it read, which may be the state from before the revocation.
   */
  generation: number;
  feed: {
    /**
     * When (monotonic ms) the first successful poll ended: entries cached before are not
     * confirmed (that poll hands on nothing, only takes the snapshot the next reads from).
     */
    coveredFrom?: number;
    /** When (monotonic ms) the last successful poll started. */
    lastPolledAt?: number;
    /**
     * What the last poll could not see: the transactions running then (`pg_snapshot_xip`)
     * and every one from its `pg_snapshot_xmax` on. The rows of exactly those are new.
     */
    unseen?: { from: string; running: string[] };
    failing: boolean;
  };
};

const caches = new WeakMap<object, DeviceTokenCache>();

export function tokenCacheOf(deps: object): DeviceTokenCache {
  let cache = caches.get(deps);
  if (!cache) {
    cache = { entries: new Map(), generation: 0, feed: { failing: false } };
    caches.set(deps, cache);
  }
  return cache;
}

/** The cached token hash of a device, if its entry is still good to use now. */
export function cachedTokenHash(cache: DeviceTokenCache, deviceId: string, now = performance.now()): string | undefined {
  const entry = cache.entries.get(deviceId);
  if (!entry) return undefined;
  const age = now - entry.cachedAt;
  if (age < UNCONFIRMED_TTL_MS) return entry.hash;
  const { coveredFrom, lastPolledAt } = cache.feed;
  const confirmed =
    age < CONFIRMED_TTL_MS && coveredFrom !== undefined && entry.cachedAt >= coveredFrom && lastPolledAt !== undefined && now - lastPolledAt < FEED_CURRENT_MS;
  return confirmed ? entry.hash : undefined;
}

/** Caches a verified hash, unless a revocation came while it was being read (`generation` is the one from before the read). */
export function cacheTokenHash(cache: DeviceTokenCache, deviceId: string, hash: string, generation: number): void {
  if (generation !== cache.generation) return;
  cache.entries.delete(deviceId);
  if (cache.entries.size >= MAX_ENTRIES) cache.entries.delete(cache.entries.keys().next().value!);
  cache.entries.set(deviceId, { hash, cachedAt: performance.now() });
}

/** Drops a device's verified token from this app's cache (a revocation made here, by the bus or the feed). */
export function forgetDeviceToken(deps: object, deviceId: string): void {
  const cache = tokenCacheOf(deps);
  cache.generation++;
  cache.entries.delete(deviceId);
}

/** Writes the revocation of a device's token, in the transaction that revokes it. */
export async function recordTokenRevocation(tx: Prisma.TransactionClient, deviceId: string, reason: RevocationReason): Promise<void> {
  await tx.$executeRaw`INSERT INTO "DeviceTokenRevocation" ("deviceId", reason) VALUES (${deviceId}::uuid, ${reason})`;
}

type RevocationRow = { deviceId: string; reason: RevocationReason };

/**
 * Reads the revocations this app has not read yet and hands each to its subscribers, as a
 * `device_token_revoked` event from the bus would be. The rows new to a poll are those of
 * the transactions the poll before could not see (running then, or begun since): each row
 * is read once, however late its transaction commits, and none is read again, however long
 * another transaction stays open. Returns how many it handed on.
 */
export async function pollTokenRevocations(deps: Pick<AppDeps, "db" | "bus">): Promise<number> {
  const cache = tokenCacheOf(deps);
  const { feed } = cache;
  const startedAt = performance.now();
  const unseen = feed.unseen;
  // One statement, one snapshot: the rows it reads and the snapshot it keeps agree.
  const [read] = await deps.db.$queryRaw<Array<{ from: string; running: string[]; rows: RevocationRow[] | null }>>`
    SELECT pg_snapshot_xmax(snapshot)::text AS "from", ARRAY(SELECT pg_snapshot_xip(snapshot)::text) AS running,
      (SELECT json_agg(json_build_object('deviceId', "deviceId", 'reason', reason) ORDER BY id) FROM "DeviceTokenRevocation"
       WHERE ${unseen?.from ?? null}::xid8 IS NOT NULL AND (xid >= ${unseen?.from ?? null}::xid8 OR xid = ANY(${unseen?.running ?? []}::xid8[]))) AS rows
    FROM (SELECT pg_current_snapshot() AS snapshot) current`;
  const rows = read!.rows ?? [];
  for (const row of rows) deps.bus.deliverLocally({ kind: "device_token_revoked", deviceId: row.deviceId, reason: row.reason });
  // The first read, or transaction ids gone back (a standby promoted, a backup restored):
  // rows it could not tell apart went unread. Nothing cached so far counts as confirmed, and
  // a lookup under way does not cache what it read.
  if (!feed.unseen || BigInt(read!.from) < BigInt(feed.unseen.from)) {
    if (feed.unseen) cache.entries.clear();
    cache.generation++;
    feed.coveredFrom = performance.now();
  }
  feed.unseen = { from: read!.from, running: read!.running };
  feed.lastPolledAt = startedAt;
  return rows.length;
}

/**
 * Polls this instance's revocation feed every `everyMs` until stopped, one poll at a time: a
 * poll that has not answered within `timeoutMs` is reported as failing (the feed falls
 * behind, so cached entries lapse after a minute) and the next waits for it to settle.
 */
export function startTokenRevocationFeed(
  deps: Pick<AppDeps, "db" | "bus" | "logger">,
  { everyMs = REVOCATION_POLL_MS, timeoutMs = POLL_TIMEOUT_MS } = {},
): () => void {
  const { feed } = tokenCacheOf(deps);
  let running = false;
  // Said once per outage: it polls every few seconds.
  const failed = (error: unknown) => {
    if (!feed.failing) {
      deps.logger.warn("token revocation feed cannot read; cached device tokens are looked up again after a minute", {
        message: error instanceof Error ? error.message : String(error),
      });
    }
    feed.failing = true;
  };
  const poll = async () => {
    if (running) return;
    running = true;
    const timer = setTimeout(() => failed(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    try {
      await pollTokenRevocations(deps);
      if (feed.failing) deps.logger.info("token revocation feed reads again");
      feed.failing = false;
    } catch (error) {
      failed(error);
    } finally {
      clearTimeout(timer);
      running = false;
    }
  };
  void poll();
  const interval = setInterval(poll, everyMs);
  interval.unref();
  return () => clearInterval(interval);
}

/** Deletes revocations past their use (housekeeping). */
export async function pruneTokenRevocations({ db, clock }: Pick<AppDeps, "db" | "clock">): Promise<number> {
  return db.$executeRaw`DELETE FROM "DeviceTokenRevocation" WHERE "revokedAt" < ${new Date(clock.now().getTime() - REVOCATION_RETENTION_MS)}`;
}
