import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import { chownSync, existsSync, mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { Client } from "pg";

// Throwaway PostgreSQL and Redis servers of the fault tests' own, on ports of their own:
// stopping them hurts nobody else (the shared servers must never be stopped). Ports come
// from FAULTS_PORT_BASE (default 19950): PostgreSQL on base + 2k, Redis on base + 2k + 1,
// k chosen by the test file.

const PG_BIN = process.env.FAULTS_PG_BIN ?? findPgBin();

function findPgBin(): string {
  for (const version of ["17", "16", "15", "14"]) {
    const dir = `/usr/lib/postgresql/${version}/bin`;
    if (existsSync(path.join(dir, "initdb"))) return dir;
  }
  return "";
}

export const faultPort = (offset: number) => Number(process.env.FAULTS_PORT_BASE ?? 19950) + offset;

/** initdb refuses to run as root: there, PostgreSQL runs as the `postgres` user. */
function asPostgresUser(command: string, args: string[]): [string, string[]] {
  return process.getuid?.() === 0 ? ["runuser", ["-u", "postgres", "--", command, ...args]] : [command, args];
}

export type PrivatePostgres = {
  /** Server URL (database `postgres`); `urlOf(name)` for another database. */
  url: string;
  urlOf: (database: string) => string;
  /** Stops it at once, as a crash or a pulled plug would (`pg_ctl stop -m immediate`). */
  stop: () => void;
  start: () => void;
  createDatabase: (name: string) => Promise<string>;
  close: () => void;
};

export function privatePostgresAvailable(): boolean {
  return PG_BIN !== "" && (process.getuid?.() !== 0 || existsSync("/usr/sbin/runuser") || existsSync("/sbin/runuser"));
}

export function startPrivatePostgres(port: number): PrivatePostgres {
  const dir = mkdtempSync(path.join(os.tmpdir(), "mdm-faults-pg-"));
  if (process.getuid?.() === 0)
    chownSync(dir, Number(execFileSync("id", ["-u", "postgres"]).toString().trim()), Number(execFileSync("id", ["-g", "postgres"]).toString().trim()));
  const data = path.join(dir, "data");
  const run = (command: string, args: string[]) => {
    const [file, argv] = asPostgresUser(path.join(PG_BIN, command), args);
    execFileSync(file, argv, { stdio: ["ignore", "ignore", "pipe"] });
  };
  run("initdb", ["-D", data, "-U", "postgres", "--auth=trust", "-N", "-E", "UTF8"]);
  // fsync off: the outage is a killed server, not a lost disk; what was written reaches the
  // OS and survives. synchronous_commit stays on: off, an immediate stop loses commits
  // already acknowledged, which is exactly what these tests look for.
  const options = `-p ${port} -k ${dir} -c listen_addresses=127.0.0.1 -c fsync=off -c full_page_writes=off -c max_connections=200`;
  const start = () => run("pg_ctl", ["-D", data, "-o", options, "-l", path.join(dir, "log"), "-w", "-t", "30", "start"]);
  const stop = () => run("pg_ctl", ["-D", data, "-m", "immediate", "-w", "stop"]);
  start();
  const urlOf = (database: string) => `postgresql://postgres@127.0.0.1:${port}/${database}`;
  return {
    url: urlOf("postgres"),
    urlOf,
    start,
    stop,
    createDatabase: async (name) => {
      const client = new Client({ connectionString: urlOf("postgres") });
      await client.connect();
      await client.query(`CREATE DATABASE "${name}"`);
      await client.end();
      return urlOf(name);
    },
    close: () => {
      try {
        stop();
      } catch {
        // already stopped
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export type PrivateRedis = { url: string; stop: () => Promise<void>; start: () => Promise<void>; close: () => Promise<void> };

export async function startPrivateRedis(port: number): Promise<PrivateRedis> {
  let child: ChildProcess | undefined;
  const start = async () => {
    child = spawn("redis-server", ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"], { stdio: "ignore" });
    for (let i = 0; i < 100; i++) {
      try {
        execFileSync("redis-cli", ["-p", String(port), "ping"], { stdio: "ignore" });
        return;
      } catch {
        await new Promise((resolve) => setTimeout(resolve, 100));
      }
    }
    throw new Error(`redis-server did not start on ${port}`);
  };
  const stop = async () => {
    const running = child;
    child = undefined;
    if (!running || running.exitCode !== null) return;
    const exited = new Promise((resolve) => running.once("exit", resolve));
    running.kill("SIGKILL");
    await exited;
  };
  await start();
  return { url: `redis://127.0.0.1:${port}`, start, stop, close: stop };
}
