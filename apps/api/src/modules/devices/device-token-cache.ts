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

export type RevocationReason = "retired" | "deleted" | "rotated";

type Entry = { hash: string; cachedAt: number };

export type DeviceTokenCache = {
  readonly entries: Map<string, Entry>;
  /**
   * Bumped by every revocation this cache hears of: a lookup that began before one does not
   * cache what it read, which may be the state from before the revocation.
   */
  generation: number;
  feed: {
    /** When (monotonic ms) the first successful poll started: entries cached before it are not confirmed by it. */
    coveredFrom?: number;
    /** When (monotonic ms) the last successful poll started. */
    lastPolledAt?: number;
    /**
     * The oldest transaction still running at the last poll (`pg_snapshot_xmin`): every
     * revocation the feed has not read yet was written by this transaction or a later one.
     */
    horizon?: bigint;
    /** Rows at or past the horizon already handed on, by row id with their transaction id: not handed on twice. */
    handedOn: Map<string, bigint>;
    failing: boolean;
  };
};

const caches = new WeakMap<object, DeviceTokenCache>();

export function tokenCacheOf(deps: object): DeviceTokenCache {
  let cache = caches.get(deps);
  if (!cache) {
    cache = { entries: new Map(), generation: 0, feed: { handedOn: new Map(), failing: false } };
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

type RevocationRow = { id: string; deviceId: string; reason: RevocationReason; xid: string };

/**
 * Reads the revocations this app has not handed on yet and hands each to its subscribers, as
 * a `device_token_revoked` event from the bus would be. A row is unread while its
 * transaction id is at or past the horizon of the poll before: a transaction that commits
 * later, however late, was still running then. Returns how many it handed on.
 */
export async function pollTokenRevocations(deps: Pick<AppDeps, "db" | "bus">): Promise<number> {
  const { feed } = tokenCacheOf(deps);
  const startedAt = performance.now();
  // The first poll only takes the horizon: nothing is cached from before it (coveredFrom).
  const [read] = await deps.db.$queryRaw<Array<{ horizon: string; rows: RevocationRow[] | null }>>`
    SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS horizon,
      json_agg(json_build_object('id', id::text, 'deviceId', "deviceId", 'reason', reason, 'xid', xid::text) ORDER BY id) AS rows
    FROM "DeviceTokenRevocation" WHERE ${feed.horizon?.toString() ?? null}::xid8 IS NOT NULL AND xid >= ${feed.horizon?.toString() ?? null}::xid8`;
  let handedOn = 0;
  for (const row of read!.rows ?? []) {
    if (feed.handedOn.has(row.id)) continue;
    feed.handedOn.set(row.id, BigInt(row.xid));
    deps.bus.deliverLocally({ kind: "device_token_revoked", deviceId: row.deviceId, reason: row.reason } satisfies FleetEvent);
    handedOn++;
  }
  const horizon = BigInt(read!.horizon);
  // Rows of transactions before the new horizon are not read again.
  for (const [id, xid] of feed.handedOn) if (xid < horizon) feed.handedOn.delete(id);
  feed.horizon = horizon;
  feed.coveredFrom ??= startedAt;
  feed.lastPolledAt = startedAt;
  return handedOn;
}

/** Polls this instance's revocation feed every `everyMs` until stopped. */
export function startTokenRevocationFeed(deps: Pick<AppDeps, "db" | "bus" | "logger">, everyMs = REVOCATION_POLL_MS): () => void {
  const { feed } = tokenCacheOf(deps);
  let running = false;
  const poll = async () => {
    if (running) return;
    running = true;
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        pollTokenRevocations(deps),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no answer within ${POLL_TIMEOUT_MS} ms`)), POLL_TIMEOUT_MS);
        }),
      ]);
      if (feed.failing) deps.logger.info("token revocation feed reads again");
      feed.failing = false;
    } catch (error) {
      // Said once per outage: it polls every few seconds.
      if (!feed.failing) {
        deps.logger.warn("token revocation feed cannot read; cached device tokens are looked up again after a minute", {
          message: error instanceof Error ? error.message : String(error),
        });
      }
      feed.failing = true;
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
