import { useEffect, useState } from "react";

/**
 * The current time, for relative labels ("3 minutes ago"): it ticks every `intervalMs`, and
 * a render caused by new data (a live frame) reads the clock afresh, so a timestamp that
 * just arrived is never ahead of the `now` it is shown against.
 */
export function useNow(intervalMs = 5_000): number {
  const [tick, setTick] = useState(() => Date.now());
  useEffect(() => {
    const timer = setInterval(() => setTick(Date.now()), intervalMs);
    return () => clearInterval(timer);
  }, [intervalMs]);
  return Math.max(tick, Date.now());
}
