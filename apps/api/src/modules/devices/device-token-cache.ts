import type { AppDeps } from "../../deps";
import type { Prisma } from "../../generated/prisma/client";

// Verified token hashes by device id, one cache per app (instance): a heartbeat then needs
// no statement to authenticate. Every revocation (the device retired, deleted, or its
// rotation started or completed) writes a DeviceTokenRevocation row in its own transaction;
// every instance drops the device from its cache when the event bus tells it (at once) or
// when its revocation feed reads the row (every REVOCATION_POLL_MS), so an event lost on
// the bus delays a revocation by seconds, not by the cache's lifetime.
//
// An entry lives CONFIRMED_TTL_MS, longer than a device's heartbeat interval (a 60-second
// lifetime missed nearly every heartbeat: bench/RESULTS.md), but only while the feed keeps
// polling. Should it fall behind (the database unreachable, the poll stuck), entries older
// than UNCONFIRMED_TTL_MS are looked up again: how long a revoked token may then keep
// working here is bounded as it was before there was a feed.
const CONFIRMED_TTL_MS = 15 * 60_000;
const UNCONFIRMED_TTL_MS = 60_000;
const MAX_ENTRIES = 200_000;
const REVOCATION_POLL_MS = 5_000;
/** The feed counts as keeping up while its last successful poll started less than this ago. */
const FEED_CURRENT_MS = 3 * REVOCATION_POLL_MS;
/**
 * Each poll reads back this far before the previous one: a revocation's row carries the time
 * it was written, and its transaction may commit a little later.
 */
const REVOCATION_OVERLAP_MS = 2 * 60_000;
/** Rows older than this are deleted by housekeeping: far past any entry's lifetime. */
const REVOCATION_RETENTION_MS = 24 * 3600_000;

type Entry = { hash: string; cachedAt: number };

export type DeviceTokenCache = {
  readonly entries: Map<string, Entry>;
  /**
   * Bumped by every revocation this cache hears of: a lookup that began before one does not
   * cache what it read, which may be the state from before the revocation.
   */
  generation: number;
  feed: {
    /** Local time the first successful poll started: entries cached before it are not confirmed by it. */
    coveredFrom?: number;
    /** Local time the last successful poll started. */
    lastPolledAt?: number;
    /** The database's time at the last successful poll: the next reads from there (less the overlap). */
    readUpTo?: Date;
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
export function cachedTokenHash(cache: DeviceTokenCache, deviceId: string, now = Date.now()): string | undefined {
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
  cache.entries.set(deviceId, { hash, cachedAt: Date.now() });
}

/** Drops devices' verified tokens from this app's cache (a `device_token_revoked` event, the feed, or a revocation made here). */
export function forgetDeviceTokens(deps: object, deviceIds: Iterable<string>): void {
  const cache = tokenCacheOf(deps);
  cache.generation++;
  for (const deviceId of deviceIds) cache.entries.delete(deviceId);
}

/** Writes the revocation of a device's token, in the transaction that revokes it. */
export async function recordTokenRevocation(tx: Prisma.TransactionClient, deviceId: string): Promise<void> {
  await tx.$executeRaw`INSERT INTO "DeviceTokenRevocation" ("deviceId") VALUES (${deviceId}::uuid)`;
}

/**
 * Reads the revocations written since the last poll (less the overlap) and drops those
 * devices from this app's cache. Returns how many it read.
 */
export async function pollTokenRevocations(deps: Pick<AppDeps, "db">): Promise<number> {
  const cache = tokenCacheOf(deps);
  const startedAt = Date.now();
  // Entries older than CONFIRMED_TTL_MS are gone whatever happened: no need to read further back.
  const from = Math.max(cache.feed.readUpTo?.getTime() ?? startedAt, startedAt - CONFIRMED_TTL_MS) - REVOCATION_OVERLAP_MS;
  const [read] = await deps.db.$queryRaw<Array<{ readUpTo: Date; deviceIds: string[] }>>`
    SELECT clock_timestamp() AS "readUpTo",
      COALESCE((SELECT array_agg(DISTINCT "deviceId"::text) FROM "DeviceTokenRevocation" WHERE "revokedAt" > ${new Date(from)}), '{}') AS "deviceIds"`;
  const { readUpTo, deviceIds } = read!;
  if (deviceIds.length > 0) forgetDeviceTokens(deps, deviceIds);
  cache.feed.coveredFrom ??= startedAt;
  cache.feed.lastPolledAt = startedAt;
  cache.feed.readUpTo = readUpTo;
  return deviceIds.length;
}

/** Polls this instance's revocation feed every REVOCATION_POLL_MS until stopped. */
export function startTokenRevocationFeed(deps: Pick<AppDeps, "db" | "logger">): () => void {
  const cache = tokenCacheOf(deps);
  let running = false;
  const poll = async () => {
    if (running) return;
    running = true;
    try {
      await pollTokenRevocations(deps);
      if (cache.feed.failing) deps.logger.info("token revocation feed reads again");
      cache.feed.failing = false;
    } catch (error) {
      // Logged once per outage: it polls every few seconds.
      if (!cache.feed.failing) {
        deps.logger.warn("token revocation feed cannot read; cached device tokens are looked up again after a minute", {
          message: error instanceof Error ? error.message : String(error),
        });
      }
      cache.feed.failing = true;
    } finally {
      running = false;
    }
  };
  void poll();
  const timer = setInterval(poll, REVOCATION_POLL_MS);
  timer.unref();
  return () => clearInterval(timer);
}

/** Deletes revocations past their use (housekeeping). */
export async function pruneTokenRevocations({ db, clock }: Pick<AppDeps, "db" | "clock">): Promise<number> {
  return db.$executeRaw`DELETE FROM "DeviceTokenRevocation" WHERE "revokedAt" < ${new Date(clock.now().getTime() - REVOCATION_RETENTION_MS)}`;
}
