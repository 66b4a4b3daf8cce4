import http from "node:http";
import type { Env } from "../config/env";

/**
 * The API's HTTP server with its connection limits: slow clients are cut off, idle
 * keep-alive connections outlive the proxy's, and connections past the cap are refused.
 *
 * headersTimeout needs no margin over keepAliveTimeout: since Node 18 it counts from a
 * request's first byte, so an idle keep-alive connection is governed by keepAliveTimeout
 * alone (checked in http-server.test.ts).
 */
export function createHttpServer(listener: http.RequestListener, env: Env): http.Server {
  const headersTimeout = env.HTTP_HEADERS_TIMEOUT_SECONDS * 1000;
  const server = http.createServer(
    {
      headersTimeout,
      // Node's timeout is server-wide, so it must let an APK upload finish; every other body
      // has its own, shorter limit (read-body.ts), and an answer given before its request's
      // body arrived closes the connection (error-handler.ts).
      requestTimeout: Math.max(env.HTTP_REQUEST_TIMEOUT_SECONDS, env.APK_UPLOAD_TIMEOUT_SECONDS) * 1000,
      keepAliveTimeout: env.HTTP_KEEP_ALIVE_TIMEOUT_SECONDS * 1000,
      // How often those timeouts are checked (Node's default, 30 s, would let a slow
      // client hold its connection up to 30 s past its deadline).
      connectionsCheckingInterval: Math.max(100, Math.min(2_000, headersTimeout / 4)),
    },
    listener,
  );
  server.maxConnections = env.HTTP_MAX_CONNECTIONS;
  return server;
}
