import { type TestApp, type TestDatabase, adminRequest, createTestApp, createTestDatabase, enrollDevice, resetTables, settledWithin } from "../../test";
import { transition } from "./command-transitions";

let database: TestDatabase;
let t: TestApp;

beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(() => database.close());
beforeEach(async () => {
  await resetTables(database.db);
  t = createTestApp(database.db);
});

/** The group commit's own count: transactions written, and the moves they carried. */
async function transitionBatches(): Promise<{ transactions: number; moves: number }> {
  const { values } = await t.deps.metrics.commandTransitionBatchSize.get();
  const value = (name: string) => values.find((entry) => entry.metricName === name)?.value ?? 0;
  return { transactions: value("mdm_command_transition_batch_size_count"), moves: value("mdm_command_transition_batch_size_sum") };
}

async function queuedBatch(devices: number): Promise<string[]> {
  for (let i = 0; i < devices; i++) await enrollDevice(t.app);
  const bulk = await adminRequest(t.app, "POST", "/admin/commands/bulk", { target: { all: true }, type: "ping" });
  expect(bulk.status).toBe(202);
  const commands = await database.db.command.findMany({ where: { batchId: bulk.body.batchId }, select: { requestId: true } });
  return commands.map((command) => command.requestId);
}

describe("command status moves (group commit)", () => {
  it("writes the moves made at one moment in shared transactions, each command with its history event", async () => {
    const requestIds = await queuedBatch(40);
    const before = await transitionBatches();
    const at = new Date();
    const moved = await Promise.all(requestIds.map((requestId) => transition(t.deps, requestId, ["queued"], "sent", at, "websocket", { sentAt: at })));
    expect(moved).toEqual(requestIds.map(() => true));
    const after = await transitionBatches();
    expect(after.moves - before.moves).toBe(40);
    // Forty moves, far fewer transactions (one each before the group commit).
    expect(after.transactions - before.transactions).toBeLessThanOrEqual(4);

    const commands = await database.db.command.findMany({ where: { requestId: { in: requestIds } }, include: { events: { orderBy: { id: "asc" } } } });
    for (const command of commands) {
      expect(command.status).toBe("sent");
      expect(command.sentAt).toEqual(at);
      expect(command.events.map((event) => [event.status, event.detail])).toEqual([
        ["queued", null],
        ["sent", "websocket"],
      ]);
    }
    // A move from a status the command has left moves nothing, and records nothing.
    expect(await transition(t.deps, requestIds[0]!, ["queued"], "sent", new Date(), "again")).toBe(false);
    expect(await database.db.commandEvent.count({ where: { requestId: requestIds[0]! } })).toBe(2);
  });

  it("applies the moves of one command in the order made, never two in one statement, setting only the columns each names", async () => {
    const [requestId] = await queuedBatch(1);
    const sentAt = new Date(Date.now() - 2000);
    const acknowledgedAt = new Date(Date.now() - 1000);
    const completedAt = new Date();
    // Made together, not awaited in between: the ack must not overtake the send, nor the result the ack.
    const moves = await Promise.all([
      transition(t.deps, requestId!, ["queued"], "sent", sentAt, "websocket", { sentAt }),
      transition(t.deps, requestId!, ["queued", "sent"], "acknowledged", acknowledgedAt, "websocket", { acknowledgedAt, nextAttemptAt: null }),
      transition(t.deps, requestId!, ["queued", "sent", "acknowledged"], "succeeded", completedAt, null, {
        completedAt,
        result: { latencyMs: 12 },
        errorMessage: null,
      }),
    ]);
    expect(moves).toEqual([true, true, true]);
    const command = await database.db.command.findUniqueOrThrow({ where: { requestId: requestId! }, include: { events: { orderBy: { id: "asc" } } } });
    expect(command).toMatchObject({
      status: "succeeded",
      sentAt,
      acknowledgedAt,
      completedAt,
      nextAttemptAt: null,
      result: { latencyMs: 12 },
      errorMessage: null,
    });
    expect(command.events.map((event) => [event.status, event.at])).toEqual([
      ["queued", command.createdAt],
      ["sent", sentAt],
      ["acknowledged", acknowledgedAt],
      ["succeeded", completedAt],
    ]);
    // The batch's last command finished: it is done, with batch.done queued for webhooks.
    expect((await database.db.commandBatch.findFirstOrThrow()).doneAt).toEqual(completedAt);
  });

  it("does not hold up other commands' moves behind a command another transaction has locked", async () => {
    const [locked, ...others] = await queuedBatch(3);
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    let lockTaken!: () => void;
    const taken = new Promise<void>((resolve) => (lockTaken = resolve));
    // An admin's batch cancel, say, holding one of the commands for a while.
    const holder = database.db.$transaction(
      async (tx) => {
        await tx.$queryRaw`SELECT 1 FROM "Command" WHERE "requestId" = ${locked!}::uuid FOR UPDATE`;
        lockTaken();
        await released;
      },
      { timeout: 30_000 },
    );
    await taken;
    const at = new Date();
    const lockedMove = transition(t.deps, locked!, ["queued"], "sent", at, "websocket", { sentAt: at });
    const otherMoves = Promise.all(others.map((requestId) => transition(t.deps, requestId, ["queued"], "sent", at, "websocket", { sentAt: at })));
    // The three share a batch; the others are written while the lock is still held.
    const outcome = await settledWithin(otherMoves, 8000, "still waiting");
    expect(outcome).toEqual([true, true]);
    release();
    await holder;
    expect(await lockedMove).toBe(true);
    const statuses = await database.db.command.findMany({ select: { status: true } });
    expect(statuses.map((command) => command.status)).toEqual(["sent", "sent", "sent"]);
  }, 60_000);
});
