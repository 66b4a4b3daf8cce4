import { hkdfSync } from "node:crypto";
import { lookup as dnsLookup } from "node:dns";
import http from "node:http";
import https from "node:https";
import { BlockList, isIP } from "node:net";
import { WEBHOOK_SIGNATURE_HEADER, webhookSignatureHeader } from "@mdm/contracts";
import type { Env } from "../../config/env";
import type { AppDeps } from "../../deps";
import type { WebhookDelivery } from "../../generated/prisma/client";
import { claimJobRun } from "../../jobs/maintenance";
import { type PollingWorker, startPollingWorker } from "../../lib/polling-worker";

// The webhook worker: claims due deliveries (FOR UPDATE SKIP LOCKED, so instances never
// send the same one at once), counts the attempt and schedules the next in the claiming
// statement (a crash mid-send means a retry, never a loss), then POSTs the signed body
// with bounded time and a bounded read of the answer.
//
// That schedule is also the claim's lease: until then no other instance takes the row. So
// a lane claims one delivery only when it is free to send it at once, never a batch that
// would wait behind slow endpoints while its lease runs out (another instance would then
// send it again), and the lease outlasts one attempt: the DNS lookup and the request are
// each bounded, and CLAIM_LEASE_SECONDS exceeds both together with a margin.

type WebhookDeps = Pick<AppDeps, "db" | "clock" | "env" | "logger">;

const SEND_CONCURRENCY = 4;
/** First retry after this; doubles per attempt, at most an hour apart, for RETRY_WINDOW. */
export const WEBHOOK_RETRY_BASE_SECONDS = 30;
const MAX_RETRY_DELAY_SECONDS = 3600;
export const WEBHOOK_RETRY_WINDOW_SECONDS = 24 * 3600;
const LOOKUP_TIMEOUT_MS = 5_000;
const REQUEST_TIMEOUT_MS = 10_000;
/** The least time a claimed delivery stays out of other instances' reach: one attempt (15 s at most) and a margin. */
const CLAIM_LEASE_SECONDS = 24;
/** Only the status matters; an endpoint answering a gigabyte must not cost us one. */
const MAX_RESPONSE_BYTES = 4096;

/** An endpoint's signing secret: derived from HMAC_SECRET and its id (like API keys' secrets), never stored. */
export function webhookSecret(env: Pick<Env, "HMAC_SECRET">, endpointId: string): string {
  return `whsec_${Buffer.from(hkdfSync("sha256", env.HMAC_SECRET, "mdm webhook secret", endpointId, 32)).toString("base64url")}`;
}

// Addresses a webhook must not reach outside development: this host, private networks,
// link-local (cloud metadata at 169.254.169.254), and other non-public ranges.
const blocked = new BlockList();
for (const [network, prefix] of [
  ["0.0.0.0", 8],
  ["10.0.0.0", 8],
  ["100.64.0.0", 10],
  ["127.0.0.0", 8],
  ["169.254.0.0", 16],
  ["172.16.0.0", 12],
  ["192.0.0.0", 24],
  ["192.168.0.0", 16],
  ["198.18.0.0", 15],
  ["224.0.0.0", 4],
  ["240.0.0.0", 4],
] as const) {
  blocked.addSubnet(network, prefix, "ipv4");
}
// IPv6 ranges that embed an IPv4 address (IPv4-compatible, 6to4, NAT64, Teredo) are refused
// whole rather than judged by the address inside: all but NAT64 are deprecated, and a NAT64
// gateway may reach the private IPv4 networks behind it. (IPv4-mapped ::ffff:0:0/96 is
// checked against the IPv4 ranges above: BlockList does that by itself.)
for (const [network, prefix] of [
  ["::", 96], // unspecified, loopback and IPv4-compatible (::a.b.c.d, deprecated)
  ["100::", 64], // discard-only
  ["fc00::", 7], // unique local
  ["fe80::", 10], // link-local
  ["fec0::", 10], // site-local (deprecated, still routed inside some networks)
  ["ff00::", 8], // multicast
  ["64:ff9b::", 96], // NAT64, well-known prefix
  ["64:ff9b:1::", 48], // NAT64, local use
  ["2001::", 32], // Teredo
  ["2001:db8::", 32], // documentation
  ["2002::", 16], // 6to4
] as const) {
  blocked.addSubnet(network, prefix, "ipv6");
}

/** Whether `address` (an IP literal) is private, loopback, link-local or otherwise not public. */
export function isNonPublicAddress(address: string): boolean {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return blocked.check(mapped[1]!, "ipv4");
  const family = isIP(address);
  if (family === 0) return true;
  return blocked.check(address, family === 4 ? "ipv4" : "ipv6");
}

/** Private addresses are allowed only in development (a receiver on this machine). */
export function privateAddressesAllowed(env: Pick<Env, "NODE_ENV">): boolean {
  return env.NODE_ENV === "development";
}

type LookupAddress = { address: string; family: number };

/** The host's addresses, or an error after LOOKUP_TIMEOUT_MS (the system resolver's own retries can take longer). */
function resolveAll(hostname: string): Promise<LookupAddress[]> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${hostname} did not resolve within ${LOOKUP_TIMEOUT_MS} ms`)), LOOKUP_TIMEOUT_MS);
    dnsLookup(hostname, { all: true }, (error, addresses) => {
      clearTimeout(timer);
      if (error) reject(error);
      else resolve(addresses);
    });
  });
}

/** Resolves `hostname` and refuses it when any of its addresses is not public (unless allowed). */
export async function checkedAddresses(env: Pick<Env, "NODE_ENV">, hostname: string): Promise<LookupAddress[]> {
  const bare = hostname.replace(/^\[|\]$/g, "");
  const addresses = isIP(bare) ? [{ address: bare, family: isIP(bare) }] : await resolveAll(bare);
  if (!privateAddressesAllowed(env)) {
    const refused = addresses.find((entry) => isNonPublicAddress(entry.address));
    if (refused) throw new Error(`${hostname} resolves to a private, loopback or link-local address (${refused.address})`);
  }
  if (addresses.length === 0) throw new Error(`${hostname} does not resolve`);
  return addresses;
}

type Attempt = { statusCode?: number; error?: string };

/**
 * POSTs `body` to `url`, connecting only to an address checked at this moment (the
 * connection uses the very addresses that were checked, so a DNS answer changed between
 * the check and the connection cannot redirect it: no DNS rebinding). Redirects are not
 * followed. Reads at most MAX_RESPONSE_BYTES of the answer.
 */
export async function postWebhook(env: Pick<Env, "NODE_ENV">, url: string, headers: Record<string, string>, body: string): Promise<Attempt> {
  const target = new URL(url);
  let addresses: LookupAddress[];
  try {
    addresses = await checkedAddresses(env, target.hostname);
  } catch (error) {
    return { error: error instanceof Error ? error.message : String(error) };
  }
  const pinned = addresses[0]!;
  const client = target.protocol === "https:" ? https : http;
  return new Promise<Attempt>((resolve) => {
    const request = client.request(
      target,
      {
        method: "POST",
        headers: { ...headers, "Content-Type": "application/json", "Content-Length": Buffer.byteLength(body), "User-Agent": "Keelson-Webhooks/1" },
        timeout: REQUEST_TIMEOUT_MS,
        // The connection goes to the address checked above, whatever DNS says now.
        lookup: (_hostname, options, callback) => {
          if ((options as { all?: boolean }).all) (callback as (error: null, addresses: LookupAddress[]) => void)(null, [pinned]);
          else (callback as (error: null, address: string, family: number) => void)(null, pinned.address, pinned.family);
        },
      },
      (response) => {
        let read = 0;
        response.on("data", (chunk: Buffer) => {
          read += chunk.length;
          if (read > MAX_RESPONSE_BYTES) response.destroy();
        });
        const done = () => resolve({ statusCode: response.statusCode });
        response.on("end", done);
        response.on("close", done);
        response.on("error", done);
      },
    );
    const deadline = setTimeout(() => request.destroy(new Error(`no answer within ${REQUEST_TIMEOUT_MS} ms`)), REQUEST_TIMEOUT_MS);
    request.on("close", () => clearTimeout(deadline));
    request.on("timeout", () => request.destroy(new Error(`no answer within ${REQUEST_TIMEOUT_MS} ms`)));
    request.on("error", (error) => resolve({ error: error.message.slice(0, 500) }));
    request.end(body);
  });
}

type ClaimedDelivery = WebhookDelivery & { url: string };

/**
 * Claims the next due delivery, to be attempted at once; in the same statement counts the
 * attempt and schedules the next one (exponential backoff, ±20% jitter, never sooner than
 * CLAIM_LEASE_SECONDS), or none once the next would fall past 24 hours after the event:
 * that attempt is the last.
 */
async function claimDueDelivery({ db, clock }: WebhookDeps): Promise<ClaimedDelivery | undefined> {
  const now = clock.now();
  const [claimed] = await db.$queryRaw<ClaimedDelivery[]>`
    WITH due AS (
      SELECT id FROM "WebhookDelivery"
      WHERE status = 'queued' AND "nextAttemptAt" <= ${now}
      ORDER BY "nextAttemptAt" LIMIT 1
      FOR UPDATE SKIP LOCKED),
    scheduled AS (
      SELECT d.id, ${now}::timestamptz + make_interval(secs => GREATEST(${CLAIM_LEASE_SECONDS},
        LEAST(${MAX_RETRY_DELAY_SECONDS}, ${WEBHOOK_RETRY_BASE_SECONDS} * power(2, d.attempts)) * (0.8 + random() * 0.4))) AS next
      FROM "WebhookDelivery" d JOIN due ON d.id = due.id)
    UPDATE "WebhookDelivery" d SET
      attempts = d.attempts + 1,
      "nextAttemptAt" = CASE WHEN s.next <= d."createdAt" + make_interval(secs => ${WEBHOOK_RETRY_WINDOW_SECONDS}) THEN s.next ELSE NULL END
    FROM scheduled s, "WebhookEndpoint" e
    WHERE d.id = s.id AND e.id = d."endpointId"
    RETURNING d.*, e.url`;
  return claimed;
}

async function attempt(deps: WebhookDeps, delivery: ClaimedDelivery): Promise<void> {
  const { db, clock, env, logger } = deps;
  const body = JSON.stringify(delivery.payload);
  const timestamp = Math.floor(clock.now().getTime() / 1000);
  const signature = await webhookSignatureHeader(webhookSecret(env, delivery.endpointId), timestamp, body);
  const result = await postWebhook(env, delivery.url, { [WEBHOOK_SIGNATURE_HEADER]: signature, "Webhook-Id": delivery.eventId }, body);
  const ok = result.statusCode !== undefined && result.statusCode >= 200 && result.statusCode < 300;
  const lastError = ok ? null : (result.error ?? `answered ${result.statusCode}`);
  const final = ok || delivery.nextAttemptAt === null;
  await db.webhookDelivery.updateMany({
    where: { id: delivery.id, status: "queued" },
    data: {
      status: ok ? "succeeded" : final ? "failed" : "queued",
      lastStatusCode: result.statusCode ?? null,
      lastError,
      ...(final ? { nextAttemptAt: null, finishedAt: clock.now() } : {}),
    },
  });
  if (!ok)
    logger.warn("webhook delivery failed", {
      deliveryId: delivery.id.toString(),
      endpointId: delivery.endpointId,
      attempts: delivery.attempts,
      final,
      message: lastError,
    });
}

/**
 * Attempts due deliveries on SEND_CONCURRENCY lanes, each claiming one when it is free to
 * send it, until none are due or the instance is stopping; returns how many it attempted.
 */
export async function processDueWebhooks(deps: WebhookDeps, stopping: () => boolean = () => false): Promise<number> {
  let total = 0;
  let drained = false;
  const lane = async () => {
    while (!drained && !stopping()) {
      const delivery = await claimDueDelivery(deps);
      if (!delivery) {
        drained = true;
        return;
      }
      total++;
      await attempt(deps, delivery);
    }
  };
  await Promise.all(Array.from({ length: SEND_CONCURRENCY }, lane));
  return total;
}

const wakers = new WeakMap<object, () => void>();

/** Tells this instance's webhook worker that a delivery is due now (others find it on their next poll). */
export function wakeWebhookWorker({ db }: Pick<AppDeps, "db">): void {
  wakers.get(db)?.();
}

/** Finished deliveries are kept this long in the log, then deleted (the queue stays bounded). */
export const WEBHOOK_LOG_RETENTION_DAYS = 30;
const PRUNE_BATCH = 5000;
const PRUNE_EVERY_MS = 3600_000;

/** Deletes finished deliveries older than the retention, in batches; queued ones stay until they finish (24 h at most). */
export async function pruneWebhookDeliveries({ db, clock }: Pick<AppDeps, "db" | "clock">): Promise<number> {
  const cutoff = new Date(clock.now().getTime() - WEBHOOK_LOG_RETENTION_DAYS * 24 * 3600_000);
  let total = 0;
  for (;;) {
    const deleted = await db.$executeRaw`
      DELETE FROM "WebhookDelivery" WHERE id IN (
        SELECT id FROM "WebhookDelivery" WHERE "createdAt" < ${cutoff} AND status <> 'queued' ORDER BY id LIMIT ${PRUNE_BATCH})`;
    total += deleted;
    if (deleted < PRUNE_BATCH) return total;
  }
}

/** The instance's webhook worker: a round on wake-up and every second; prunes the log hourly, once per cluster. */
export function startWebhookWorker(deps: WebhookDeps & Pick<AppDeps, "instanceId">, options: { pollMs?: number } = {}): PollingWorker {
  let lastPruneCheck = 0;
  const worker = startPollingWorker({
    name: "webhook worker",
    pollMs: options.pollMs ?? 1000,
    logger: deps.logger,
    round: async (stopping) => {
      await processDueWebhooks(deps, stopping);
      if (Date.now() - lastPruneCheck < PRUNE_EVERY_MS) return;
      lastPruneCheck = Date.now();
      if (await claimJobRun(deps, "webhook log prune", PRUNE_EVERY_MS)) await pruneWebhookDeliveries(deps);
    },
  });
  wakers.set(deps.db, () => void worker.runNow());
  return {
    runNow: worker.runNow,
    stop: async () => {
      wakers.delete(deps.db);
      await worker.stop();
    },
  };
}
