// `npm start`: the API and the dashboard through Turborepo, which first builds what changed.
// On a first start the API is ready minutes before the dashboard (its `next build`), and
// Turborepo's interleaved output does not say when either is usable, so this prints one
// line when each answers, with its URL. `npm start -- api` (or `web`) starts one of them.
import { spawn } from "node:child_process";
import fs from "node:fs";
import { createRequire } from "node:module";
import { parseEnv } from "node:util";

const APPS = { api: "@mdm/api", web: "@mdm/web" };
// apps/web's start script: `next start --port 3000`.
const DASHBOARD_URL = "http://127.0.0.1:3000";

const chosen = process.argv.slice(2);
const apps = chosen.length ? chosen : Object.keys(APPS);
if (apps.some((app) => !(app in APPS))) {
  console.error(`usage: npm start [-- ${Object.keys(APPS).join("|")} ...]`);
  process.exit(2);
}

// Where the API will listen: what it reads itself, the real environment over the root .env
// (apps/api/src/config/env-file.ts).
const envFile = new URL("../.env", import.meta.url);
const vars = { ...(fs.existsSync(envFile) ? parseEnv(fs.readFileSync(envFile, "utf8")) : {}), ...process.env };
const host = !vars.HOST || vars.HOST === "0.0.0.0" || vars.HOST === "::" ? "127.0.0.1" : vars.HOST;
const apiUrl = `http://${host.includes(":") ? `[${host}]` : host}:${vars.PORT || 8000}`;

const env = { ...process.env };
// The dashboard talks to the API wherever PORT and HOST put it, unless NEXT_PUBLIC_API_URL
// says otherwise.
if (!vars.NEXT_PUBLIC_API_URL) env.NEXT_PUBLIC_API_URL = apiUrl;
// The dashboard relays to the API, so it is exactly as reachable as the API: where HOST
// says (loopback when unset), unless DASHBOARD_HOST says otherwise (apps/web/server.js).
if (!vars.DASHBOARD_HOST && vars.HOST) env.DASHBOARD_HOST = vars.HOST;

const turboBin = createRequire(import.meta.url).resolve("turbo");
const filters = apps.map((app) => `--filter=${APPS[app]}`);
const turbo = spawn(process.execPath, [turboBin, "run", "start", ...filters], { stdio: "inherit", env });
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => turbo.kill(signal));
turbo.on("exit", (code) => process.exit(code ?? 1));

const answers = (url) =>
  fetch(url, { redirect: "manual", signal: AbortSignal.timeout(2000) }).then(
    () => true,
    () => false,
  );

async function whenAnswering(url) {
  while (!(await answers(url))) await new Promise((resolve) => setTimeout(resolve, 1000));
}

let dashboardReady = false;
if (apps.includes("web")) {
  void whenAnswering(`${DASHBOARD_URL}/sign-in`).then(() => {
    dashboardReady = true;
    console.log(`\n>>> Dashboard ready on ${DASHBOARD_URL}\n`);
  });
}
if (apps.includes("api")) {
  void whenAnswering(`${apiUrl}/api/health`).then(() => {
    const building = apps.includes("web") && !dashboardReady ? " (the dashboard is still starting: its first build takes a few minutes)" : "";
    console.log(`\n>>> API ready on ${apiUrl}${building}\n`);
  });
}
