// Load generator, run in its own process so it never shares an event loop with a server:
// heartbeats with tokens rotating over every device, either as fast as the server answers
// (`connections` in flight) or at a fixed overall rate for a fixed number of requests.
import { readFileSync } from "node:fs";
import autocannon from "autocannon";
import { appVersionOf, heartbeatBody, jobOf, shuffledIndexes } from "./common";

export type HttpLoadJob = { url: string; tokensFile: string; connections: number; seconds?: number; rate?: number; amount?: number };
export type HttpLoadResult = { requestsPerSecond: number; ok: number; errors: number; p50: number; p99: number; max: number; seconds: number };

async function main() {
  const job = jobOf<HttpLoadJob>();
  const tokens = readFileSync(job.tokensFile, "utf8").trim().split("\n");
  const order = shuffledIndexes(tokens.length);
  let next = Math.floor(Math.random() * tokens.length);
  const result = await autocannon({
    url: `${job.url}/v1/heartbeat`,
    connections: job.connections,
    ...(job.amount ? { amount: job.amount } : { duration: job.seconds ?? 10 }),
    ...(job.rate ? { overallRate: job.rate } : {}),
    timeout: 10,
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
  const out: HttpLoadResult = {
    requestsPerSecond: Math.round(result["2xx"] / seconds),
    ok: result["2xx"],
    errors: result.errors + result.timeouts + result.non2xx,
    p50: result.latency.p50,
    p99: result.latency.p99,
    max: result.latency.max,
    seconds,
  };
  console.log(JSON.stringify(out));
}

void main();
