import type { IncomingMessage } from "node:http";

/**
 * The request's cookies by name (RFC 6265 `Cookie` header). The first of repeated names
 * wins, as browsers send the most specific path first; a value that is not valid
 * percent-encoding is kept as sent.
 */
export function parseCookies(req: Pick<IncomingMessage, "headers">): Record<string, string> {
  const cookies: Record<string, string> = Object.create(null);
  for (const pair of (req.headers.cookie ?? "").split(";")) {
    const equals = pair.indexOf("=");
    if (equals < 0) continue;
    const name = pair.slice(0, equals).trim();
    if (!name || name in cookies) continue;
    let value = pair.slice(equals + 1).trim();
    if (value.startsWith('"') && value.endsWith('"') && value.length >= 2) value = value.slice(1, -1);
    try {
      cookies[name] = decodeURIComponent(value);
    } catch {
      cookies[name] = value;
    }
  }
  return cookies;
}
