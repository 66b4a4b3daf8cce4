import type { Logger } from "./logger";

export type PollingWorker = {
  /** Runs a round now (or one more after the round in hand); resolves when done. */
  runNow: () => Promise<void>;
  /** No more rounds; resolves once the round in hand is over. */
  stop: () => Promise<void>;
};

/**
 * A worker that works through rows others write: a round at start, on every `runNow()`
 * (a wake-up) and every `pollMs`. Never two rounds at once on this instance; a wake-up
 * during a round makes it go round once more, so nothing written meanwhile waits for the
 * poll. A failed round is logged and the next one tries again. `round` gets `stopping`
 * to end early when the instance shuts down.
 */
export function startPollingWorker(options: {
  name: string;
  pollMs: number;
  logger: Logger;
  round: (stopping: () => boolean) => Promise<unknown>;
}): PollingWorker {
  let running: Promise<void> | undefined;
  let again = false;
  let stopped = false;
  const stopping = () => stopped;
  const runNow = (): Promise<void> => {
    if (stopped) return Promise.resolve();
    if (running !== undefined) {
      again = true;
      return running;
    }
    running = (async () => {
      do {
        again = false;
        try {
          await options.round(stopping);
        } catch (error) {
          options.logger.error(`${options.name} failed`, { message: error instanceof Error ? error.message : String(error) });
        }
      } while (again && !stopped);
    })().finally(() => {
      running = undefined;
    });
    return running;
  };
  const timer = setInterval(() => void runNow(), options.pollMs);
  timer.unref();
  void runNow();
  return {
    runNow,
    stop: async () => {
      stopped = true;
      clearInterval(timer);
      await running;
    },
  };
}
