// First: loads the repository's .env before lib/config reads NEXT_PUBLIC_API_URL.
import "./lib/load-root-env";
import type { NextConfig } from "next";
import { apiUrl } from "./lib/config";

// The browser talks to the API same-origin through these rewrites, so session cookies
// stay first-party and no CORS is involved. Only the WebSocket goes to the API directly.
// `@mdm/contracts` is compiled from its TypeScript source, so this app builds on its own,
// without building the contracts package first.
const proxiedPrefixes = ["/api", "/admin", "/auth"];

const nextConfig: NextConfig = {
  poweredByHeader: false,
  transpilePackages: ["@mdm/contracts"],
  turbopack: { resolveAlias: { "@mdm/contracts": "../../packages/contracts/src/index.ts" } },
  async headers() {
    return [
      {
        source: "/:path*",
        headers: [
          { key: "X-Frame-Options", value: "DENY" },
          { key: "X-Content-Type-Options", value: "nosniff" },
          // Reset and invitation links carry their token in the URL: never pass it on.
          { key: "Referrer-Policy", value: "no-referrer" },
        ],
      },
    ];
  },
  async rewrites() {
    return proxiedPrefixes.map((prefix) => ({ source: `${prefix}/:path*`, destination: `${apiUrl}${prefix}/:path*` }));
  },
};

export default nextConfig;
