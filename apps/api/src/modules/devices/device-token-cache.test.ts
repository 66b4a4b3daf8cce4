import http from "node:http";
import type { AddressInfo } from "node:net";
import { SimulatedDevice } from "@mdm/simulator";
import request from "supertest";
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
} from "../../test";
import { createDb } from "../../db/client";
import { createLogger } from "../../lib/logger";
import { cachedTokenHash, pollTokenRevocations, pruneTokenRevocations, startTokenRevocationFeed, tokenCacheOf } from "./device-token-cache";

// Two instances on one database whose event buses do not reach each other (each test app
// has an in-process bus of its own): what the second hears of a revocation made through
// the first, it hears from its revocation feed.

let database: TestDatabase;
let first: TestApp;
let second: TestApp;

beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(() => database.close());
beforeEach(async () => {
  await resetTables(database.db);
  first = createTestApp(database.db);
  second = createTestApp(database.db);
});
afterEach(() => jest.restoreAllMocks());

const heartbeatWith = (t: TestApp, deviceToken: string) =>
  request(t.app).post("/v1/heartbeat").set("Authorization", `Bearer ${deviceToken}`).send(heartbeatBody());

/** What the lookup batch-size histogram counted: token lookup statements run. */
async function lookupStatements(t: TestApp): Promise<number> {
  const { values } = await t.deps.metrics.deviceTokenLookupBatchSize.get();
  return values.find((entry) => entry.metricName === "mdm_device_token_lookup_batch_size_count")?.value ?? 0;
}

async function waitFor(done: () => boolean): Promise<void> {
  for (let attempt = 0; !done(); attempt++) {
    if (attempt > 200) throw new Error("not reached within 10 s");
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const revocationRows = async (deviceId: string) => (await database.db.deviceTokenRevocation.findMany({ where: { deviceId } })).length;

describeWithPostgres("device token cache: the revocation feed", () => {
  it("drops a token retired through another instance at its next poll, with no bus event", async () => {
    const device = await enrollDevice(first.app);
    await pollTokenRevocations(second.deps);
    expect((await heartbeatWith(second, device.deviceToken)).status).toBe(200);
    expect(cachedTokenHash(tokenCacheOf(second.deps), device.deviceId)).toBeDefined();

    expect((await adminRequest(first.app, "POST", `/admin/devices/${device.deviceId}/retire`)).status).toBe(200);
    expect(await revocationRows(device.deviceId)).toBe(1);
    // The retirement's event went to the first instance's bus only.
    expect(cachedTokenHash(tokenCacheOf(second.deps), device.deviceId)).toBeDefined();
    expect(await pollTokenRevocations(second.deps)).toBe(1);
    expect(cachedTokenHash(tokenCacheOf(second.deps), device.deviceId)).toBeUndefined();
    expect((await heartbeatWith(second, device.deviceToken)).status).toBe(401);
  });

  it("refuses the old token on another instance once the device took its new one there and that instance's feed polled", async () => {
    const server = http.createServer(first.app);
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    try {
      const baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
      const device = await SimulatedDevice.enroll(baseUrl, await createEnrollmentToken(first.app, { maxUses: 1 }));
      const old = device.registration.deviceToken;
      await pollTokenRevocations(second.deps);
      expect((await heartbeatWith(second, old)).status).toBe(200);

      const rotated = await adminRequest(first.app, "POST", `/admin/devices/${device.deviceId}/rotate-token`);
      expect(rotated.status).toBe(202);
      // The rotation's start, then its completion: each wrote its revocation.
      await device.heartbeat();
      expect(device.registration.deviceToken).not.toBe(old);
      expect(await revocationRows(device.deviceId)).toBe(2);
      expect(cachedTokenHash(tokenCacheOf(second.deps), device.deviceId)).toBeDefined();

      await pollTokenRevocations(second.deps);
      expect((await heartbeatWith(second, old)).status).toBe(401);
      expect((await heartbeatWith(second, device.registration.deviceToken)).status).toBe(200);
      expect((await heartbeatWith(first, old)).status).toBe(401);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it("keeps a verified token past a heartbeat interval while its feed keeps polling, and looks it up again once the feed falls behind", async () => {
    const device = await enrollDevice(second.app);
    const start = Date.now();
    const at = (ms: number) => jest.spyOn(Date, "now").mockReturnValue(start + ms);
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
    at(5 * 60_000 + 20_000 + 15 * 60_000);
    await pollTokenRevocations(second.deps);
    expect((await heartbeatWith(second, device.deviceToken)).status).toBe(200);
    expect(await lookupStatements(second)).toBe(statements + 2);
  });

  it("trusts no entry cached before the feed first polled for longer than a minute", async () => {
    const device = await enrollDevice(second.app);
    const start = Date.now();
    jest.spyOn(Date, "now").mockReturnValue(start);
    expect((await heartbeatWith(second, device.deviceToken)).status).toBe(200);
    const cache = tokenCacheOf(second.deps);
    expect(cachedTokenHash(cache, device.deviceId, start + 59_000)).toBeDefined();
    jest.spyOn(Date, "now").mockReturnValue(start + 2 * 60_000);
    await pollTokenRevocations(second.deps);
    expect(cachedTokenHash(cache, device.deviceId)).toBeUndefined();
  });

  it("polls from the moment the instance starts it, and warns when it cannot read", async () => {
    const stop = startTokenRevocationFeed(second.deps);
    try {
      await waitFor(() => tokenCacheOf(second.deps).feed.lastPolledAt !== undefined);
    } finally {
      stop();
    }

    // An instance whose database is unreachable (nothing listens on port 1).
    const logger = createLogger("error", { silent: true });
    const warn = jest.spyOn(logger, "warn");
    const unreachable = { db: createDb("postgresql://postgres@127.0.0.1:1/none"), logger };
    const stopUnreachable = startTokenRevocationFeed(unreachable);
    try {
      await waitFor(() => tokenCacheOf(unreachable).feed.failing);
      expect(warn).toHaveBeenCalledTimes(1);
      expect(warn.mock.calls[0]![0]).toMatch(/token revocation feed cannot read/);
      expect(tokenCacheOf(unreachable).feed.lastPolledAt).toBeUndefined();
    } finally {
      stopUnreachable();
      await unreachable.db.$disconnect();
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
