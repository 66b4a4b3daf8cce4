/// <reference path="../types/proxy-addr.d.ts" />
import type { IncomingMessage } from "node:http";
import { ipKeyGenerator } from "express-rate-limit";
import proxyaddr from "proxy-addr";

export type TrustProxy = (address: string, hop: number) => boolean;

/**
 * The trust function TRUST_PROXY describes. Addresses or subnets (`loopback`,
 * `10.0.0.0/8`, ...) trust exactly one hop: the peer the API accepted the connection
 * from, when it is one of them; the client is then the last address that proxy appended
 * to X-Forwarded-For. Anything further left was written by the client and is never
 * believed. `false` trusts nobody; a hop count N trusts N proxies in a row; `true` every
 * hop (only for a network where nothing but your proxies can reach the API).
 */
export function compileTrustProxy(value: string): TrustProxy {
  if (value === "true") return () => true;
  if (value === "false" || value === "") return () => false;
  if (/^\d+$/.test(value)) {
    const hops = Number(value);
    return (_address, hop) => hop < hops;
  }
  const trusted = proxyaddr.compile(value.split(",").map((part) => part.trim()));
  return (address, hop) => hop === 0 && trusted(address, hop);
}

/** A request's client address under that trust, for requests Express does not see (WebSocket upgrades). */
export function clientIpOf(req: IncomingMessage, trust: TrustProxy): string {
  return proxyaddr(req, trust);
}

/**
 * What per-address limits count under: an IPv4 address as is, an IPv6 one by its /56, as
 * express-rate-limit's own limiters do. One IPv6 client commonly holds a /64 or more, so
 * keying on the full address would give it as many budgets as it likes.
 */
export function addressKey(ip: string | undefined): string {
  return ip ? ipKeyGenerator(ip) : "unknown";
}

// Headers any proxy on the way adds; a request without them came to the API directly.
const RELAY_HEADERS = ["x-forwarded-for", "forwarded", "x-real-ip"];
const LOOPBACK_HOST = /^(localhost|127\.\d+\.\d+\.\d+|\[::1\])(:\d+)?$/i;

/**
 * A request from a program on this host that reached the API directly: a loopback socket,
 * no proxy's relay header, and a Host that names this host. The Host check keeps a web page
 * out that a browser on this host was tricked into calling (DNS rebinding sends the page's
 * own name); a reverse proxy on this host must send X-Forwarded-For (every usual
 * configuration does) or its callers would count as local.
 */
export function isDirectFromThisHost(req: IncomingMessage): boolean {
  return isLoopback(req.socket.remoteAddress) && RELAY_HEADERS.every((name) => req.headers[name] === undefined) && LOOPBACK_HOST.test(req.headers.host ?? "");
}

const LOOPBACK = /^(127\.\d+\.\d+\.\d+|::1|::ffff:127\.\d+\.\d+\.\d+)$/;

export function isLoopback(address: string | undefined): boolean {
  return LOOPBACK.test(address ?? "");
}
