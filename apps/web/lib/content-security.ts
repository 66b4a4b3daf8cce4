import { dashboardSocketUrl } from "./config";

/**
 * The dashboard's Content-Security-Policy. Scripts run only from this origin or with
 * the request's nonce (Next.js puts it on its own scripts; the root layout on the theme
 * script), and 'strict-dynamic' lets those load the chunks they need. Styles allow
 * inline: Radix and sonner set style attributes and tags, and a style cannot run code.
 */
export function contentSecurityPolicy(nonce: string, options: { development: boolean; https: boolean }): string {
  const socketOrigin = new URL(dashboardSocketUrl).origin;
  const directives = [
    "default-src 'self'",
    // React's development build needs eval for its error overlays; production does not.
    `script-src 'self' 'nonce-${nonce}' 'strict-dynamic'${options.development ? " 'unsafe-eval'" : ""}`,
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data: blob:",
    "font-src 'self'",
    // The live-updates WebSocket goes to the API directly, not through this origin.
    `connect-src 'self' ${socketOrigin}`,
    "object-src 'none'",
    "base-uri 'none'",
    "form-action 'self'",
    "frame-ancestors 'none'",
    ...(options.https ? ["upgrade-insecure-requests"] : []),
  ];
  return directives.join("; ");
}

/**
 * Whether a path reaches the API's metrics through the /api rewrite. Express matches
 * paths case-insensitively and ignores a trailing slash, so those variants count too.
 */
export function isMetricsPath(pathname: string): boolean {
  let decoded = pathname;
  try {
    decoded = decodeURIComponent(pathname);
  } catch {
    // Undecodable: judged as sent.
  }
  const normalized = decoded
    .toLowerCase()
    .replace(/\/{2,}/g, "/")
    .replace(/\/+$/, "");
  return normalized === "/api/metrics" || normalized.startsWith("/api/metrics/");
}
