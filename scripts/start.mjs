// `npm start`: the API and the dashboard through Turborepo, which first builds what changed.
// On a first start the API is ready minutes before the dashboard (its `next build`), and
// Turborepo's interleaved output does not say when either is usable, so this prints one
// line when each answers, with its URL. `npm start -- api` (or `web`) starts one of them.
import { spawn } from "node:child_process";
import { createRequire } from "node:module";
import { effectiveVars, startSettings } from "./start-settings.mjs";

const APPS = { api: "@mdm/api", web: "@mdm/web" };

const chosen = process.argv.slice(2);
const apps = chosen.length ? chosen : Object.keys(APPS);
if (apps.some((app) => !(app in APPS))) {
  console.error(`usage: npm start [-- ${Object.keys(APPS).join("|")} ...]`);
  process.exit(2);
}

const settings = startSettings(effectiveVars());
const apiUrl = settings.apiUrl;
const DASHBOARD_URL = settings.dashboardUrl;
const env = { ...process.env, ...settings.env };

const turboBin = createRequire(import.meta.url).resolve("turbo");
const filters = apps.map((app) => `--filter=${APPS[app]}`);
const turbo = spawn(process.execPath, [turboBin, "run", "start", ...filters], { stdio: "inherit", env });
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => turbo.kill(signal));
turbo.on("exit", (code) => process.exit(code ?? 1));

// A 2xx, not any answer: another server on the port (a 404 from it) is not our app.
const answers = (url) =>
  fetch(url, { redirect: "manual", signal: AbortSignal.timeout(2000) }).then(
    (response) => response.ok,
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
    const building = apps.includes("web") && !dashboardReady ? " (the dashboard is still starting: a first build takes a few minutes)" : "";
    console.log(`\n>>> API ready on ${apiUrl}${building}\n`);
  });
}
