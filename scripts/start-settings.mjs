// What `npm start` hands the two apps, from the real environment over the root .env (as the
// API reads them itself: apps/api/src/config/env-file.ts). Apart from start.mjs so that it
// can be tested without starting anything.
import fs from "node:fs";
import { parseEnv } from "node:util";

/** The variables in effect: the root .env, overridden by the real environment. */
export function effectiveVars(envFile = new URL("../.env", import.meta.url), environment = process.env) {
  return { ...(fs.existsSync(envFile) ? parseEnv(fs.readFileSync(envFile, "utf8")) : {}), ...environment };
}

/** Where to reach a server listening on `listenHost` from this machine: a wildcard is reached on loopback. */
function reachable(listenHost, port) {
  const host = !listenHost || listenHost === "0.0.0.0" || listenHost === "::" ? "127.0.0.1" : listenHost;
  return `http://${host.includes(":") ? `[${host}]` : host}:${port}`;
}

/**
 * The API's and the dashboard's URLs, and the variables to add to the apps' environment:
 * the dashboard talks to the API wherever PORT and HOST put it (unless NEXT_PUBLIC_API_URL
 * says otherwise), and, since it relays to the API, listens where the API does (loopback
 * when HOST is unset) unless DASHBOARD_HOST says otherwise. server.js does not read .env,
 * so what .env says reaches it through its environment. Unless WEB_URL says otherwise, the
 * links the API mails (password resets, invitations) point where the dashboard is served,
 * at the address the ready line prints.
 */
export function startSettings(vars) {
  const apiUrl = reachable(vars.HOST, vars.PORT || 8000);
  const dashboardHost = vars.DASHBOARD_HOST || vars.HOST;
  const env = {};
  if (!vars.NEXT_PUBLIC_API_URL) env.NEXT_PUBLIC_API_URL = apiUrl;
  if (dashboardHost) env.DASHBOARD_HOST = dashboardHost;
  // server.js listens on DASHBOARD_PORT (never PORT, which is the API's here).
  if (vars.DASHBOARD_PORT) env.DASHBOARD_PORT = vars.DASHBOARD_PORT;
  const dashboardUrl = reachable(dashboardHost, vars.DASHBOARD_PORT || 3000);
  if (!vars.WEB_URL) env.WEB_URL = dashboardUrl;
  return { apiUrl, dashboardUrl, env };
}
