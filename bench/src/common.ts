import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import path from "node:path";

/**
 * The app version the benchmark's device number `index` (its line in the tokens file) is
 * enrolled with, and reports: a device's version changes when its app is updated, not at
 * every heartbeat (appVersion is indexed for sorting, so a change is not a HOT update).
 */
export const appVersionOf = (index: number) => appVersionNamed(appVersionIndexOf(index));
export const APP_VERSIONS = 5;
export const appVersionIndexOf = (index: number) => (index + 1) % APP_VERSIONS;
export const appVersionNamed = (version: number) => `3.${version}.0`;

/**
 * 0..count-1 in random order: the order devices are heard from. A fleet's heartbeats come in
 * no relation to the order of its rows on disk; rotating through the tokens in insertion
 * order updated all the rows of a page within milliseconds, more new row versions than a
 * page has room for, which turned half of them into non-HOT updates.
 */
export function shuffledIndexes(count: number): number[] {
  const indexes = Array.from({ length: count }, (_, i) => i);
  for (let i = count - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [indexes[i], indexes[j]] = [indexes[j]!, indexes[i]!];
  }
  return indexes;
}

/** A realistic heartbeat (about 300 bytes): every section a phone sends, two apps. */
export function heartbeatBody(sequence: number, appVersion = "3.2.0"): string {
  return JSON.stringify({
    deviceTime: new Date().toISOString(),
    battery: { level: sequence % 100, charging: sequence % 7 === 0 },
    memory: { total: 4_000_000_000, available: 1_500_000_000 + (sequence % 1000) * 1000 },
    storage: { total: 64_000_000_000, available: 20_000_000_000 },
    network: { type: "wifi", signal: -40 - (sequence % 50), ip: "10.0.0.12" },
    uptimeSeconds: 86_400 + sequence,
    appVersion,
    apps: [
      { packageName: "com.example.kiosk", versionName: appVersion, running: true, foreground: true },
      { packageName: "com.example.updater", running: false },
    ],
  });
}

/** Runs a bench script (TypeScript, through tsx) in its own process. */
export function spawnScript(script: string, env: Record<string, string>, options: { inheritStdout?: boolean } = {}): ChildProcess {
  return spawn(process.execPath, ["--import", "tsx", path.join(__dirname, script)], {
    env: { ...process.env, ...env },
    stdio: ["ignore", options.inheritStdout ? "inherit" : "pipe", "inherit"],
  });
}

/** Runs a bench script to completion and parses the JSON line it prints last. */
export async function runScript<T>(script: string, job: unknown): Promise<T> {
  const child = spawnScript(script, { BENCH_JOB: JSON.stringify(job) });
  let output = "";
  child.stdout!.on("data", (chunk: Buffer) => {
    output += chunk.toString();
  });
  const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
  const last = output.trim().split("\n").pop() ?? "";
  if (code !== 0) throw new Error(`${script} exited with ${code}: ${last}`);
  return JSON.parse(last) as T;
}

/** The job a child script was given by its parent. */
export function jobOf<T>(): T {
  return JSON.parse(process.env.BENCH_JOB ?? "{}") as T;
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

export const round = (value: number, digits = 1) => Number(value.toFixed(digits));

export type LoadGenerator = "wrk" | "autocannon";

/** The load generator `BENCH_LOADGEN` names, else wrk where it is on the PATH, else autocannon. */
export function chosenLoadGenerator(): LoadGenerator {
  const named = process.env.BENCH_LOADGEN;
  if (named === "wrk" || named === "autocannon") return named;
  if (named) throw new Error(`BENCH_LOADGEN must be wrk or autocannon, not ${named}`);
  try {
    execFileSync("wrk", ["--version"], { stdio: "ignore" });
  } catch (error) {
    // wrk --version prints its usage and exits 1: only a missing binary is ENOENT.
    if ((error as NodeJS.ErrnoException).code === "ENOENT") return "autocannon";
  }
  return "wrk";
}
