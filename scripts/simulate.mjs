// `npm run simulate`: the device simulator, pointed at the API `npm start` serves (PORT and
// HOST from the environment or the root .env, as npm start reads them) unless --url says
// otherwise.
import { spawn } from "node:child_process";
import { effectiveVars, startSettings } from "./start-settings.mjs";

const args = process.argv.slice(2);
const hasUrl = args.some((arg) => arg === "--url" || arg.startsWith("--url="));
const withUrl = hasUrl ? args : ["--url", startSettings(effectiveVars()).apiUrl, ...args];
const npm = process.platform === "win32" ? "npm.cmd" : "npm";
const child = spawn(npm, ["run", "simulate", "--silent", "-w", "@mdm/simulator", "--", ...withUrl], { stdio: "inherit" });
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => child.kill(signal));
child.on("exit", (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
