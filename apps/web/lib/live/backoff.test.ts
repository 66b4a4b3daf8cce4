import { reconnectDelayMs } from "./backoff";

describe("reconnectDelayMs", () => {
  test("doubles from about a second and never exceeds thirty seconds", () => {
    const highest = () => 0.999999;
    expect(reconnectDelayMs(0, highest)).toBeLessThanOrEqual(1000);
    expect(reconnectDelayMs(1, highest)).toBeLessThanOrEqual(2000);
    expect(reconnectDelayMs(3, highest)).toBeLessThanOrEqual(8000);
    expect(reconnectDelayMs(20, highest)).toBeLessThanOrEqual(30_000);
  });

  test("spreads clients out: the delay varies between half and all of the ceiling", () => {
    expect(reconnectDelayMs(4, () => 0)).toBe(8000);
    expect(reconnectDelayMs(4, () => 0.999999)).toBe(16000);
  });
});
