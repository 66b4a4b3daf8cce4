import { randomUUID } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";
import type { RegisterResponse } from "@mdm/contracts";
import { SimulatedDevice, heartbeatRetryDelayMs } from "./device";

// A device facing a refusing server (429/503 with Retry-After, or an auth error) backs off
// with jitter instead of knocking at its normal pace.

describe("heartbeatRetryDelayMs", () => {
  const low = () => 0;
  const high = () => 0.999999;

  it("grows exponentially from the interval, with half of it random, up to the cap", () => {
    expect([1, 2, 3, 4].map((failures) => heartbeatRetryDelayMs(failures, 1000, 60_000, 0, low))).toEqual([500, 1000, 2000, 4000]);
    expect([1, 2, 3, 4].map((failures) => heartbeatRetryDelayMs(failures, 1000, 60_000, 0, high))).toEqual([1000, 2000, 4000, 8000]);
    expect(heartbeatRetryDelayMs(30, 1000, 60_000, 0, high)).toBe(60_000);
  });

  it("never goes before the server's Retry-After, and spreads a fleet over up to half of it again", () => {
    expect(heartbeatRetryDelayMs(1, 100, 60_000, 10_000, low)).toBe(10_000);
    expect(heartbeatRetryDelayMs(1, 100, 60_000, 10_000, high)).toBe(15_000);
    const spread = new Set(Array.from({ length: 50 }, () => heartbeatRetryDelayMs(1, 100, 60_000, 10_000, Math.random)));
    expect(spread.size).toBeGreaterThan(10);
  });
});

type Answer = { status: number; headers?: Record<string, string>; body: unknown };

async function startRefusingServer(answers: (attempt: number) => Answer) {
  const attempts: number[] = [];
  const server = http.createServer((req, res) => {
    req.resume();
    req.on("end", () => {
      attempts.push(Date.now());
      const answer = answers(attempts.length);
      res.writeHead(answer.status, { "Content-Type": "application/json", ...answer.headers }).end(JSON.stringify(answer.body));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    attempts,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

const registration: RegisterResponse = {
  deviceId: randomUUID(),
  deviceToken: "t".repeat(43),
  commandKey: "a".repeat(64),
  commandKeyId: "1",
  heartbeatIntervalSeconds: 60,
} as RegisterResponse;

const refusal = (status: number, code: string, headers?: Record<string, string>): Answer => ({
  status,
  headers,
  body: { error: { code, message: "no", requestId: "r" } },
});
const ok: Answer = { status: 200, body: { serverTime: new Date().toISOString(), heartbeatIntervalSeconds: 60, commands: [] } };

const waitFor = async (condition: () => boolean, timeoutMs: number) => {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error("timed out");
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
};

describe("a simulated device's heartbeat loop", () => {
  it("honours Retry-After on 503 and 429, then returns to its interval once served", async () => {
    const server = await startRefusingServer((attempt) =>
      attempt === 1 ? refusal(503, "service_unavailable", { "Retry-After": "1" }) : attempt === 2 ? refusal(429, "rate_limited", { "Retry-After": "1" }) : ok,
    );
    const device = new SimulatedDevice(server.url, registration, { intervalMs: 50, random: () => 0 });
    device.on("problem", () => undefined);
    device.start();
    try {
      await waitFor(() => device.stats.heartbeatsAcknowledged >= 3, 10_000);
      const [first, second, third] = server.attempts as [number, number, number];
      expect(second - first).toBeGreaterThanOrEqual(1000);
      expect(third - second).toBeGreaterThanOrEqual(1000);
      expect(device.stats.heartbeatsFailed).toBe(2);
    } finally {
      await device.stop();
      await server.close();
    }
  });

  it("backs off further with each auth error in a row instead of retrying at its interval", async () => {
    const server = await startRefusingServer(() => refusal(401, "unauthorized"));
    const device = new SimulatedDevice(server.url, registration, { intervalMs: 100, random: () => 0 });
    device.on("problem", () => undefined);
    device.start();
    try {
      await waitFor(() => server.attempts.length >= 5, 10_000);
      const gaps = server.attempts.slice(1).map((at, index) => at - server.attempts[index]!);
      // Without backoff these would be 100 ms each; with it 50, 100, 200, 400 ms at least.
      expect(gaps[2]).toBeGreaterThanOrEqual(200);
      expect(gaps[3]).toBeGreaterThanOrEqual(400);
      expect(device.stats.heartbeatsAcknowledged).toBe(0);
    } finally {
      await device.stop();
      await server.close();
    }
  });
});
