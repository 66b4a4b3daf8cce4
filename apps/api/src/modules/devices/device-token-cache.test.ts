import http from "node:http";
import type { AddressInfo } from "node:net";
import { performance } from "node:perf_hooks";
import { DEVICE_WS_PROTOCOL, WsCloseCode } from "@mdm/contracts";
import { SimulatedDevice } from "@mdm/simulator";
import { Client } from "pg";
import request from "supertest";
import WebSocket from "ws";
import { createDb } from "../../db/client";
import { createLogger } from "../../lib/logger";
import { dashboardAuthenticator } from "../auth/session";
import { type Realtime, attachRealtime } from "../../realtime/attach";
import {
  type TestApp,
  type TestDatabase,
  adminRequest,
  createEnrollmentToken,
  createTestApp,
  createTestDatabase,
  describeWithPostgres,
  enrollDevice,
  heartbeatBody,
  resetTables,
  settledWithin,
} from "../../test";
import { LocalEventBus } from "../../realtime/event-bus";
import { cachedTokenHash, pollTokenRevocations, pruneTokenRevocations, startTokenRevocationFeed, tokenCacheOf } from "./device-token-cache";

// Two instances on one database whose event buses do not reach each other (each test app
// has an in-process bus of its own): what the second hears of a revocation made through
// the first, it hears from its revocation feed.

let database: TestDatabase;
let first: TestApp;
let second: TestApp;
const servers: Array<{ server: http.Server; realtime: Realtime }> = [];

beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(() => database.close());
beforeEach(async () => {
  await resetTables(database.db);
  first = createTestApp(database.db);
  second = createTestApp(database.db);
});
afterEach(async () => {
  jest.restoreAllMocks();
  for (const { server, realtime } of servers.splice(0)) {
    await realtime.close();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
});

/** Serves an app (with its device sockets) on a free port; closed after the test. */
async function serve(t: TestApp): Promise<string> {
  const server = http.createServer(t.app);
  servers.push({ server, realtime: attachRealtime(server, t.deps, dashboardAuthenticator(t.deps)) });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const heartbeatWith = (t: TestApp, deviceToken: string) =>
  request(t.app).post("/v1/heartbeat").set("Authorization", `Bearer ${deviceToken}`).send(heartbeatBody());

/** What the lookup batch-size histogram counted: token lookup statements run. */
async function lookupStatements(t: TestApp): Promise<number> {
  const { values } = await t.deps.metrics.deviceTokenLookupBatchSize.get();
  return values.find((entry) => entry.metricName === "mdm_device_token_lookup_batch_size_count")?.value ?? 0;
}

async function waitFor(done: () => boolean | Promise<boolean>): Promise<void> {
  for (let attempt = 0; !(await done()); attempt++) {
    if (attempt > 200) throw new Error("not reached within 10 s");
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * The other connections to this database waiting for a lock: client backends only (an
 * autovacuum may wait too), by state rather than by their query's text, which a statement
 * blocked while being parsed does not show yet.
 */
async function lockWaiters(locker: Client): Promise<number> {
  const { rows } = await locker.query(
    `SELECT count(*)::int AS waiting FROM pg_stat_activity
     WHERE datname = current_database() AND backend_type = 'client backend' AND wait_event_type = 'Lock' AND pid <> pg_backend_pid()`,
  );
  return rows[0].waiting;
}

const revocationRows = async (deviceId: string) => (await database.db.deviceTokenRevocation.findMany({ where: { deviceId } })).length;

/** A device enrolled through the first instance, whose token the second has verified and cached. */
async function deviceCachedBySecond(firstUrl: string): Promise<SimulatedDevice> {
  const device = await SimulatedDevice.enroll(firstUrl, await createEnrollmentToken(first.app, { maxUses: 1 }));
  await pollTokenRevocations(second.deps);
  expect((await heartbeatWith(second, device.registration.deviceToken)).status).toBe(200);
  expect(cachedTokenHash(tokenCacheOf(second.deps), device.deviceId)).toBeDefined();
  return device;
}

/** The admin re-keys the device through the first instance, and the device takes its new token there. */
async function rotateThroughFirst(device: SimulatedDevice): Promise<void> {
  const old = device.registration.deviceToken;
  expect((await adminRequest(first.app, "POST", `/admin/devices/${device.deviceId}/rotate-token`)).status).toBe(202);
  await device.heartbeat();
  expect(device.registration.deviceToken).not.toBe(old);
  // The rotation's start, then its completion: each wrote its revocation.
  expect(await revocationRows(device.deviceId)).toBe(2);
}

describeWithPostgres("device token cache: the revocation feed", () => {
  it("drops a token retired through another instance at its next poll, with no bus event, and hands each revocation on once", async () => {
    const device = await enrollDevice(first.app);
    await pollTokenRevocations(second.deps);
    expect((await heartbeatWith(second, device.deviceToken)).status).toBe(200);
    const heard: string[] = [];
    second.deps.bus.subscribe((event) => {
      if (event.kind === "device_token_revoked") heard.push(`${event.deviceId} ${event.reason}`);
    });

    // An older transaction still running (the oldest the database has) does not make a
    // poll read the retirement's row again.
    const older = new Client({ connectionString: database.url });
    await older.connect();
    try {
      await older.query("BEGIN");
      await older.query("SELECT pg_current_xact_id()");
      expect((await adminRequest(first.app, "POST", `/admin/devices/${device.deviceId}/retire`)).status).toBe(200);
      expect(await revocationRows(device.deviceId)).toBe(1);
      // The retirement's event went to the first instance's bus only.
      expect(cachedTokenHash(tokenCacheOf(second.deps), device.deviceId)).toBeDefined();
      expect(await pollTokenRevocations(second.deps)).toBe(1);
      expect(heard).toEqual([`${device.deviceId} retired`]);
      expect(cachedTokenHash(tokenCacheOf(second.deps), device.deviceId)).toBeUndefined();
      expect(await pollTokenRevocations(second.deps)).toBe(0);
      await older.query("COMMIT");
    } finally {
      await older.end();
    }
    expect(await pollTokenRevocations(second.deps)).toBe(0);
    expect(heard).toHaveLength(1);
  });

  it("closes a socket opened with the old token on another instance, and refuses that token there, once its feed reads the completed rotation", async () => {
    const device = await deviceCachedBySecond(await serve(first));
    const old = device.registration.deviceToken;
    // Whoever holds the old token holds a socket on the second instance.
    const secondUrl = await serve(second);
    const intruder = new WebSocket(`${secondUrl.replace("http", "ws")}/ws/devices`, [DEVICE_WS_PROTOCOL], { headers: { Authorization: `Bearer ${old}` } });
    const closed = new Promise<number>((resolve) => intruder.once("close", (code) => resolve(code)));
    await new Promise((resolve, reject) => intruder.once("open", resolve).once("error", reject));

    await rotateThroughFirst(device);
    expect(cachedTokenHash(tokenCacheOf(second.deps), device.deviceId)).toBeDefined();
    expect(await pollTokenRevocations(second.deps)).toBe(2);
    const outcome = await settledWithin(closed, 5000, "still open");
    intruder.terminate();
    expect(outcome).toBe(WsCloseCode.unauthorized);
    expect((await heartbeatWith(second, old)).status).toBe(401);
    expect((await heartbeatWith(second, device.registration.deviceToken)).status).toBe(200);
    expect((await heartbeatWith(first, old)).status).toBe(401);
  });

  it("takes a device's new token at once on an instance that still has its old one cached", async () => {
    const device = await deviceCachedBySecond(await serve(first));
    await rotateThroughFirst(device);
    // No poll since: the cached hash does not match the new token, which is then looked up.
    expect((await heartbeatWith(second, device.registration.deviceToken)).status).toBe(200);
  });

  it("reads a revocation whose transaction commits long after it wrote the row, and after later rows were read", async () => {
    const [device, other] = [await enrollDevice(first.app), await enrollDevice(first.app)];
    await pollTokenRevocations(second.deps);
    for (const { deviceToken } of [device, other]) expect((await heartbeatWith(second, deviceToken)).status).toBe(200);
    const slow = new Client({ connectionString: database.url });
    await slow.connect();
    try {
      await slow.query("BEGIN");
      // Written (by its clock) ten minutes before it commits, with the lower row id.
      await slow.query(`INSERT INTO "DeviceTokenRevocation" ("deviceId", reason, "revokedAt") VALUES ($1, 'retired', now() - interval '10 minutes')`, [
        device.deviceId,
      ]);
      expect((await adminRequest(first.app, "POST", `/admin/devices/${other.deviceId}/retire`)).status).toBe(200);
      expect(await pollTokenRevocations(second.deps)).toBe(1);
      expect(cachedTokenHash(tokenCacheOf(second.deps), other.deviceId)).toBeUndefined();
      expect(cachedTokenHash(tokenCacheOf(second.deps), device.deviceId)).toBeDefined();
      await slow.query("COMMIT");
    } finally {
      await slow.end();
    }
    expect(await pollTokenRevocations(second.deps)).toBe(1);
    expect(cachedTokenHash(tokenCacheOf(second.deps), device.deviceId)).toBeUndefined();
  });

  it("caches nothing a lookup read while the feed took its first snapshot", async () => {
    const device = await enrollDevice(second.app);
    // The lookup's read waits behind a lock on the devices while the first poll runs.
    const locker = new Client({ connectionString: database.url });
    await locker.connect();
    try {
      await locker.query("BEGIN");
      await locker.query(`LOCK TABLE "Device" IN ACCESS EXCLUSIVE MODE`);
      const beat = heartbeatWith(second, device.deviceToken).then((res) => res);
      await waitFor(async () => (await lockWaiters(locker)) === 1);
      await pollTokenRevocations(second.deps);
      await locker.query("COMMIT");
      expect((await beat).status).toBe(200);
    } finally {
      await locker.end();
    }
    expect(tokenCacheOf(second.deps).entries.has(device.deviceId)).toBe(false);
  });

  it("drops every cached token when transaction ids went back (a standby promoted, a backup restored)", async () => {
    const device = await enrollDevice(second.app);
    await pollTokenRevocations(second.deps);
    expect((await heartbeatWith(second, device.deviceToken)).status).toBe(200);
    const cache = tokenCacheOf(second.deps);
    expect(cache.entries.size).toBe(1);
    cache.feed.unseen = { from: "999999999999", running: [] };
    await pollTokenRevocations(second.deps);
    expect(cache.entries.size).toBe(0);
  });

  it("keeps a verified token past a heartbeat interval while its feed keeps up, and looks it up again once the feed falls behind", async () => {
    const device = await enrollDevice(second.app);
    const start = performance.now();
    const at = (ms: number) => jest.spyOn(performance, "now").mockReturnValue(start + ms);
    at(0);
    await pollTokenRevocations(second.deps);
    at(1);
    expect((await heartbeatWith(second, device.deviceToken)).status).toBe(200);
    const statements = await lookupStatements(second);
    expect(statements).toBeGreaterThan(0);

    // Five minutes on, the feed polled a moment ago: no lookup.
    at(5 * 60_000);
    await pollTokenRevocations(second.deps);
    expect((await heartbeatWith(second, device.deviceToken)).status).toBe(200);
    expect(await lookupStatements(second)).toBe(statements);

    // The feed has not polled for 20 s (the database unreachable, say): looked up again.
    at(5 * 60_000 + 20_000);
    expect((await heartbeatWith(second, device.deviceToken)).status).toBe(200);
    expect(await lookupStatements(second)).toBe(statements + 1);

    // Past 15 minutes an entry is looked up again, however current the feed.
    at(5 * 60_000 + 20_000 + 15 * 60_000 + 1000);
    await pollTokenRevocations(second.deps);
    expect((await heartbeatWith(second, device.deviceToken)).status).toBe(200);
    expect(await lookupStatements(second)).toBe(statements + 2);
  });

  it("trusts no entry cached before the feed first polled for longer than a minute", async () => {
    const device = await enrollDevice(second.app);
    const start = performance.now();
    jest.spyOn(performance, "now").mockReturnValue(start);
    expect((await heartbeatWith(second, device.deviceToken)).status).toBe(200);
    const cache = tokenCacheOf(second.deps);
    expect(cachedTokenHash(cache, device.deviceId, start + 59_000)).toBeDefined();
    jest.spyOn(performance, "now").mockReturnValue(start + 2 * 60_000);
    await pollTokenRevocations(second.deps);
    expect(cachedTokenHash(cache, device.deviceId)).toBeUndefined();
  });

  it("caches no token that failed to match: guesses do not fill the cache", async () => {
    const device = await enrollDevice(second.app);
    const [id, secret] = device.deviceToken.split(".") as [string, string];
    const wrong = `${secret.slice(0, -1)}${secret.endsWith("A") ? "B" : "A"}`;
    expect((await heartbeatWith(second, `${id}.${wrong}`)).status).toBe(401);
    expect(cachedTokenHash(tokenCacheOf(second.deps), device.deviceId)).toBeUndefined();
  });

  it("polls from the moment the instance starts it, and warns once while it cannot read", async () => {
    const stop = startTokenRevocationFeed(second.deps);
    try {
      await waitFor(() => tokenCacheOf(second.deps).feed.lastPolledAt !== undefined);
    } finally {
      stop();
    }

    // An instance whose database is unreachable (nothing listens on port 1), polling every 20 ms.
    const logger = createLogger("error", { silent: true });
    const warn = jest.spyOn(logger, "warn");
    const unreachable = { db: createDb("postgresql://postgres@127.0.0.1:1/none"), bus: new LocalEventBus(), logger };
    const stopUnreachable = startTokenRevocationFeed(unreachable, { everyMs: 20 });
    try {
      await waitFor(() => tokenCacheOf(unreachable).feed.failing);
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(warn).toHaveBeenCalledTimes(1);
      expect(warn.mock.calls[0]![0]).toMatch(/token revocation feed cannot read/);
      expect(tokenCacheOf(unreachable).feed.lastPolledAt).toBeUndefined();
    } finally {
      stopUnreachable();
      await unreachable.db.$disconnect();
    }
  });

  it("runs one poll at a time: one that does not answer is reported and waited for", async () => {
    const logger = createLogger("error", { silent: true });
    const warn = jest.spyOn(logger, "warn");
    const deps = { ...second.deps, logger };
    const locker = new Client({ connectionString: database.url });
    await locker.connect();
    try {
      await locker.query("BEGIN");
      await locker.query(`LOCK TABLE "DeviceTokenRevocation" IN ACCESS EXCLUSIVE MODE`);
      const stop = startTokenRevocationFeed(deps, { everyMs: 20, timeoutMs: 200 });
      try {
        await waitFor(() => tokenCacheOf(deps).feed.failing);
        expect(warn.mock.calls[0]![0]).toMatch(/token revocation feed cannot read/);
        await new Promise((resolve) => setTimeout(resolve, 300));
        expect(await lockWaiters(locker)).toBe(1);
        await locker.query("COMMIT");
        await waitFor(() => !tokenCacheOf(deps).feed.failing);
        expect(tokenCacheOf(deps).feed.lastPolledAt).toBeDefined();
        expect(warn).toHaveBeenCalledTimes(1);
      } finally {
        stop();
      }
    } finally {
      await locker.end();
    }
  });

  it("housekeeping deletes revocations a day old", async () => {
    const device = await enrollDevice(first.app);
    expect((await adminRequest(first.app, "POST", `/admin/devices/${device.deviceId}/retire`)).status).toBe(200);
    expect(await pruneTokenRevocations(first.deps)).toBe(0);
    first.clock.advance(24 * 3600 + 60);
    expect(await pruneTokenRevocations(first.deps)).toBe(1);
    expect(await revocationRows(device.deviceId)).toBe(0);
  });
});
