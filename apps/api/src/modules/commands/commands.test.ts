import { createHmac, hkdfSync, randomUUID } from "node:crypto";
import { CommandPushData, MAX_LISTED_DEVICE_IDS, signCommand, verifyCommandSignature } from "@mdm/contracts";
import request from "supertest";
import { poolOf } from "../../db/client";
import {
  TEST_ADMIN_KEY,
  TEST_COMMAND_MASTER_KEY,
  TEST_HMAC_SECRET,
  type TestApp,
  type TestDatabase,
  adminRequest,
  createTestApp,
  createTestDatabase,
  enrollDevice,
  heartbeatBody,
  resetTables,
} from "../../test";
import { adminKeyId } from "../admin-auth/admin-auth.middleware";
import { startFakeFcm } from "../../test/fake-fcm";

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

const bearer = { type: "bearer" } as const;

describe("POST /admin/command", () => {
  it("stores the command due at once, and the delivery worker pushes a signed high-priority data message the device can verify", async () => {
    const device = await enrollDevice(t.app, { fcmToken: "fcm-token-1" });
    const created = await adminRequest(t.app, "POST", "/admin/command", {
      deviceId: device.deviceId,
      type: "relaunch_app",
      payload: { packageName: "com.example.kiosk" },
      ttlSeconds: 600,
    });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ deviceId: device.deviceId, type: "relaunch_app", status: "queued", push: { outcome: null, attempts: 0 } });
    // The route only wrote the row: nothing left the server inside the request.
    expect(t.push.sent).toHaveLength(0);
    const due = await database.db.command.findUniqueOrThrow({ where: { requestId: created.body.requestId } });
    expect(due.nextAttemptAt!.getTime()).toBeLessThanOrEqual(Date.now());

    expect(await t.deliver()).toBe(1);
    const res = await adminRequest(t.app, "GET", `/admin/commands/${created.body.requestId}`);
    expect(res.body).toMatchObject({ deviceId: device.deviceId, type: "relaunch_app", status: "sent", push: { outcome: "sent", attempts: 1 } });
    expect(res.body.events.map((event: { status: string }) => event.status)).toEqual(["queued", "sent"]);
    expect(new Date(res.body.expiresAt).getTime() - new Date(res.body.createdAt).getTime()).toBe(600_000);

    expect(t.push.sent).toHaveLength(1);
    const message = t.push.sent[0]!;
    expect(message.token).toBe("fcm-token-1");
    expect(res.body.push.messageId).toBe(message.messageId);
    const data = CommandPushData.parse(message.data);
    expect(data).toMatchObject({ kind: "command", requestId: res.body.requestId, type: "relaunch_app" });
    const signable = { ...data, payload: JSON.parse(data.payload) };
    expect(await verifyCommandSignature(device.commandKey, signable)).toBe(true);
    expect(await verifyCommandSignature(device.commandKey, { ...signable, payload: { packageName: "com.evil.app" } })).toBe(false);

    const row = await database.db.command.findUniqueOrThrow({ where: { requestId: res.body.requestId } });
    expect(row).toMatchObject({ status: "sent", pushOutcome: "sent", pushMessageId: message.messageId });
    expect(row.sentAt).not.toBeNull();
  });

  it("queues without push for a device that has no FCM token, and hands it over in the next heartbeat", async () => {
    const device = await enrollDevice(t.app);
    const created = await adminRequest(t.app, "POST", "/admin/command", { deviceId: device.deviceId, type: "ping" });
    expect(created.status).toBe(201);
    await t.deliver();
    const attempted = await adminRequest(t.app, "GET", `/admin/commands/${created.body.requestId}`);
    expect(attempted.body).toMatchObject({ status: "queued", push: { outcome: "no_token", attempts: 0 } });
    expect(t.push.sent).toHaveLength(0);

    const heartbeat = await request(t.app).post("/v1/heartbeat").auth(device.deviceToken, bearer).send(heartbeatBody());
    expect(heartbeat.body.commands).toHaveLength(1);
    const command = heartbeat.body.commands[0];
    expect(command).toMatchObject({ requestId: created.body.requestId, type: "ping", payload: {} });
    expect(await verifyCommandSignature(device.commandKey, command)).toBe(true);
    const after = await adminRequest(t.app, "GET", `/admin/commands/${created.body.requestId}`);
    expect(after.body.status).toBe("sent");
  });

  it("does not hand over a command whose TTL elapsed", async () => {
    const device = await enrollDevice(t.app);
    await adminRequest(t.app, "POST", "/admin/command", { deviceId: device.deviceId, type: "reboot", ttlSeconds: 10 });
    t.clock.advance(11);
    const heartbeat = await request(t.app).post("/v1/heartbeat").auth(device.deviceToken, bearer).send(heartbeatBody());
    expect(heartbeat.body.commands).toEqual([]);
  });

  it("one device's command key does not verify another device's commands", async () => {
    const first = await enrollDevice(t.app, { fcmToken: "a" });
    const second = await enrollDevice(t.app, { fcmToken: "b" });
    await adminRequest(t.app, "POST", "/admin/command", { deviceId: first.deviceId, type: "lock" });
    await t.deliver();
    const data = CommandPushData.parse(t.push.sent[0]!.data);
    expect(await verifyCommandSignature(second.commandKey, { ...data, payload: JSON.parse(data.payload) })).toBe(false);
  });

  it("signs with a key only the command master key derives: the admin signing secret cannot forge device commands", async () => {
    const device = await enrollDevice(t.app, { fcmToken: "tok" });
    expect(device).toMatchObject({ commandKeyId: "1" });
    const expectedKey = Buffer.from(hkdfSync("sha256", TEST_COMMAND_MASTER_KEY, "mdm command key", `1:${device.deviceId}`, 32)).toString("hex");
    expect(device.commandKey).toBe(expectedKey);

    await adminRequest(t.app, "POST", "/admin/command", { deviceId: device.deviceId, type: "reboot" });
    await t.deliver();
    const data = CommandPushData.parse(t.push.sent[0]!.data);
    const signable = { ...data, payload: JSON.parse(data.payload) };
    expect(data.keyId).toBe("1");
    expect(await verifyCommandSignature(device.commandKey, signable)).toBe(true);
    // What the holder of the admin secret could compute under the former scheme verifies nothing.
    const fromAdminSecret = createHmac("sha256", TEST_HMAC_SECRET).update(`command-key:${device.deviceId}`).digest("hex");
    expect(await verifyCommandSignature(fromAdminSecret, signable)).toBe(false);
    expect(await verifyCommandSignature(fromAdminSecret, { ...signable, signature: await signCommand(fromAdminSecret, signable) })).toBe(true);
    expect(await verifyCommandSignature(device.commandKey, { ...signable, signature: await signCommand(fromAdminSecret, signable) })).toBe(false);

    // A new key id (rotation) derives other keys from the same master key.
    const rotated = createTestApp(database.db, { env: { COMMAND_KEY_ID: "2" } });
    const next = await enrollDevice(rotated.app);
    expect(next.commandKeyId).toBe("2");
    expect(next.commandKey).toBe(Buffer.from(hkdfSync("sha256", TEST_COMMAND_MASTER_KEY, "mdm command key", `2:${next.deviceId}`, 32)).toString("hex"));
  });

  it.each([
    [{ type: "launch_app", payload: {} }, "payload.packageName"],
    [{ type: "install_app", payload: { packageName: "com.a.b", url: "ftp://x", sha256: "0f".repeat(32) } }, "payload.url"],
    [{ type: "install_app", payload: { packageName: "com.a.b", url: "http://cdn.example.com/a.apk", sha256: "0f".repeat(32) } }, "payload.url"],
    [{ type: "install_app", payload: { packageName: "com.a.b", url: "https://cdn.example.com/a.apk" } }, "payload.sha256"],
    [{ type: "format_disk" }, "type"],
    [{ type: "ping", ttlSeconds: 5 }, "ttlSeconds"],
    [{ type: "ping", extra: true }, "extra"],
  ])("refuses %j with 400", async (body, path) => {
    const device = await enrollDevice(t.app);
    const res = await adminRequest(t.app, "POST", "/admin/command", { deviceId: device.deviceId, ...body });
    expect(res.status).toBe(400);
    expect(res.body.error.details.map((issue: { path: string }) => issue.path)).toContain(path);
    expect(await database.db.command.count()).toBe(0);
  });

  it("answers 404 for an unknown device", async () => {
    const res = await adminRequest(t.app, "POST", "/admin/command", { deviceId: "00000000-0000-4000-8000-000000000000", type: "ping" });
    expect(res.status).toBe(404);
    expect(res.body.error.code).toBe("not_found");
  });

  it("answers 404 for an unknown command and 400 for a malformed id", async () => {
    expect((await adminRequest(t.app, "GET", "/admin/commands/00000000-0000-4000-8000-000000000000")).status).toBe(404);
    const malformed = await adminRequest(t.app, "GET", "/admin/commands/123");
    expect(malformed.status).toBe(400);
    expect(malformed.body.error.details[0].path).toBe("params.requestId");
  });
});

describe("POST /v1/action-result", () => {
  async function commandFor(fcmToken?: string) {
    const device = await enrollDevice(t.app, fcmToken ? { fcmToken } : {});
    const created = await adminRequest(t.app, "POST", "/admin/command", { deviceId: device.deviceId, type: "ping" });
    await t.deliver();
    return { device, requestId: created.body.requestId as string };
  }
  const report = (token: string, body: Record<string, unknown>) => request(t.app).post("/v1/action-result").auth(token, bearer).send(body);

  it("follows acknowledged then succeeded, recording each transition", async () => {
    const { device, requestId } = await commandFor("tok");
    const ack = await report(device.deviceToken, { requestId, status: "acknowledged" });
    expect(ack.body).toEqual({ requestId, status: "acknowledged", changed: true });
    const done = await report(device.deviceToken, { requestId, status: "succeeded", result: { latencyMs: 42 } });
    expect(done.body).toEqual({ requestId, status: "succeeded", changed: true });

    const command = await adminRequest(t.app, "GET", `/admin/commands/${requestId}`);
    expect(command.body).toMatchObject({ status: "succeeded", result: { latencyMs: 42 } });
    expect(command.body.acknowledgedAt).not.toBeNull();
    expect(command.body.completedAt).not.toBeNull();
    expect(command.body.events.map((event: { status: string }) => event.status)).toEqual(["queued", "sent", "acknowledged", "succeeded"]);
  });

  it("takes a requestId written in upper case, as the contract's UUIDs may be", async () => {
    const { device, requestId } = await commandFor();
    const upper = requestId.toUpperCase();
    const ack = await report(device.deviceToken, { requestId: upper, status: "acknowledged" });
    expect(ack.status).toBe(200);
    expect(ack.body).toMatchObject({ status: "acknowledged", changed: true });
    const done = await report(device.deviceToken, { requestId: upper, status: "succeeded" });
    expect(done.body).toMatchObject({ status: "succeeded", changed: true });
    expect((await database.db.command.findUniqueOrThrow({ where: { requestId } })).status).toBe("succeeded");
  });

  it("is idempotent: the same result twice changes nothing the second time", async () => {
    const { device, requestId } = await commandFor();
    await report(device.deviceToken, { requestId, status: "failed", error: "no network" });
    const before = await database.db.command.findUniqueOrThrow({ where: { requestId }, include: { events: true } });
    const again = await report(device.deviceToken, { requestId, status: "failed", error: "no network" });
    expect(again.status).toBe(200);
    expect(again.body).toEqual({ requestId, status: "failed", changed: false });
    const late = await report(device.deviceToken, { requestId, status: "acknowledged" });
    expect(late.body).toEqual({ requestId, status: "failed", changed: false });
    const after = await database.db.command.findUniqueOrThrow({ where: { requestId }, include: { events: true } });
    expect(after).toEqual(before);
  });

  it("refuses a result that contradicts the recorded one with 409", async () => {
    const { device, requestId } = await commandFor();
    await report(device.deviceToken, { requestId, status: "succeeded" });
    const contradicting = await report(device.deviceToken, { requestId, status: "failed" });
    expect(contradicting.status).toBe(409);
    expect(contradicting.body.error.code).toBe("conflict");
    expect((await database.db.command.findUniqueOrThrow({ where: { requestId } })).status).toBe("succeeded");
  });

  it("refuses a result for an expired command with 409", async () => {
    const { device, requestId } = await commandFor();
    await database.db.command.update({ where: { requestId }, data: { status: "expired" } });
    const res = await report(device.deviceToken, { requestId, status: "succeeded" });
    expect(res.status).toBe(409);
  });

  it("refuses a result for another device's command as if it did not exist", async () => {
    const { requestId } = await commandFor();
    const stranger = await enrollDevice(t.app);
    const res = await report(stranger.deviceToken, { requestId, status: "succeeded" });
    expect(res.status).toBe(404);
    expect((await database.db.command.findUniqueOrThrow({ where: { requestId } })).status).toBe("queued");
    const unknown = await report(stranger.deviceToken, { requestId: "00000000-0000-4000-8000-000000000000", status: "succeeded" });
    expect(unknown.status).toBe(404);
  });

  it("refuses an unauthenticated report and changes nothing", async () => {
    const { requestId } = await commandFor();
    const res = await request(t.app).post("/v1/action-result").send({ requestId, status: "succeeded" });
    expect(res.status).toBe(401);
    expect((await database.db.command.findUniqueOrThrow({ where: { requestId } })).status).toBe("queued");
  });

  it("answers 400 for an unknown status", async () => {
    const { device, requestId } = await commandFor();
    const res = await report(device.deviceToken, { requestId, status: "exploded" });
    expect(res.status).toBe(400);
    expect(res.body.error.details[0].path).toBe("status");
  });
});

describe("POST /admin/command through the real firebase-admin SDK", () => {
  it("records FCM's message id, and a token FCM no longer knows marks the device instead of retrying", async () => {
    const fcm = await startFakeFcm();
    try {
      t = createTestApp(database.db, { push: fcm.createGateway() });
      const good = await enrollDevice(t.app, { fcmToken: "live-token" });
      const created = await adminRequest(t.app, "POST", "/admin/command", { deviceId: good.deviceId, type: "reboot" });
      await t.deliver();
      const sent = await adminRequest(t.app, "GET", `/admin/commands/${created.body.requestId}`);
      expect(sent.body).toMatchObject({ status: "sent", push: { outcome: "sent", messageId: expect.stringMatching(/^projects\/mdm-test\/messages\//) } });
      expect(fcm.requests[0]!.body).toMatchObject({
        message: { token: "live-token", android: { priority: "high" }, data: { requestId: sent.body.requestId, type: "reboot" } },
      });

      const gone = await enrollDevice(t.app, { fcmToken: "dead-token" });
      fcm.failToken("dead-token", "unregistered");
      const queued = await adminRequest(t.app, "POST", "/admin/command", { deviceId: gone.deviceId, type: "ping" });
      await t.deliver();
      const refused = await adminRequest(t.app, "GET", `/admin/commands/${queued.body.requestId}`);
      expect(refused.body).toMatchObject({ status: "queued", push: { outcome: "token_invalid", attempts: 1 } });
      const device = await database.db.device.findUniqueOrThrow({ where: { id: gone.deviceId } });
      expect(device.fcmTokenInvalidAt).not.toBeNull();

      // The next command is not pushed at all: FCM sees no new request for the dead token.
      const before = fcm.requests.length;
      const next = await adminRequest(t.app, "POST", "/admin/command", { deviceId: gone.deviceId, type: "ping" });
      await t.deliver();
      expect((await adminRequest(t.app, "GET", `/admin/commands/${next.body.requestId}`)).body.push.outcome).toBe("no_token");
      expect(fcm.requests.length).toBe(before);
    } finally {
      await fcm.close();
    }
  });
});

describe("bulk commands, cancel and history", () => {
  async function waitForBatch(batchId: string, until: (body: { counts: Record<string, number> }) => boolean) {
    // The delivery worker's run is what a listening server does on its own.
    await t.deliver();
    for (let i = 0; i < 200; i++) {
      const res = await adminRequest(t.app, "GET", `/admin/batches/${batchId}`);
      if (until(res.body)) return res.body;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new Error("batch did not settle");
  }

  it("targets a group with one call and reports progress by status", async () => {
    const members = [await enrollDevice(t.app, { fcmToken: "a" }), await enrollDevice(t.app, { fcmToken: "b" })];
    const outsider = await enrollDevice(t.app, { fcmToken: "c" });
    for (const device of members) await adminRequest(t.app, "PATCH", `/admin/devices/${device.deviceId}`, { groups: ["store-1"] });
    const res = await adminRequest(t.app, "POST", "/admin/commands/bulk", { target: { group: "store-1" }, type: "lock", payload: { message: "closing" } });
    expect(res.status).toBe(202);
    expect(res.body).toMatchObject({ total: 2, target: { group: "store-1" }, done: false });
    const settled = await waitForBatch(res.body.batchId, (body) => body.counts.sent === 2);
    expect(settled.counts).toMatchObject({ queued: 0, sent: 2 });
    expect(t.push.sent.map((message) => message.token).sort()).toEqual(["a", "b"]);
    expect(await database.db.command.count({ where: { deviceId: outsider.deviceId } })).toBe(0);

    for (const device of members) {
      const [command] = (await adminRequest(t.app, "GET", `/admin/commands?deviceId=${device.deviceId}`)).body.commands;
      await request(t.app).post("/v1/action-result").auth(device.deviceToken, bearer).send({ requestId: command.requestId, status: "succeeded" });
    }
    const done = await adminRequest(t.app, "GET", `/admin/batches/${res.body.batchId}`);
    expect(done.body).toMatchObject({ done: true, counts: { succeeded: 2 } });
    const listed = await adminRequest(t.app, "GET", "/admin/batches");
    expect(listed.body.batches).toEqual([done.body]);
  });

  it("lists batches with each one's own counts, counted by one query for the whole page (one per batch queued 100 on the pool)", async () => {
    const devices = [await enrollDevice(t.app), await enrollDevice(t.app)];
    const deviceIds = devices.map((device) => device.deviceId);
    const batchIds: string[] = [];
    for (const type of ["ping", "reboot", "lock"]) {
      const res = await adminRequest(t.app, "POST", "/admin/commands/bulk", { target: { deviceIds }, type });
      expect(res.status).toBe(202);
      batchIds.push(res.body.batchId);
    }
    // The second batch: one command succeeded; the third: both cancelled.
    const [, second, third] = batchIds;
    const [fromSecond] = (await adminRequest(t.app, "GET", `/admin/commands?batchId=${second}&deviceId=${devices[0]!.deviceId}`)).body.commands;
    await request(t.app).post("/v1/action-result").auth(devices[0]!.deviceToken, bearer).send({ requestId: fromSecond.requestId, status: "succeeded" });
    await database.db.command.updateMany({ where: { batchId: third }, data: { status: "cancelled" } });

    const pool = poolOf(database.db);
    const queries = jest.spyOn(pool, "query");
    const listed = await adminRequest(t.app, "GET", "/admin/batches");
    const statements = queries.mock.calls.length;
    queries.mockRestore();
    expect(listed.status).toBe(200);
    const countsOf = (batchId: string) => listed.body.batches.find((batch: { batchId: string }) => batch.batchId === batchId).counts;
    expect(countsOf(batchIds[0]!)).toMatchObject({ queued: 2, succeeded: 0, cancelled: 0 });
    expect(countsOf(second!)).toMatchObject({ queued: 1, succeeded: 1, cancelled: 0 });
    expect(countsOf(third!)).toMatchObject({ queued: 0, cancelled: 2 });
    expect(listed.body.batches.find((batch: { batchId: string }) => batch.batchId === third).done).toBe(true);
    // The batches, their counts, and what the request itself reads (the admin's key).
    expect(statements).toBeLessThanOrEqual(3);
  });

  it("targets the whole fleet or a list, and refuses unknown devices and empty targets", async () => {
    const device = await enrollDevice(t.app);
    const all = await adminRequest(t.app, "POST", "/admin/commands/bulk", { target: { all: true }, type: "ping" });
    expect(all.body.total).toBe(1);
    const unknown = await adminRequest(t.app, "POST", "/admin/commands/bulk", {
      target: { deviceIds: [device.deviceId, "00000000-0000-4000-8000-000000000000"] },
      type: "ping",
    });
    expect(unknown.status).toBe(400);
    expect(unknown.body.error.details[0].message).toContain("00000000-0000-4000-8000-000000000000");
    const empty = await adminRequest(t.app, "POST", "/admin/commands/bulk", { target: { group: "nobody" }, type: "ping" });
    expect(empty.status).toBe(400);
    const both = await adminRequest(t.app, "POST", "/admin/commands/bulk", { target: { all: true, group: "x" }, type: "ping" });
    expect(both.status).toBe(400);
    expect((await adminRequest(t.app, "GET", "/admin/batches/00000000-0000-4000-8000-000000000000")).status).toBe(404);
  });

  it("takes the longest id list the contract allows within the default body limit, for bulk commands and bulk edits", async () => {
    const device = await enrollDevice(t.app);
    const ids = (n: number) => [device.deviceId, ...Array.from({ length: n - 1 }, () => randomUUID())];
    // Read and validated, not 413: the bulk command refuses the unknown ids by name, the edit matches the one known device.
    const command = await adminRequest(t.app, "POST", "/admin/commands/bulk", { target: { deviceIds: ids(MAX_LISTED_DEVICE_IDS) }, type: "ping" });
    expect(command.status).toBe(400);
    expect(command.body.error.message).toBe("Unknown or retired devices in target");
    const edit = await adminRequest(t.app, "POST", "/admin/devices/bulk", { target: { deviceIds: ids(MAX_LISTED_DEVICE_IDS) }, addGroups: ["lobby"] });
    expect(edit.body).toMatchObject({ matched: 1, updated: 1 });
    // One more is the schema's refusal.
    for (const [path, extra] of [
      ["/admin/commands/bulk", { type: "ping" }],
      ["/admin/devices/bulk", { addGroups: ["lobby"] }],
    ] as const) {
      const tooMany = await adminRequest(t.app, "POST", path, { target: { deviceIds: ids(MAX_LISTED_DEVICE_IDS + 1) }, ...extra });
      expect(tooMany.status).toBe(400);
      expect(tooMany.body.error.details).toEqual([{ path: "target", message: `deviceIds: Must have at most ${MAX_LISTED_DEVICE_IDS} items` }]);
    }
  });

  it("cancels a pending command, which is then neither delivered nor completable", async () => {
    const device = await enrollDevice(t.app);
    const created = await adminRequest(t.app, "POST", "/admin/command", { deviceId: device.deviceId, type: "reboot" });
    const cancelled = await adminRequest(t.app, "POST", `/admin/commands/${created.body.requestId}/cancel`);
    expect(cancelled.status).toBe(200);
    expect(cancelled.body.status).toBe("cancelled");
    expect(cancelled.body.events.at(-1)).toMatchObject({ status: "cancelled", detail: `by ${adminKeyId(TEST_ADMIN_KEY)}` });
    const beat = await request(t.app).post("/v1/heartbeat").auth(device.deviceToken, bearer).send(heartbeatBody());
    expect(beat.body.commands).toEqual([]);
    const late = await request(t.app)
      .post("/v1/action-result")
      .auth(device.deviceToken, bearer)
      .send({ requestId: created.body.requestId, status: "succeeded" });
    expect(late.status).toBe(409);
    expect((await adminRequest(t.app, "POST", `/admin/commands/${created.body.requestId}/cancel`)).status).toBe(409);
  });

  it("lists a device's command history newest first, filtered by status", async () => {
    const device = await enrollDevice(t.app);
    const first = await adminRequest(t.app, "POST", "/admin/command", { deviceId: device.deviceId, type: "ping" });
    t.clock.advance(1); // distinct creation times, so the order is defined
    const second = await adminRequest(t.app, "POST", "/admin/command", { deviceId: device.deviceId, type: "lock" });
    await adminRequest(t.app, "POST", `/admin/commands/${first.body.requestId}/cancel`);
    const all = await adminRequest(t.app, "GET", `/admin/commands?deviceId=${device.deviceId}`);
    expect(all.body.total).toBe(2);
    expect(all.body.commands.map((command: { requestId: string }) => command.requestId)).toEqual([second.body.requestId, first.body.requestId]);
    const cancelled = await adminRequest(t.app, "GET", `/admin/commands?deviceId=${device.deviceId}&status=cancelled`);
    expect(cancelled.body.commands.map((command: { requestId: string }) => command.requestId)).toEqual([first.body.requestId]);
    expect((await adminRequest(t.app, "GET", "/admin/commands?status=exploded")).status).toBe(400);
  });
});
