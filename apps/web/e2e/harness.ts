import { type ChildProcess, spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { type Browser, type Page, chromium } from "playwright-core";
const { findBrowser } = require("./find-browser.cjs") as { findBrowser: () => string | undefined };
import { parseEnv } from "../../api/src/config/env";
import { type RunningServer, startServer } from "../../api/src/server";
import { type TestDatabase, createTestDatabase, testServerUrl } from "../../api/src/test/test-db";

// What the end-to-end test runs against: the real API in this process (so the test can
// read the mail it records), a production build of the dashboard under `next start`, and
// Debian's Chromium.

const WEB_DIR = path.resolve(__dirname, "..");
const NEXT_BIN = require.resolve("next/dist/bin/next", { paths: [WEB_DIR] });

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** The first admin's setup token: the dashboard always relays, so setup through it asks for one. */
export const E2E_SETUP_TOKEN = "e2e-setup-token-0123456789abcdef0123456789";

export type Api = { server: RunningServer; url: string; close: () => Promise<void> };

/** The API with a database of its own: a fresh one on TEST_DATABASE_URL's server, else embedded. */
export async function startApi(webUrl: string, extraEnv: Record<string, string> = {}): Promise<Api> {
  const database: TestDatabase | undefined = testServerUrl() ? await createTestDatabase() : undefined;
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "mdm-web-e2e-"));
  const env = parseEnv({
    NODE_ENV: "test",
    HOST: "127.0.0.1",
    // The same port for every suite of the run, so one dashboard build serves them all.
    PORT: String(await sharedApiPort()),
    DATABASE_URL: database?.url,
    DATA_DIR: dataDir,
    WEB_URL: webUrl,
    // The dashboard reaches the API through Next's rewrite proxy on loopback: trust its
    // X-Forwarded-For, as a deployment behind a proxy would.
    TRUST_PROXY: "loopback",
    DASHBOARD_FLUSH_MS: "100",
    // The browser and the build share a busy machine: no shedding on event-loop lag here.
    ADMISSION_MAX_EVENT_LOOP_LAG_MS: "0",
    SETUP_TOKEN: E2E_SETUP_TOKEN,
    // bcrypt's lowest cost, for test runs only: the suites sign in many times.
    BCRYPT_COST: "4",
    // Each request's info line, printed through jest's console, buried the one failure of a
    // CI run under thousands of lines; warnings and errors still show.
    LOG_LEVEL: process.env.E2E_LOG_LEVEL ?? "warn",
    ...extraEnv,
  });
  const server = await startServer(env);
  return {
    server,
    url: server.url,
    close: async () => {
      await server.close();
      await database?.close();
      fs.rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

function run(args: string[], env: NodeJS.ProcessEnv): ChildProcess {
  return spawn(process.execPath, [NEXT_BIN, ...args], {
    cwd: WEB_DIR,
    env: { ...process.env, ...env, NEXT_TELEMETRY_DISABLED: "1" },
    stdio: ["ignore", "pipe", "pipe"],
  });
}

/** `next build` with the API's URL baked in, as a deployment would build it. */
/**
 * One API port per test process: the suites run one after another (runInBand), each with its
 * own API on this port, so the dashboard, whose build bakes the API's URL in, is built once.
 */
async function sharedApiPort(): Promise<number> {
  process.env.E2E_API_PORT ??= String(await freePort());
  return Number(process.env.E2E_API_PORT);
}

/** Marks the build with the API URL it was made for (`next build` takes minutes: once per run). */
const BUILT_FOR = path.join(WEB_DIR, ".next", "e2e-built-for-api");

export async function buildWeb(apiUrl: string): Promise<void> {
  if (process.env.E2E_BUILT_FOR === apiUrl && fs.existsSync(BUILT_FOR) && fs.readFileSync(BUILT_FOR, "utf8") === apiUrl) return;
  const child = run(["build"], { NEXT_PUBLIC_API_URL: apiUrl, NODE_ENV: "production" });
  let output = "";
  child.stdout?.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
  if (code !== 0) throw new Error(`next build failed (${code}):\n${output.slice(-4000)}`);
  fs.writeFileSync(BUILT_FOR, apiUrl);
  process.env.E2E_BUILT_FOR = apiUrl;
}

export type Web = { url: string; stop: () => Promise<void> };

/**
 * The dashboard's own server (`npm start`: server.js) on that build at `port`; resolves once
 * it answers on loopback. `hostname: null` leaves the listening address to server.js.
 */
export async function startWeb(port: number, apiUrl: string, options: { hostname?: string | null; env?: Record<string, string> } = {}): Promise<Web> {
  const hostname = options.hostname === undefined ? "127.0.0.1" : options.hostname;
  const args = [path.join(WEB_DIR, "server.js"), "--port", String(port), ...(hostname === null ? [] : ["--hostname", hostname])];
  const child = spawn(process.execPath, args, {
    cwd: WEB_DIR,
    env: { ...process.env, NEXT_PUBLIC_API_URL: apiUrl, NODE_ENV: "production", NEXT_TELEMETRY_DISABLED: "1", ...options.env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  child.stdout?.on("data", (chunk: Buffer) => (output += chunk.toString()));
  child.stderr?.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const url = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`next start exited (${child.exitCode}):\n${output}`);
    const ready = await fetch(`${url}/sign-in`).then(
      (response) => response.ok,
      () => false,
    );
    if (ready) break;
    if (Date.now() > deadline) throw new Error(`next start did not answer within 60 s:\n${output}`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  return {
    url,
    stop: async () => {
      if (child.exitCode !== null) return;
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGTERM");
      await exited;
    },
  };
}

export async function launchBrowser(): Promise<Browser> {
  // jest.config.cjs runs this suite only when a browser exists.
  const executablePath = findBrowser();
  if (!executablePath) throw new Error("No Chromium: set CHROME_PATH, or apt-get install -y chromium");
  return chromium.launch({
    executablePath,
    headless: true,
    args: [
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
    ],
  });
}

/** Polls until `check` holds; fails with `what` after `timeoutMs`. */
export async function eventually(what: string, check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`Timed out after ${timeoutMs} ms waiting for: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
}

/**
 * A fresh server's first visit: the dashboard sends it to /setup, where the first admin is
 * created with the setup token and signed in on the overview.
 */
export async function createFirstAdmin(page: Page, webUrl: string, admin: { name: string; email: string; password: string }): Promise<void> {
  await page.goto(`${webUrl}/`);
  await page.waitForURL("**/setup");
  await page.getByLabel(/Setup token/).fill(E2E_SETUP_TOKEN);
  await page.getByLabel("Your name").fill(admin.name);
  await page.getByLabel("Email").fill(admin.email);
  await page.getByLabel("Password", { exact: true }).fill(admin.password);
  await page.getByLabel("Repeat the password").fill(admin.password);
  await page.getByRole("button", { name: "Create admin account" }).click();
  await page.getByRole("heading", { name: "Overview" }).waitFor();
}

/**
 * A screenshot of the whole page with the viewport stretched to its height first: a plain
 * full-page capture leaves the sticky sidebar where the first screen ended.
 */
export async function screenshotWholePage(page: Page, file: string): Promise<void> {
  const viewport = page.viewportSize();
  if (!viewport) throw new Error("the page has no viewport");
  const height = await page.evaluate(() => document.documentElement.scrollHeight);
  await page.setViewportSize({ width: viewport.width, height: Math.max(height, viewport.height) });
  await page.screenshot({ path: file });
  await page.setViewportSize(viewport);
}

/** Elements reaching past the right edge of the viewport (what makes a page scroll sideways). */
export async function overflowing(target: Page): Promise<string[]> {
  return target.evaluate(() => {
    const width = document.documentElement.clientWidth;
    const found: string[] = [];
    for (const element of Array.from(document.body.querySelectorAll("*"))) {
      const box = element.getBoundingClientRect();
      if (box.width > 0 && box.right > width + 1 && !element.closest("[data-slot=table-container]"))
        found.push(`${element.tagName.toLowerCase()}.${element.className}`.slice(0, 120));
    }
    const containers = Array.from(document.querySelectorAll("[data-slot=table-container]")).filter((box) => box.scrollWidth > box.clientWidth + 1);
    for (const box of containers) found.push(`table scrolls sideways: ${box.scrollWidth} > ${box.clientWidth}`);
    if (document.documentElement.scrollWidth > width) found.push(`page ${document.documentElement.scrollWidth} > ${width}`);
    return found.slice(0, 10);
  });
}
