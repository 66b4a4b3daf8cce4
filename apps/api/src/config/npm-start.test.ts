import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import { randomBytes } from "node:crypto";
import net from "node:net";
import path from "node:path";
import { Client } from "pg";
import { testServerUrl } from "../test/test-db";

// `npm start` runs through Turborepo, whose strict environment mode once dropped every
// variable turbo.json did not declare: `PORT=9000 npm start` served on 8000 and DATABASE_URL
// was ignored for the embedded database. This runs the README's command from the repository
// root as a user would, with the API alone (`npm start -- api`, the same script and Turborepo
// task): the dashboard's half would add a `next build` of minutes and take port 3000.

const ROOT = path.resolve(__dirname, "../../../..");
const serverUrl = testServerUrl();
// Needs a PostgreSQL server to hand the API a database of its own (CI has one).
const withServer = serverUrl ? it : it.skip;

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

async function onServer<T>(url: string, work: (client: Client) => Promise<T>): Promise<T> {
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/** Stops `npm start` and everything under it; resolves once the API's port is closed. */
async function stop(child: ChildProcess, apiUrl: string): Promise<void> {
  if (child.exitCode === null) {
    const exited = new Promise((resolve) => child.once("exit", resolve));
    process.kill(-child.pid!, "SIGTERM");
    await exited;
  }
  for (let i = 0; i < 60; i++) {
    const closed = await fetch(`${apiUrl}/api/health`).then(
      () => false,
      () => true,
    );
    if (closed) return;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  throw new Error(`the API at ${apiUrl} outlived npm start`);
}

withServer(
  "`npm start` hands PORT, HOST, DATABASE_URL and the secrets to the API",
  async () => {
    const database = `mdm_test_start_${process.pid}_${randomBytes(4).toString("hex")}`;
    await onServer(serverUrl!, (client) => client.query(`CREATE DATABASE "${database}"`));
    const databaseUrl = new URL(serverUrl!);
    databaseUrl.pathname = `/${database}`;
    const port = await freePort();
    const apiUrl = `http://127.0.0.1:${port}`;
    const env: NodeJS.ProcessEnv = {
      ...process.env,
      PORT: String(port),
      HOST: "127.0.0.1",
      DATABASE_URL: databaseUrl.toString(),
      ADMIN_KEY: randomBytes(20).toString("hex"),
      HMAC_SECRET: randomBytes(20).toString("hex"),
      JWT_SECRET: randomBytes(20).toString("hex"),
      COMMAND_MASTER_KEY: randomBytes(20).toString("hex"),
    };
    // Jest's NODE_ENV=test would silence the API's log, which this test reads.
    delete env.NODE_ENV;

    // Its own process group, so that the whole tree can be stopped at the end.
    const child = spawn("npm", ["start", "--", "api"], { cwd: ROOT, env, detached: true, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout!.on("data", (chunk: Buffer) => (output += chunk.toString()));
    child.stderr!.on("data", (chunk: Buffer) => (output += chunk.toString()));
    try {
      // The first run builds the API first.
      const deadline = Date.now() + 180_000;
      while (!output.includes(`API ready on ${apiUrl}`)) {
        if (child.exitCode !== null) throw new Error(`npm start exited (${child.exitCode}):\n${output.slice(-4000)}`);
        if (Date.now() > deadline) throw new Error(`npm start: no "API ready" line within 180 s:\n${output.slice(-4000)}`);
        await new Promise((resolve) => setTimeout(resolve, 250));
      }

      const health = await fetch(`${apiUrl}/api/health`);
      expect(health.status).toBe(200);
      expect(await health.json()).toMatchObject({ status: "ok", database: "ok" });
      // DATABASE_URL was used: the migrations went into the database made for this test.
      const applied = await onServer(databaseUrl.toString(), (client) => client.query<{ count: string }>("SELECT count(*) FROM _prisma_migrations"));
      expect(Number(applied.rows[0]!.count)).toBeGreaterThan(0);
      expect(output).toContain('"database":"postgresql"');
      // The API warns when it falls back to the development secrets.
      expect(output).not.toContain("development secrets");
    } finally {
      await stop(child, apiUrl);
      await onServer(serverUrl!, (client) => client.query(`DROP DATABASE IF EXISTS "${database}" WITH (FORCE)`));
    }
  },
  240_000,
);

/** What scripts/start-settings.mjs makes of a .env file and an environment, run as npm start runs it. */
function startSettingsFor(dotEnv: string, environment: Record<string, string>) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "mdm-start-"));
  try {
    const envFile = path.join(dir, ".env");
    fs.writeFileSync(envFile, dotEnv);
    const script = `import { effectiveVars, startSettings } from ${JSON.stringify(path.join(ROOT, "scripts/start-settings.mjs"))};
      console.log(JSON.stringify(startSettings(effectiveVars(${JSON.stringify(envFile)}, JSON.parse(process.argv[1])))));`;
    return JSON.parse(execFileSync(process.execPath, ["--input-type=module", "-e", script, JSON.stringify(environment)], { encoding: "utf8" }));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

it("npm start sends the dashboard where .env or the environment says, and waits for it there", () => {
  // Nothing set: both on loopback.
  expect(startSettingsFor("", {})).toEqual({
    apiUrl: "http://127.0.0.1:8000",
    dashboardUrl: "http://127.0.0.1:3000",
    env: { NEXT_PUBLIC_API_URL: "http://127.0.0.1:8000", WEB_URL: "http://127.0.0.1:3000" },
  });
  // DASHBOARD_HOST from .env reaches server.js (which does not read .env), and the ready line probes it there.
  expect(startSettingsFor("DASHBOARD_HOST=127.0.0.2\nPORT=9000\n", {})).toEqual({
    apiUrl: "http://127.0.0.1:9000",
    dashboardUrl: "http://127.0.0.2:3000",
    env: { NEXT_PUBLIC_API_URL: "http://127.0.0.1:9000", DASHBOARD_HOST: "127.0.0.2", WEB_URL: "http://127.0.0.2:3000" },
  });
  // The dashboard follows HOST; the environment wins over .env.
  // DASHBOARD_PORT moves the dashboard (PORT stays the API's), and the ready line and mailed links with it.
  expect(startSettingsFor("DASHBOARD_PORT=3300\n", { PORT: "9100" })).toEqual({
    apiUrl: "http://127.0.0.1:9100",
    dashboardUrl: "http://127.0.0.1:3300",
    env: { NEXT_PUBLIC_API_URL: "http://127.0.0.1:9100", DASHBOARD_PORT: "3300", WEB_URL: "http://127.0.0.1:3300" },
  });
  // A WEB_URL set (a public address, say) is the one mails use.
  expect(startSettingsFor("HOST=127.0.0.3\n", { HOST: "0.0.0.0", NEXT_PUBLIC_API_URL: "https://api.example.com", WEB_URL: "https://mdm.example.com" })).toEqual(
    {
      apiUrl: "http://127.0.0.1:8000",
      dashboardUrl: "http://127.0.0.1:3000",
      env: { DASHBOARD_HOST: "0.0.0.0" },
    },
  );
});

it("npm run simulate points the simulator at the API npm start serves: PORT from the environment", async () => {
  const port = await freePort();
  // Nothing listens there: the simulator's refusal names the URL it was given.
  const run = spawn("npm", ["run", "simulate", "--", "--devices", "1"], {
    cwd: ROOT,
    env: { ...process.env, PORT: String(port) },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  run.stdout!.on("data", (chunk: Buffer) => (output += chunk.toString()));
  run.stderr!.on("data", (chunk: Buffer) => (output += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => run.on("exit", resolve));
  expect(code).not.toBe(0);
  expect(output).toContain(`Cannot reach the API at http://127.0.0.1:${port}`);
}, 120_000);
