import http from "node:http";
import type { AddressInfo } from "node:net";
import { type CreateWebhookResponse, ListWebhookDeliveriesResponse, WebhookEvent, verifyWebhookSignature } from "@mdm/contracts";
import { Client } from "pg";
import request from "supertest";
import {
  type TestApp,
  type TestDatabase,
  adminRequest,
  createTestApp,
  createTestDatabase,
  describeWithPostgres,
  enrollDevice,
  heartbeatBody,
  resetTables,
  waitFor,
} from "../../test";
import { emitCommandStatusChanges, finishBatches } from "../commands/command-transitions";
import { sweepOffline } from "../fleet/fleet-monitor";
import { WEBHOOK_LOG_RETENTION_DAYS, processDueWebhooks, pruneWebhookDeliveries } from "./webhook-delivery";

type Received = { headers: http.IncomingHttpHeaders; body: string };

/** A webhook receiver on loopback: records every request; answers 500 while `failNext` > 0. */
class Receiver {
  readonly received: Received[] = [];
  failNext = 0;
  /** How long it takes to answer (a slow but working endpoint). */
  delayMs = 0;
  private readonly server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", async () => {
      this.received.push({ headers: req.headers, body: Buffer.concat(chunks).toString("utf8") });
      if (this.delayMs > 0) await new Promise((resolve) => setTimeout(resolve, this.delayMs));
      if (this.failNext > 0) {
        this.failNext--;
        res.writeHead(500).end("try again");
      } else {
        res.writeHead(200).end("ok");
      }
    });
  });
  async start(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/hooks`;
  }
  close = () => new Promise<void>((resolve) => this.server.close(() => resolve()));
  events = () => this.received.map((entry) => WebhookEvent.parse(JSON.parse(entry.body)));
}

const ALL_EVENTS = ["device.enrolled", "device.offline", "device.online", "device.retired", "command.status_changed", "batch.done", "alert.sent"];

let database: TestDatabase;
let t: TestApp;
let receiver: Receiver;
let url: string;
const bearer = { type: "bearer" } as const;
// Development: a receiver on loopback is allowed (and the test-only bcrypt cost is not).
const DEVELOPMENT = { NODE_ENV: "development", BCRYPT_COST: "10" };

beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(() => database.close());
beforeEach(async () => {
  await resetTables(database.db);
  t = createTestApp(database.db, { env: DEVELOPMENT });
  receiver = new Receiver();
  url = await receiver.start();
});
afterEach(() => receiver.close());

async function register(events = ALL_EVENTS, app = t): Promise<CreateWebhookResponse> {
  const res = await adminRequest(app.app, "POST", "/admin/webhooks", { url, events });
  expect(res.status).toBe(201);
  return res.body;
}

// A lock held by another connection: the embedded database serves every connection in one session.
describeWithPostgres("webhooks, with a sweep step holding the device's row", () => {
  it("sends device.online for a heartbeat that waited for the step marking its device offline", async () => {
    await register(["device.online"]);
    const device = await enrollDevice(t.app);
    await request(t.app).post("/v1/heartbeat").auth(device.deviceToken, bearer).send(heartbeatBody()).expect(200);
    // What a sweep step does: the device marked offline, its row held until the step commits.
    const step = new Client({ connectionString: database.url });
    await step.connect();
    try {
      await step.query("BEGIN");
      await step.query(`UPDATE "Device" SET online = false, "offlineSince" = now() WHERE id = $1`, [device.deviceId]);
      const heartbeat = request(t.app)
        .post("/v1/heartbeat")
        .auth(device.deviceToken, bearer)
        .send(heartbeatBody())
        .then((res) => res.status);
      // The heartbeat's statement starts, and waits for the row.
      await waitFor(
        () => waitingForLocks(database),
        (waiting) => waiting > 0,
        5000,
        "the heartbeat waiting for the row",
      );
      await step.query("COMMIT");
      expect(await heartbeat).toBe(200);
    } finally {
      await step.end();
    }
    const deliveries = await database.db.webhookDelivery.findMany({ where: { eventType: "device.online" } });
    expect(deliveries.map((delivery) => (delivery.payload as { data: { deviceId: string } }).data.deviceId)).toEqual([device.deviceId]);
    expect(await database.db.device.findUniqueOrThrow({ where: { id: device.deviceId } })).toMatchObject({ online: true, offlineSince: null });
  });
});

async function waitingForLocks(db: TestDatabase): Promise<number> {
  const [row] = await db.db.$queryRaw<Array<{ waiting: number }>>`
    SELECT count(*)::int AS waiting FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'`;
  return row!.waiting;
}

describe("webhooks", () => {
  it("delivers each event once, signed, for enrollment, command status, batch done, offline and online", async () => {
    const webhook = await register();
    expect(webhook.secret).toMatch(/^whsec_/);
    const listed = await adminRequest(t.app, "GET", "/admin/webhooks");
    expect(JSON.stringify(listed.body)).not.toContain(webhook.secret);

    const a = await enrollDevice(t.app, { model: "Pixel A" });
    const b = await enrollDevice(t.app, { model: "Pixel B" });

    const single = await adminRequest(t.app, "POST", "/admin/command", { deviceId: a.deviceId, type: "ping" });
    expect(single.status).toBe(201);
    await request(t.app).post("/v1/action-result").auth(a.deviceToken, bearer).send({ requestId: single.body.requestId, status: "succeeded" }).expect(200);

    const bulk = await adminRequest(t.app, "POST", "/admin/commands/bulk", { target: { all: true }, type: "ping" });
    expect(bulk.status).toBe(202);
    const batchCommands = await database.db.command.findMany({ where: { batchId: bulk.body.batchId } });
    for (const command of batchCommands) {
      const token = command.deviceId === a.deviceId ? a.deviceToken : b.deviceToken;
      await request(t.app).post("/v1/action-result").auth(token, bearer).send({ requestId: command.requestId, status: "succeeded" }).expect(200);
    }

    // A heartbeats, goes silent past the threshold (the sweep marks it offline), then comes back.
    await request(t.app).post("/v1/heartbeat").auth(a.deviceToken, bearer).send(heartbeatBody()).expect(200);
    t.clock.advance(3600);
    expect((await sweepOffline(t.deps)).map((device) => device.id)).toEqual([a.deviceId]);
    await request(t.app)
      .post("/v1/heartbeat")
      .auth(a.deviceToken, bearer)
      .send(heartbeatBody({ deviceTime: t.clock.now().toISOString() }))
      .expect(200);
    await request(t.app)
      .post("/v1/heartbeat")
      .auth(a.deviceToken, bearer)
      .send(heartbeatBody({ deviceTime: t.clock.now().toISOString() }))
      .expect(200);

    expect(await processDueWebhooks(t.deps)).toBe(8);
    expect(await processDueWebhooks(t.deps)).toBe(0);

    const events = receiver.events();
    expect(events.map((event) => event.type).sort()).toEqual([
      "batch.done",
      "command.status_changed",
      "command.status_changed",
      "command.status_changed",
      "device.enrolled",
      "device.enrolled",
      "device.offline",
      "device.online",
    ]);
    expect(new Set(events.map((event) => event.id)).size).toBe(events.length);
    for (const entry of receiver.received) {
      const header = entry.headers["webhook-signature"] as string;
      expect(header).toMatch(/^t=\d+,v1=[0-9a-f]{64}$/);
      expect(await verifyWebhookSignature(webhook.secret, header, entry.body, { nowSeconds: Math.floor(t.clock.now().getTime() / 1000) })).toBe(true);
      expect(await verifyWebhookSignature("whsec_wrong", header, entry.body, { nowSeconds: Math.floor(t.clock.now().getTime() / 1000) })).toBe(false);
    }
    const byType = (type: string) => events.filter((event) => event.type === type);
    expect(
      byType("device.enrolled")
        .map((event) => event.data.deviceId)
        .sort(),
    ).toEqual([a.deviceId, b.deviceId].sort());
    expect(byType("device.offline")[0]!.data).toMatchObject({ deviceId: a.deviceId, model: "Pixel A" });
    expect(byType("device.online")[0]!.data).toMatchObject({ deviceId: a.deviceId });
    expect(byType("batch.done")[0]!.data).toMatchObject({ batchId: bulk.body.batchId, total: 2, counts: { succeeded: 2 } });
    expect(byType("command.status_changed").map((event) => event.data.status)).toEqual(["succeeded", "succeeded", "succeeded"]);

    t.clock.advance(-3600); // back to the signing clock, to read the log
    const log = ListWebhookDeliveriesResponse.parse((await adminRequest(t.app, "GET", `/admin/webhooks/${webhook.id}/deliveries`)).body);
    expect(log.deliveries).toHaveLength(8);
    for (const delivery of log.deliveries) expect(delivery).toMatchObject({ status: "succeeded", attempts: 1, lastStatusCode: 200, lastError: null });
  }, 120_000);

  it("tells of a retirement, the commands it cancelled, and each alert digest mailed", async () => {
    await register(["device.retired", "command.status_changed", "alert.sent"]);
    const retiring = await enrollDevice(t.app, { model: "Pixel R" });
    const watched = await enrollDevice(t.app, { model: "Pixel W" });
    expect((await adminRequest(t.app, "PATCH", "/admin/alert-settings", { recipients: ["ops@example.com"] })).status).toBe(200);
    const pending = await adminRequest(t.app, "POST", "/admin/command", { deviceId: retiring.deviceId, type: "ping" });
    expect(pending.status).toBe(201);
    expect((await adminRequest(t.app, "POST", `/admin/devices/${retiring.deviceId}/retire`)).status).toBe(200);

    // The watched device goes silent; one alert window after it went offline, the digest is mailed.
    await request(t.app).post("/v1/heartbeat").auth(watched.deviceToken, bearer).send(heartbeatBody()).expect(200);
    t.clock.advance(3600);
    await sweepOffline(t.deps);
    t.clock.advance(16 * 60);
    await sweepOffline(t.deps);

    expect(await processDueWebhooks(t.deps)).toBe(3);
    const events = receiver.events();
    expect(events.map((event) => event.type).sort()).toEqual(["alert.sent", "command.status_changed", "device.retired"]);
    const byType = (type: string) => events.find((event) => event.type === type)!.data;
    expect(byType("device.retired")).toMatchObject({ deviceId: retiring.deviceId, model: "Pixel R", cancelledCommands: 1 });
    expect(byType("command.status_changed")).toMatchObject({ requestId: pending.body.requestId, status: "cancelled" });
    expect(byType("alert.sent")).toMatchObject({ recipients: ["ops@example.com"], events: 1 });
  }, 120_000);

  it("queues command.status_changed for each command a batch cancel or a bulk retirement cancels, in the same transaction", async () => {
    await register(["command.status_changed", "batch.done"]);
    const a = await enrollDevice(t.app, { model: "Pixel A" });
    const b = await enrollDevice(t.app, { model: "Pixel B" });
    const c = await enrollDevice(t.app, { model: "Pixel C" });
    const deliveries = async (status: string) =>
      (await database.db.webhookDelivery.findMany({ where: { eventType: "command.status_changed" } }))
        .map((row) => row.payload as { data: { requestId: string; deviceId: string; batchId: string | null; status: string; detail: string } })
        .filter((payload) => payload.data.status === status)
        .map((payload) => payload.data);

    // A batch to all three; one of its commands finished before the cancel and keeps its status.
    const bulk = await adminRequest(t.app, "POST", "/admin/commands/bulk", { target: { all: true }, type: "ping" });
    expect(bulk.status).toBe(202);
    const batchCommands = await database.db.command.findMany({ where: { batchId: bulk.body.batchId } });
    const done = batchCommands.find((command) => command.deviceId === a.deviceId)!;
    await request(t.app).post("/v1/action-result").auth(a.deviceToken, bearer).send({ requestId: done.requestId, status: "succeeded" }).expect(200);
    const cancelled = await adminRequest(t.app, "POST", `/admin/batches/${bulk.body.batchId}/cancel`);
    expect(cancelled.status).toBe(200);
    const byBatch = await deliveries("cancelled");
    expect(byBatch.map((data) => data.requestId).sort()).toEqual(
      batchCommands
        .filter((command) => command !== done)
        .map((command) => command.requestId)
        .sort(),
    );
    for (const data of byBatch) expect(data).toMatchObject({ batchId: bulk.body.batchId, detail: expect.stringMatching(/^batch cancelled by /) });
    // The cancel finished the batch: batch.done, once, with the final counts.
    const batchDone = await database.db.webhookDelivery.findMany({ where: { eventType: "batch.done" } });
    expect(batchDone).toHaveLength(1);
    expect((batchDone[0]!.payload as { data: unknown }).data).toMatchObject({ batchId: bulk.body.batchId, counts: { succeeded: 1, cancelled: 2 } });

    // Two pending commands each on b and c; the bulk retirement cancels all four.
    const pending: string[] = [];
    for (const device of [b, c, b, c]) {
      const created = await adminRequest(t.app, "POST", "/admin/command", { deviceId: device.deviceId, type: "ping" });
      expect(created.status).toBe(201);
      pending.push(created.body.requestId);
    }
    const retired = await adminRequest(t.app, "POST", "/admin/devices/bulk", { target: { deviceIds: [b.deviceId, c.deviceId] }, retire: true });
    expect(retired.status).toBe(200);
    expect(retired.body).toMatchObject({ retired: 2, cancelledCommands: 4 });
    const byRetirement = (await deliveries("cancelled")).filter((data) => data.batchId === null);
    expect(byRetirement.map((data) => data.requestId).sort()).toEqual([...pending].sort());
    for (const data of byRetirement) expect(data.detail).toMatch(/^device retired by /);
    // One succeeded, two cancelled by the batch, four by the retirement; and batch.done.
    expect(await processDueWebhooks(t.deps)).toBe(8);
    expect(receiver.events().filter((event) => event.type === "command.status_changed")).toHaveLength(7);
  }, 120_000);

  it("finishes a batch whose last two commands finish in concurrent transactions, neither waiting on the other: batch.done once, by the sweep", async () => {
    await register(["batch.done"]);
    await enrollDevice(t.app);
    await enrollDevice(t.app);
    const bulk = await adminRequest(t.app, "POST", "/admin/commands/bulk", { target: { all: true }, type: "ping" });
    expect(bulk.status).toBe(202);
    const batchId: string = bulk.body.batchId;
    const [first, second] = await database.db.command.findMany({ where: { batchId }, orderBy: { requestId: "asc" } });
    const finish = async (tx: Parameters<Parameters<typeof database.db.$transaction>[0]>[0], command: typeof first) => {
      await tx.$executeRaw`UPDATE "Command" SET status = 'succeeded', "completedAt" = now() WHERE "requestId" = ${command!.requestId}::uuid`;
      await emitCommandStatusChanges(
        tx,
        [{ requestId: command!.requestId, deviceId: command!.deviceId, batchId, status: "succeeded", detail: null }],
        new Date(),
      );
    };
    // The first transaction stays open, its command finished, while the second finishes the
    // other command and commits: it must not wait on the first (the batch row used to be
    // locked by every finishing transaction, serializing a whole batch's results).
    let releaseFirst!: () => void;
    const firstHeld = new Promise<void>((resolve) => (releaseFirst = resolve));
    let firstFinished!: () => void;
    const firstReady = new Promise<void>((resolve) => (firstFinished = resolve));
    const firstTransaction = database.db.$transaction(
      async (tx) => {
        await finish(tx, first);
        firstFinished();
        await firstHeld;
      },
      { timeout: 30_000 },
    );
    await firstReady;
    await database.db.$transaction(
      async (tx) => {
        await tx.$executeRaw`SET LOCAL lock_timeout = '5s'`;
        await finish(tx, second);
      },
      { timeout: 30_000 },
    );
    releaseFirst();
    await firstTransaction;

    // Each saw the other's command unfinished: the batch is not marked done yet...
    expect((await database.db.commandBatch.findUniqueOrThrow({ where: { id: batchId } })).doneAt).toBeNull();
    expect(await database.db.webhookDelivery.count({ where: { eventType: "batch.done" } })).toBe(0);
    // ...until the batch completion sweep, once.
    expect(await database.db.$transaction((tx) => finishBatches(tx, new Date()))).toBe(1);
    expect(await database.db.$transaction((tx) => finishBatches(tx, new Date()))).toBe(0);
    expect((await database.db.commandBatch.findUniqueOrThrow({ where: { id: batchId } })).doneAt).not.toBeNull();
    const batchDone = await database.db.webhookDelivery.findMany({ where: { eventType: "batch.done" } });
    expect(batchDone).toHaveLength(1);
    expect((batchDone[0]!.payload as { data: unknown }).data).toMatchObject({ batchId, total: 2, counts: { succeeded: 2 } });
    expect(await (await adminRequest(t.app, "GET", `/admin/batches/${batchId}`)).body).toMatchObject({ done: true, counts: { succeeded: 2 } });
  }, 60_000);

  it("only sends the events an endpoint subscribed to", async () => {
    await register(["device.offline"]);
    await enrollDevice(t.app);
    expect(await processDueWebhooks(t.deps)).toBe(0);
    expect(receiver.received).toHaveLength(0);
  });

  it("retries with backoff after a 500, and the ping is delivered once it succeeds", async () => {
    const webhook = await register(["device.offline"]);
    receiver.failNext = 1;
    const ping = await adminRequest(t.app, "POST", `/admin/webhooks/${webhook.id}/ping`);
    expect(ping.status).toBe(202);
    expect(ping.body).toMatchObject({ eventType: "ping", status: "queued", attempts: 0 });

    expect(await processDueWebhooks(t.deps)).toBe(1);
    let [delivery] = ListWebhookDeliveriesResponse.parse((await adminRequest(t.app, "GET", `/admin/webhooks/${webhook.id}/deliveries`)).body).deliveries;
    expect(delivery).toMatchObject({ status: "queued", attempts: 1, lastStatusCode: 500, lastError: "answered 500" });
    expect(delivery!.nextAttemptAt).not.toBeNull();
    // Not due yet: nothing is sent.
    expect(await processDueWebhooks(t.deps)).toBe(0);

    t.clock.advance(60);
    expect(await processDueWebhooks(t.deps)).toBe(1);
    [delivery] = ListWebhookDeliveriesResponse.parse((await adminRequest(t.app, "GET", `/admin/webhooks/${webhook.id}/deliveries`)).body).deliveries;
    expect(delivery).toMatchObject({ status: "succeeded", attempts: 2, lastStatusCode: 200, nextAttemptAt: null });
    expect(receiver.received).toHaveLength(2);
    const [first, second] = receiver.events();
    expect(first!.type).toBe("ping");
    expect(second!.id).toBe(first!.id);
    expect(await processDueWebhooks(t.deps)).toBe(0);
  });

  it("sends each event once when two instances share the queue and the endpoint is slow but answers 2xx", async () => {
    const webhook = await register(["device.enrolled"]);
    const other = createTestApp(database.db, { env: DEVELOPMENT });
    // Just under the 10 s timeout: a claimed batch waiting behind such answers would outlive its lease.
    receiver.delayMs = 8_500;
    for (let i = 0; i < 20; i++) expect((await adminRequest(t.app, "POST", `/admin/webhooks/${webhook.id}/ping`)).status).toBe(202);

    let firstDone = false;
    const first = processDueWebhooks(t.deps).finally(() => {
      firstDone = true;
    });
    // The other instance polls every second, as its worker does.
    let second = 0;
    while (!firstDone) {
      second += await processDueWebhooks(other.deps);
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
    const attempted = (await first) + second;

    const deliveries = await database.db.webhookDelivery.findMany({ where: { endpointId: webhook.id } });
    expect(deliveries).toHaveLength(20);
    expect(deliveries.map((delivery) => [delivery.status, delivery.attempts])).toEqual(Array.from({ length: 20 }, () => ["succeeded", 1]));
    expect(attempted).toBe(20);
    expect(receiver.received).toHaveLength(20);
    expect(new Set(receiver.received.map((entry) => entry.headers["webhook-id"])).size).toBe(20);
  }, 120_000);

  it("gives up after 24 hours of failures", async () => {
    const webhook = await register(["device.offline"]);
    receiver.failNext = 1000;
    await adminRequest(t.app, "POST", `/admin/webhooks/${webhook.id}/ping`);
    for (let hour = 0; hour < 30; hour++) {
      await processDueWebhooks(t.deps);
      t.clock.advance(3600);
    }
    // (The server's clock is 30 h ahead of a signed request's: read the log from the database.)
    const delivery = await database.db.webhookDelivery.findFirstOrThrow({ where: { endpointId: webhook.id } });
    expect(delivery).toMatchObject({ status: "failed", lastStatusCode: 500, nextAttemptAt: null });
    expect(delivery.attempts).toBeGreaterThan(5);
    const attempts = receiver.received.length;
    t.clock.advance(3600);
    await processDueWebhooks(t.deps);
    expect(receiver.received).toHaveLength(attempts);

    // Kept in the log for the retention window, then pruned.
    expect(await pruneWebhookDeliveries(t.deps)).toBe(0);
    t.clock.advance(WEBHOOK_LOG_RETENTION_DAYS * 24 * 3600);
    expect(await pruneWebhookDeliveries(t.deps)).toBe(1);
  });

  it("refuses private, loopback and link-local addresses outside development, at registration and at delivery", async () => {
    const production = createTestApp(database.db);
    for (const target of [
      url,
      "http://10.0.0.5/hook",
      "http://169.254.169.254/latest",
      "http://[::1]:8080/",
      "http://192.168.1.20/",
      "http://[fe80::1]/",
      // IPv4-mapped and IPv4-compatible forms of 127.0.0.1.
      "http://[::ffff:127.0.0.1]/",
      "http://[::7f00:1]/",
      "http://[::127.0.0.1]/",
      // Site-local, 6to4 of 127.0.0.1, and NAT64 (well-known and local-use prefixes), Teredo.
      "http://[fec0::1]/",
      "http://[2002:7f00:1::]/",
      "http://[2002:0808:0808::1]/",
      "http://[64:ff9b::7f00:1]/",
      "http://[64:ff9b:1::7f00:1]/",
      "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/",
    ]) {
      const res = await adminRequest(production.app, "POST", "/admin/webhooks", { url: target, events: ["device.enrolled"] });
      expect(res.status).toBe(400);
      expect(res.body.error.details[0].path).toBe("url");
    }
    // Public addresses of either family still pass (IP literals: no DNS involved).
    for (const target of ["https://[2606:4700:4700::1111]/hook", "https://1.1.1.1/hook"]) {
      expect((await adminRequest(production.app, "POST", "/admin/webhooks", { url: target, events: ["device.enrolled"] })).status).toBe(201);
    }
    expect((await adminRequest(production.app, "POST", "/admin/webhooks", { url: "ftp://example.com/", events: ["device.enrolled"] })).status).toBe(400);
    expect((await adminRequest(production.app, "POST", "/admin/webhooks", { url: "https://example.com/", events: ["nope"] })).status).toBe(400);

    // Registered in development, then delivered by an instance outside it: refused at delivery too.
    const webhook = await register(["device.enrolled"]);
    await adminRequest(production.app, "POST", `/admin/webhooks/${webhook.id}/ping`);
    expect(await processDueWebhooks(production.deps)).toBe(1);
    expect(receiver.received).toHaveLength(0);
    const [delivery] = (await adminRequest(production.app, "GET", `/admin/webhooks/${webhook.id}/deliveries`)).body.deliveries;
    expect(delivery).toMatchObject({ status: "queued", lastStatusCode: null });
    expect(delivery.lastError).toMatch(/private, loopback or link-local/);
  });

  it("deletes an endpoint with its log; unknown ids are 404", async () => {
    const webhook = await register();
    expect((await adminRequest(t.app, "DELETE", `/admin/webhooks/${webhook.id}`)).status).toBe(204);
    expect((await adminRequest(t.app, "DELETE", `/admin/webhooks/${webhook.id}`)).status).toBe(404);
    expect((await adminRequest(t.app, "POST", `/admin/webhooks/${webhook.id}/ping`)).status).toBe(404);
    expect((await adminRequest(t.app, "GET", `/admin/webhooks/${webhook.id}/deliveries`)).status).toBe(404);
    const audit = await database.db.auditLog.findMany({ where: { targetType: "webhook" }, orderBy: { id: "asc" } });
    expect(audit.map((entry) => entry.action)).toEqual(["webhook.create", "webhook.delete"]);
  });
});
