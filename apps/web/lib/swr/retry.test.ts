import { ApiError } from "@/lib/api";
import { retryDelayMs } from "./retry";

const refused = (status: number, retryAfterSeconds?: number) =>
  new ApiError(status, status === 429 ? "rate_limited" : "forbidden", "refused", [], "test", retryAfterSeconds);
const noJitter = () => 0;
const fullJitter = () => 0.999;

test("a read refused for its rate waits what Retry-After asks, up to a second more, and at most a minute", () => {
  expect(retryDelayMs(refused(429, 7), 1, noJitter)).toBe(7_000);
  expect(retryDelayMs(refused(429, 7), 1, fullJitter)).toBe(7_999);
  expect(retryDelayMs(refused(429), 1, noJitter)).toBe(1_000);
  expect(retryDelayMs(refused(429, 3_600), 1, noJitter)).toBe(60_000);
});

test("any other refusal is not tried again", () => {
  for (const status of [400, 401, 403, 404, 409]) expect(retryDelayMs(refused(status), 1, noJitter)).toBeUndefined();
});

test("a server or network failure waits longer each time, at least its Retry-After, up to a minute", () => {
  const unavailable = new ApiError(503, "service_unavailable", "down");
  const network = new ApiError(0, "network_error", "offline");
  expect([1, 2, 3, 4].map((count) => retryDelayMs(unavailable, count, noJitter))).toEqual([5_000, 10_000, 20_000, 40_000]);
  expect(retryDelayMs(network, 1, noJitter)).toBe(5_000);
  expect(retryDelayMs(network, 5, fullJitter)).toBe(60_000);
  // As long as it fails: SWR's own backoff has no end either.
  expect(retryDelayMs(network, 50, noJitter)).toBe(60_000);
  const shedding = new ApiError(503, "service_unavailable", "overloaded", [], "test", 30);
  expect(retryDelayMs(shedding, 1, noJitter)).toBe(30_000);
  expect(retryDelayMs(shedding, 3, noJitter)).toBe(30_000);
  expect(retryDelayMs(shedding, 4, noJitter)).toBe(40_000);
});
