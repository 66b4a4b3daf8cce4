// Load generator, run in its own process so it never shares an event loop with a server:
// heartbeats with tokens rotating over every device, either as fast as the server answers
// (`connections` in flight) or at a fixed overall rate for a fixed number of requests.
// Two generators give the same requests: wrk (C, one thread: a small share of the cores the
// servers need) where it is installed, else autocannon (Node: on 2 cores it took a share
// large enough that at a fixed 2,000/s the API was sent 1,275/s, against 1,536/s by wrk).
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import autocannon from "autocannon";
import { APP_VERSIONS, appVersionIndexOf, appVersionNamed, appVersionOf, heartbeatBody, jobOf, type LoadGenerator, shuffledIndexes } from "./common";
export type HttpLoadJob = {
  url: string;
  tokensFile: string;
  connections: number;
  seconds?: number;
  rate?: number;
  amount?: number;
  generator: LoadGenerator;
};
export type HttpLoadResult = { requestsPerSecond: number; ok: number; errors: number; p50: number; p99: number; max: number; seconds: number };

const TIMEOUT_SECONDS = 10;
// Heartbeat bodies per app version for wrk: the sequence number varies the battery, memory,
// signal and uptime a device reports, as in the autocannon path.
const WRK_BODY_VARIANTS = 1000;

async function withAutocannon(job: HttpLoadJob, tokens: string[], order: number[]): Promise<HttpLoadResult> {
  let next = Math.floor(Math.random() * tokens.length);
  const result = await autocannon({
    url: `${job.url}/v1/heartbeat`,
    connections: job.connections,
    ...(job.amount ? { amount: job.amount } : { duration: job.seconds ?? 10 }),
    ...(job.rate ? { overallRate: job.rate } : {}),
    timeout: TIMEOUT_SECONDS,
    requests: [
      {
        method: "POST",
        setupRequest: (request) => {
          next++;
          const index = order[next % tokens.length]!;
          return {
            ...request,
            headers: { "content-type": "application/json", authorization: `Bearer ${tokens[index]}` },
            body: heartbeatBody(next, appVersionOf(index)),
          };
        },
      },
    ],
  });
  const seconds = result.duration;
  return {
    requestsPerSecond: Math.round(result["2xx"] / seconds),
    ok: result["2xx"],
    errors: result.errors + result.timeouts + result.non2xx,
    p50: result.latency.p50,
    p99: result.latency.p99,
    max: result.latency.max,
    seconds,
  };
}

async function withWrk(job: HttpLoadJob, tokens: string[], order: number[]): Promise<HttpLoadResult> {
  const dir = mkdtempSync(path.join(os.tmpdir(), "mdm-wrk-"));
  try {
    const devicesFile = path.join(dir, "devices.txt");
    const bodiesFile = path.join(dir, "bodies.txt");
    // Each device with the index of its app version, in the order they are heard from.
    const start = Math.floor(Math.random() * tokens.length);
    const devices = order.map((_, i) => {
      const index = order[(start + i) % order.length]!;
      return `${tokens[index]} ${appVersionIndexOf(index)}`;
    });
    writeFileSync(devicesFile, `${devices.join("\n")}\n`);
    const bodies: string[] = [];
    for (let version = 0; version < APP_VERSIONS; version++)
      for (let sequence = 0; sequence < WRK_BODY_VARIANTS; sequence++) bodies.push(heartbeatBody(sequence, appVersionNamed(version)));
    writeFileSync(bodiesFile, `${bodies.join("\n")}\n`);
    // With a rate and an amount, the script stops wrk at the amount-th answer; the duration is
    // then only a bound.
    const amount = job.rate ? (job.amount ?? 0) : 0;
    const seconds = amount ? Math.ceil((amount / job.rate!) * 3) + TIMEOUT_SECONDS : (job.seconds ?? 10);
    const args = [
      "-t1",
      `-c${job.connections}`,
      `-d${seconds}s`,
      "--timeout",
      `${TIMEOUT_SECONDS}s`,
      "-s",
      path.join(__dirname, "wrk-heartbeats.lua"),
      job.url,
    ];
    const script = [devicesFile, bodiesFile, WRK_BODY_VARIANTS, job.rate ?? 0, amount].map(String);
    const child = spawn("wrk", [...args, "--", ...script], { stdio: ["ignore", "pipe", "inherit"] });
    let output = "";
    child.stdout.on("data", (chunk: Buffer) => {
      output += chunk.toString();
    });
    const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
    const line = output.split("\n").findLast((candidate) => candidate.startsWith("{"));
    if (code !== 0 || !line) throw new Error(`wrk exited with ${code}: ${output}`);
    const result = JSON.parse(line) as { requests: number; status: number; errors: number; seconds: number; p50: number; p99: number; max: number };
    // Cut off by the bound: requests in flight then were written by the server, never counted.
    if (amount && result.requests < amount) throw new Error(`wrk had ${result.requests} of ${amount} answers within ${seconds} s`);
    const ok = result.requests - result.status;
    return {
      requestsPerSecond: Math.round(ok / result.seconds),
      ok,
      errors: result.errors,
      p50: result.p50,
      p99: result.p99,
      max: result.max,
      seconds: result.seconds,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main() {
  const job = jobOf<HttpLoadJob>();
  const tokens = readFileSync(job.tokensFile, "utf8").trim().split("\n");
  const order = shuffledIndexes(tokens.length);
  const result = job.generator === "wrk" ? await withWrk(job, tokens, order) : await withAutocannon(job, tokens, order);
  console.log(JSON.stringify(result));
}

void main();
