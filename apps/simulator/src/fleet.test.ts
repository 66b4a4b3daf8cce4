import net from "node:net";
import { FleetSetupError, forEachLimit, formatSummary, runFleet } from "./fleet";

const tick = () => new Promise((resolve) => setTimeout(resolve, 1));

describe("forEachLimit", () => {
  it("never runs more than `limit` tasks at once, and runs them all", async () => {
    let running = 0;
    let peak = 0;
    const done: number[] = [];
    await forEachLimit(
      Array.from({ length: 40 }, (_, i) => i),
      7,
      async (item) => {
        peak = Math.max(peak, ++running);
        await tick();
        running--;
        done.push(item);
      },
    );
    expect(peak).toBe(7);
    expect(done.sort((a, b) => a - b)).toEqual(Array.from({ length: 40 }, (_, i) => i));
  });

  it("stops taking items after a failure and rethrows it once the tasks in flight settle", async () => {
    let started = 0;
    let running = 0;
    const failure = forEachLimit(Array.from({ length: 100 }), 4, async (_item, index) => {
      started++;
      running++;
      await tick();
      running--;
      if (index === 5) throw new Error("boom");
    });
    await expect(failure).rejects.toThrow("boom");
    expect(running).toBe(0);
    expect(started).toBeLessThan(20);
  });

  it("stops taking items once aborted", async () => {
    const stop = new AbortController();
    let started = 0;
    await forEachLimit(
      Array.from({ length: 100 }),
      2,
      async () => {
        if (++started === 3) stop.abort();
        await tick();
      },
      stop.signal,
    );
    expect(started).toBeLessThanOrEqual(4);
  });
});

describe("formatSummary", () => {
  it("says in one line how the fleet is doing", () => {
    const line = formatSummary(
      12_400,
      {
        connected: 48,
        heartbeatsSent: 300,
        heartbeatsAcknowledged: 298,
        heartbeatsFailed: 2,
        commandsReceived: 5,
        commandsExecuted: 4,
        commandsFailed: 1,
        reconnects: 3,
        errors: 1,
      },
      50,
      2,
    );
    expect(line).toBe("[   12s] connected 48/50 | heartbeats 300 (2 failed) | commands 5 received, 4 executed, 1 failed | reconnects 3 | errors 3");
    expect(line).not.toContain("\n");
  });
});

describe("runFleet", () => {
  it("fails with a clear message when the API is unreachable", async () => {
    // A port that was free a moment ago: nothing listens there.
    const probe = net.createServer();
    await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
    const { port } = probe.address() as net.AddressInfo;
    await new Promise((resolve) => probe.close(resolve));

    const run = runFleet({
      baseUrl: `http://127.0.0.1:${port}`,
      devices: 1,
      intervalMs: 1000,
      durationMs: 1000,
      log: () => undefined,
      signal: new AbortController().signal,
    });
    await expect(run).rejects.toThrow(FleetSetupError);
    await expect(run).rejects.toThrow(`Cannot reach the API at http://127.0.0.1:${port} (ECONNREFUSED). Is the API running?`);
  });
});
