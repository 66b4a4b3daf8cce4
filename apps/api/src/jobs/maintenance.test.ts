import { type TestApp, type TestDatabase, adminRequest, createTestApp, createTestDatabase, enrollDevice, resetTables } from "../test";
import { expireCommands, pruneAccounts, pruneNonces, pruneTelemetry } from "./maintenance";

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

it("removes telemetry older than the retention window, in batches, and keeps the rest", async () => {
  const device = await enrollDevice(t.app);
  const now = Date.now();
  const rows = (count: number, ageHours: number) =>
    Array.from({ length: count }, (_, i) => ({ deviceId: device.deviceId, receivedAt: new Date(now - ageHours * 3600_000 - i * 1000), batteryLevel: 50 }));
  // More old rows than one delete batch, so the loop must run more than once.
  await database.db.telemetryEvent.createMany({ data: [...rows(12_000, 49), ...rows(300, 47)] });
  expect(await pruneTelemetry(t.deps, 48)).toBe(12_000);
  expect(await database.db.telemetryEvent.count()).toBe(300);
  expect(await pruneTelemetry(t.deps, 48)).toBe(0);
});

it("expires commands whose TTL elapsed before delivery, with an event, and leaves the others", async () => {
  const device = await enrollDevice(t.app);
  const short = await adminRequest(t.app, "POST", "/admin/command", { deviceId: device.deviceId, type: "ping", ttlSeconds: 10 });
  const long = await adminRequest(t.app, "POST", "/admin/command", { deviceId: device.deviceId, type: "ping", ttlSeconds: 3600 });
  t.clock.advance(11);
  expect(await expireCommands(t.deps)).toBe(1);
  const expired = await adminRequest(t.app, "GET", `/admin/commands/${short.body.requestId}`);
  expect(expired.body.status).toBe("expired");
  expect(expired.body.events.map((event: { status: string }) => event.status)).toEqual(["queued", "expired"]);
  expect((await adminRequest(t.app, "GET", `/admin/commands/${long.body.requestId}`)).body.status).toBe("queued");
});

it("forgets admin nonces once they can no longer be replayed", async () => {
  await adminRequest(t.app, "GET", "/admin/devices");
  expect(await database.db.usedNonce.count()).toBe(1);
  expect(await pruneNonces(t.deps)).toBe(0);
  t.clock.advance(601);
  expect(await pruneNonces(t.deps)).toBe(1);
});

it("forgets long-ended sessions and expired password tokens, and keeps live ones", async () => {
  const { randomUUID } = await import("node:crypto");
  const user = await database.db.user.create({ data: { id: randomUUID(), email: "a@example.com", passwordHash: "x" } });
  const now = Date.now();
  const session = (expiresInDays: number, revokedDaysAgo?: number) => ({
    id: randomUUID(),
    userId: user.id,
    refreshHash: "a".repeat(64),
    expiresAt: new Date(now + expiresInDays * 86_400_000),
    revokedAt: revokedDaysAgo === undefined ? null : new Date(now - revokedDaysAgo * 86_400_000),
  });
  const live = session(7);
  await database.db.session.createMany({ data: [live, session(-31), session(7, 31), session(7, 1)] });
  const token = (expiresInMinutes: number) => ({ id: randomUUID(), userId: user.id, tokenHash: "b".repeat(64), expiresAt: new Date(now + expiresInMinutes * 60_000) });
  const valid = token(30);
  await database.db.passwordResetToken.createMany({ data: [valid, token(-1)] });

  expect(await pruneAccounts(t.deps)).toEqual({ sessions: 2, passwordTokens: 1 });
  expect((await database.db.session.findMany()).map((row) => row.id)).toContain(live.id);
  expect(await database.db.session.count()).toBe(2);
  expect((await database.db.passwordResetToken.findMany()).map((row) => row.id)).toEqual([valid.id]);
});
