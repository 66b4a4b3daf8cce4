// The dashboard's HTTP server: `next start` plus one thing it cannot do. Next.js forwards
// /api, /auth and /admin to the API (next.config.ts) with the client's own X-Forwarded-For
// if it sent one, so any browser could name its address for the API's rate limits and
// audit log. Here every request's forwarding headers are replaced by the address of the
// socket this server accepted, before Next.js sees them.
//
//   node server.js [--port 3000] [--hostname 0.0.0.0]   (DASHBOARD_PORT and DASHBOARD_HOST also work)
//
// Loopback unless told otherwise: the dashboard relays every request to the API, so a
// dashboard reachable from the network makes the API reachable too, even where the API
// itself chose loopback because it runs on generated development secrets.

import { createServer } from "node:http";
import path from "node:path";
import { fileURLToPath } from "node:url";
import next from "next";
import { apiOfBuild, isUpload, relayUpload } from "./upload-relay.js";

/** @param {string} name */
function argument(name) {
  const index = process.argv.indexOf(`--${name}`);
  return index > 0 ? process.argv[index + 1] : undefined;
}

/** Forwarding headers name the peer this server accepted, never what the client wrote. */
export function forwardFromPeer(/** @type {import("node:http").IncomingMessage} */ req) {
  delete req.headers.forwarded;
  delete req.headers["x-real-ip"];
  req.headers["x-forwarded-for"] = req.socket.remoteAddress ?? "";
}

// Not PORT: `npm start` gives both apps one environment, and PORT is the API's.
const port = Number(argument("port") ?? process.env.DASHBOARD_PORT ?? 3000);
const hostname = argument("hostname") || process.env.DASHBOARD_HOST || "127.0.0.1";
const dir = path.dirname(fileURLToPath(import.meta.url));
const app = next({ dev: false, dir, hostname, port });
const handle = app.getRequestHandler();
await app.prepare();
const upgrade = app.getUpgradeHandler();
const api = apiOfBuild(dir);

const server = createServer((req, res) => {
  forwardFromPeer(req);
  if (isUpload(req)) return relayUpload(req, res, api);
  void handle(req, res);
});
server.on("upgrade", (req, socket, head) => {
  forwardFromPeer(req);
  void upgrade(req, socket, head);
});
server.listen(port, hostname, () => console.log(`dashboard listening on http://${hostname}:${port}`));

const stop = () => server.close(() => process.exit(0));
process.once("SIGTERM", stop);
process.once("SIGINT", stop);
