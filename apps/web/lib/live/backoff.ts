const FIRST_DELAY_MS = 1_000;
const MAX_DELAY_MS = 30_000;

/** Delay before reconnect attempt `attempt` (0-based): exponential, capped, with jitter. */
export function reconnectDelayMs(attempt: number, random: () => number = Math.random): number {
  const ceiling = Math.min(MAX_DELAY_MS, FIRST_DELAY_MS * 2 ** attempt);
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}
