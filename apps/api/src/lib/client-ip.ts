import type { IncomingMessage } from "node:http";
import proxyAddr from "proxy-addr";
import { trustProxySetting } from "../config/env";

/**
 * The client's address for a request Express does not see (a WebSocket upgrade), by the
 * same TRUST_PROXY rule Express applies to `req.ip`.
 */
export function clientIpResolver(trustProxy: string): (req: IncomingMessage) => string {
  const setting = trustProxySetting(trustProxy);
  const trust =
    typeof setting === "boolean" ? () => setting : typeof setting === "number" ? (_address: string, hop: number) => hop < setting : proxyAddr.compile(setting.split(",").map((entry) => entry.trim()));
  return (req) => proxyAddr(req, trust);
}
