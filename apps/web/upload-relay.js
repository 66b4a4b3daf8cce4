// APK uploads (up to the API's APK_MAX_BYTES, 100 MB by default) go from server.js straight
// to the API as they arrive. Next.js's rewrite proxy keeps a copy of every request body it
// forwards and stops forwarding at 10 MB (its proxyClientMaxBodySize), so a larger APK
// never reached the API whole, and the upload hung until the API's stall timeout.

import { readFileSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import path from "node:path";

const UPLOAD_PATH = /^\/admin\/apps\/?(\?|$)/i;

/**
 * The API the build's rewrites go to (NEXT_PUBLIC_API_URL when it was built), so that
 * uploads go where every other request goes, whatever the environment now says.
 * @param {string} dir the dashboard's folder, holding the build (.next)
 */
export function apiOfBuild(dir) {
  const manifest = JSON.parse(readFileSync(path.join(dir, ".next", "routes-manifest.json"), "utf8"));
  /** @type {{ source: string; destination: string } | undefined} */
  const admin = manifest.rewrites?.afterFiles?.find((/** @type {{ source: string }} */ rewrite) => rewrite.source === "/admin/:path*");
  if (!admin) throw new Error("The dashboard's build has no /admin rewrite: rebuild it (npm run build -w @mdm/web)");
  return admin.destination.replace(/\/admin\/:path\*$/, "");
}

/** Whether the request is an APK upload, which relayUpload streams instead of Next.js. */
export function isUpload(/** @type {import("node:http").IncomingMessage} */ req) {
  return req.method === "POST" && UPLOAD_PATH.test(req.url ?? "");
}

/**
 * Streams the request to the same path of the API and its answer back, as the rewrite
 * would: the same headers (the forwarding ones as server.js set them), with the API's Host.
 * @param {import("node:http").IncomingMessage} req
 * @param {import("node:http").ServerResponse} res
 * @param {string} api the API's URL, as apiOfBuild gives it
 */
export function relayUpload(req, res, api) {
  const target = new URL(`${api}${req.url ?? "/"}`);
  const send = target.protocol === "https:" ? httpsRequest : httpRequest;
  const upstream = send(
    target,
    { method: req.method, headers: { ...req.headers, host: target.host, "x-forwarded-host": req.headers.host ?? "" } },
    (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    },
  );
  upstream.on("error", () => {
    if (res.headersSent) return res.destroy();
    // The contract's answer for an API that cannot take the request now.
    res.writeHead(503, { "content-type": "application/json", "retry-after": "2" });
    res.end(JSON.stringify({ error: { code: "service_unavailable", message: "The dashboard could not reach the API", requestId: "none" } }));
  });
  // The browser gave up: so does the API's side.
  res.on("close", () => upstream.destroy());
  req.pipe(upstream);
}
