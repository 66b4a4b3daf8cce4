/**
 * Group commit: items submitted within a few milliseconds of each other are written by one
 * statement, so a burst of N costs one database round trip instead of N. Each submitter is
 * answered once the statement that carries its item has completed, with its own outcome.
 */
export type GroupCommit<T, R> = {
  /**
   * Queues `item` for the next batch and resolves with its outcome. Items of one `key` are
   * written in the order submitted, never two in one batch (the next waits for the one
   * before); an item without a key (a read) is ordered against none. Throws
   * `options.full()` at once when `maxQueued` items are already waiting.
   */
  submit: (key: string | undefined, item: T) => Promise<R>;
  /** Writes every queued item now, without waiting out `maxWaitMs`, and resolves once all are answered (shutdown). */
  drain: () => Promise<void>;
  /** Items submitted and not answered yet. */
  readonly queued: number;
};

export type GroupCommitOptions<T, R> = {
  /** Items per statement at most. 1 turns batching off: each item is written alone, at once. */
  maxBatch: number;
  /** How long the first item of a batch waits for company. 0 turns batching off. */
  maxWaitMs: number;
  /** Items submitted and not answered yet, at most (the bound of the queue); past it `full()` is thrown. */
  maxQueued: number;
  /** Statements running at once, at most: the rest of the queue waits for one to finish. */
  maxRunning: number;
  /**
   * Writes a batch in one statement: one outcome per item, in order (an Error refuses that
   * item alone; a promise answers that item when it settles, so a batch retried item by item
   * answers each as soon as its own write is done). A rejection fails every item of the batch.
   */
  run: (items: T[]) => Promise<Array<R | Error | Promise<R | Error>>>;
  full: () => Error;
};

type Entry<T, R> = { item: T; resolve: (value: R) => void; reject: (error: unknown) => void };

export function createGroupCommit<T, R>(options: GroupCommitOptions<T, R>): GroupCommit<T, R> {
  const { maxBatch, maxWaitMs, maxQueued, maxRunning, run } = options;
  const batching = maxBatch > 1 && maxWaitMs > 0;
  const pending: Array<Entry<T, R>> = [];
  let timer: NodeJS.Timeout | undefined;
  // The oldest pending item has waited maxWaitMs (or the queue is draining): send without waiting for a full batch.
  let due = false;
  let draining = false;
  let running = 0;
  let queued = 0;
  // The last item submitted per key that is not answered yet, so the next one of that key
  // waits for it: two updates of one row in one statement would apply only one of them.
  const tails = new Map<string, Promise<unknown>>();
  let idle: Array<() => void> = [];

  const runOne = async (item: T): Promise<R> => {
    const outcome = await (await run([item]))[0];
    if (outcome instanceof Error) throw outcome;
    return outcome as R;
  };

  function pump(): void {
    while (running < maxRunning && pending.length > 0 && (due || draining || pending.length >= maxBatch)) {
      const batch = pending.splice(0, maxBatch);
      if (pending.length === 0) {
        due = false;
        clearTimeout(timer);
        timer = undefined;
      }
      running++;
      void send(batch);
    }
    if (pending.length > 0 && !due && !timer) {
      timer = setTimeout(() => {
        timer = undefined;
        due = true;
        pump();
      }, maxWaitMs);
    }
  }

  async function send(batch: Array<Entry<T, R>>): Promise<void> {
    try {
      const outcomes = await run(batch.map((entry) => entry.item));
      batch.forEach((entry, index) => {
        Promise.resolve(outcomes[index]).then((outcome) => {
          if (outcome instanceof Error) entry.reject(outcome);
          else entry.resolve(outcome as R);
        }, entry.reject);
      });
    } catch (error) {
      for (const entry of batch) entry.reject(error);
    } finally {
      running--;
      pump();
    }
  }

  const enqueue = (item: T) =>
    new Promise<R>((resolve, reject) => {
      pending.push({ item, resolve, reject });
      pump();
    });

  function settled(): void {
    queued--;
    if (queued === 0) {
      for (const resolve of idle) resolve();
      idle = [];
    }
  }

  return {
    get queued() {
      return queued;
    },
    submit: (key, item) => {
      if (!batching) return runOne(item);
      if (queued >= maxQueued) return Promise.reject(options.full());
      queued++;
      if (key === undefined) {
        const outcome = enqueue(item);
        void outcome.then(settled, settled);
        return outcome;
      }
      const before = tails.get(key);
      const outcome = before ? before.then(() => enqueue(item)) : enqueue(item);
      const tail = outcome.then(
        () => undefined,
        () => undefined,
      );
      tails.set(key, tail);
      void tail.then(() => {
        if (tails.get(key) === tail) tails.delete(key);
        settled();
      });
      return outcome;
    },
    drain: () => {
      draining = true;
      pump();
      return queued === 0 ? Promise.resolve() : new Promise<void>((resolve) => idle.push(resolve));
    },
  };
}

/**
 * Writes the items of a batch that failed one per statement, at most `concurrency` at once,
 * each answered as soon as its own write is done (its outcome or its Error): what a batch's
 * `run` returns to isolate the one item at fault. All at once, a batch of 1,000 queued
 * 1,000 queries on the pool, and past ADMISSION_MAX_DATABASE_QUEUE every request was shed.
 */
export function writeEachAlone<T, R>(items: T[], concurrency: number, write: (item: T) => Promise<R>): Array<Promise<R | Error>> {
  const resolvers: Array<(answer: R | Error) => void> = [];
  const answers = items.map(() => new Promise<R | Error>((resolve) => resolvers.push(resolve)));
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const index = next++;
      resolvers[index]!(await write(items[index]!).catch((failure: unknown) => (failure instanceof Error ? failure : new Error(String(failure)))));
    }
  };
  for (let i = 0; i < Math.min(concurrency, items.length); i++) void worker();
  return answers;
}
