import type { RequestHandler } from "express";
import helmet from "helmet";

// The API answers JSON, plus the Swagger UI page at /api/docs (its scripts are files
// under /api/docs/assets, so `script-src 'self'` suffices).
const headers = helmet({
  contentSecurityPolicy: {
    directives: {
      "frame-ancestors": ["'none'"],
      // Helmet's default would make a browser on a plain-http development server fetch
      // the docs' assets over https, which does not exist there.
      "upgrade-insecure-requests": null,
    },
  },
  // DENY, like the dashboard: responses proxied through its origin carry both headers,
  // and browsers refuse conflicting X-Frame-Options values.
  xFrameOptions: { action: "deny" },
  // Sent below only over TLS: a browser ignores it on plain http anyway.
  strictTransportSecurity: false,
});

const hsts = helmet.strictTransportSecurity({ maxAge: 365 * 24 * 3600, includeSubDomains: true });

/**
 * Helmet's headers (nosniff, X-Frame-Options, CSP...), HSTS when the request came over
 * TLS (`req.secure` follows X-Forwarded-Proto from trusted proxies), and `no-store` on
 * every response: many carry secrets (device tokens, enrollment tokens, sessions, ws
 * tickets) or live state, and none should sit in a shared cache. The docs' static
 * assets set their own Cache-Control.
 */
export function securityHeaders(): RequestHandler[] {
  return [
    headers,
    (req, res, next) => {
      res.setHeader("Cache-Control", "no-store");
      if (req.secure) return hsts(req, res, next);
      next();
    },
  ];
}
