import { HeartbeatRequest } from "@mdm/contracts";
import { type DeviceState, KIOSK_APP, MEMORY_FREE_RANGE, SIGNAL_RANGE, STORAGE_MIN_FREE, drift, initialState, seededRandom, toHeartbeat } from "./telemetry";

function run(seed: number, steps: number, seconds: number): DeviceState[] {
  const random = seededRandom(seed);
  let state = initialState(random, Date.UTC(2026, 0, 1));
  const states = [state];
  for (let i = 0; i < steps; i++) {
    state = drift(state, seconds, random);
    states.push(state);
  }
  return states;
}

describe("telemetry drift", () => {
  it("keeps every reading within its physical range over days of heartbeats", () => {
    const outOfRange: string[] = [];
    for (const seed of [1, 2, 3, 42, 1234]) {
      for (const [step, state] of run(seed, 5000, 60).entries()) {
        const [low, high] = SIGNAL_RANGE[state.network.type as "wifi" | "cellular"];
        const checks = {
          battery: state.battery.level >= 0 && state.battery.level <= 100,
          memory:
            state.memory.available >= Math.floor(state.memory.total * MEMORY_FREE_RANGE[0]) &&
            state.memory.available <= Math.ceil(state.memory.total * MEMORY_FREE_RANGE[1]),
          storage: state.storage.available >= Math.floor(state.storage.total * STORAGE_MIN_FREE) && state.storage.available <= state.storage.total,
          signal: state.network.signal >= low && state.network.signal <= high,
        };
        for (const [name, ok] of Object.entries(checks)) if (!ok) outOfRange.push(`seed ${seed} step ${step}: ${name}`);
      }
    }
    expect(outOfRange).toEqual([]);
  });

  it("drains the battery slowly and flips to charging, so the level goes both ways", () => {
    const states = run(7, 2000, 60);
    const steps = states.slice(1).map((state, i) => state.battery.level - states[i]!.battery.level);
    // A minute of discharge costs at most ~1.2 %: slow, never a cliff.
    expect(Math.min(...steps)).toBeGreaterThanOrEqual(-1.3);
    expect(steps.some((step) => step < 0)).toBe(true);
    expect(steps.some((step) => step > 0)).toBe(true);
    const flips = states.slice(1).filter((state, i) => state.battery.charging !== states[i]!.battery.charging).length;
    expect(flips).toBeGreaterThanOrEqual(2);
  });

  it("starts charging soon after the battery runs low", () => {
    const random = seededRandom(3);
    let state: DeviceState = { ...initialState(random, 0), battery: { level: 21, charging: false, drainPerSecond: 0.02 } };
    for (let minute = 0; minute < 60 && !state.battery.charging; minute++) state = drift(state, 60, random);
    expect(state.battery.charging).toBe(true);
    expect(state.battery.level).toBeGreaterThan(0);
  });

  it("is repeatable for a seed", () => {
    expect(run(99, 50, 5)).toEqual(run(99, 50, 5));
  });

  it("builds heartbeats the contract accepts, with the kiosk app and an uptime since boot", () => {
    const now = Date.UTC(2026, 0, 1, 12);
    const random = seededRandom(5);
    const state = { ...initialState(random, now), bootedAt: now - 3_600_500 };
    const heartbeat = HeartbeatRequest.parse(toHeartbeat(state, now, { appVersion: "sim" }));
    expect(heartbeat.uptimeSeconds).toBe(3600);
    expect(Number.isInteger(heartbeat.battery!.level)).toBe(true);
    expect(heartbeat.apps).toEqual([expect.objectContaining({ packageName: KIOSK_APP, running: true })]);
    expect(heartbeat.deviceTime).toBe(new Date(now).toISOString());
  });
});
