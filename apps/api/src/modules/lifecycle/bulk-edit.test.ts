import { randomUUID } from "node:crypto";
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

describeWithPostgres("bulk edits, batch cancel and policy edits", () => {
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

  const groupsOf = async (id: string) => (await database.db.device.findUniqueOrThrow({ where: { id } })).groups;

  it("adds and removes groups and names devices by a prefix, for a list of ids", async () => {
    const a = await enrollDevice(t.app);
    const b = await enrollDevice(t.app);
    const untouched = await enrollDevice(t.app);
    await adminRequest(t.app, "PATCH", `/admin/devices/${a.deviceId}`, { groups: ["old", "keep"] });
    const res = await adminRequest(t.app, "POST", "/admin/devices/bulk", {
      target: { deviceIds: [a.deviceId, b.deviceId] },
      addGroups: ["lobby", "keep"],
      removeGroups: ["old"],
      aliasPrefix: "Till-",
    });
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ matched: 2, updated: 2, retired: 0, cancelledCommands: 0 });
    expect(await groupsOf(a.deviceId)).toEqual(["keep", "lobby"]);
    expect((await groupsOf(b.deviceId)).sort()).toEqual(["keep", "lobby"]);
    const aliases = await database.db.device.findMany({
      where: { id: { in: [a.deviceId, b.deviceId] } },
      orderBy: { enrolledAt: "asc" },
      select: { alias: true },
    });
    expect(aliases.map((device) => device.alias)).toEqual(["Till-001", "Till-002"]);
    expect(await database.db.device.findUniqueOrThrow({ where: { id: untouched.deviceId } })).toMatchObject({ alias: null, groups: [] });
    const audit = await database.db.auditLog.findFirst({ where: { action: "device.bulk_edit" } });
    expect(audit?.details).toMatchObject({ matched: 2, updated: 2, changes: { aliasPrefix: "Till-" } });
  });

  it("recomputes the effective policy of the devices whose groups it changes, as PATCH does: hash, dispatch row, heartbeat answer", async () => {
    const policy = await adminRequest(t.app, "POST", "/admin/device-policies", { name: "Lobby", settings: { restrictions: { camera: false } } });
    expect((await adminRequest(t.app, "POST", `/admin/device-policies/${policy.body.id}/assignments`, { group: "lobby" })).status).toBe(201);
    const joining = await enrollDevice(t.app);
    const bystander = await enrollDevice(t.app);
    const policyOf = async (id: string) => (await adminRequest(t.app, "GET", `/admin/devices/${id}/policy`)).body;
    const heartbeat = (device: { deviceToken: string }) =>
      request(t.app).post("/v1/heartbeat").set("Authorization", `Bearer ${device.deviceToken}`).send(heartbeatBody());

    const added = await adminRequest(t.app, "POST", "/admin/devices/bulk", { target: { deviceIds: [joining.deviceId] }, addGroups: ["lobby"] });
    expect(added.body).toMatchObject({ matched: 1, updated: 1 });
    const joined = await policyOf(joining.deviceId);
    expect(joined).toMatchObject({ hash: expect.any(String), settings: { restrictions: { camera: false } }, compliance: { status: "pending" } });
    expect(await database.db.policyDispatch.count({ where: { deviceId: joining.deviceId } })).toBe(1);
    expect((await heartbeat(joining)).body.policy).toEqual({ hash: joined.hash, settings: { restrictions: { camera: false } } });
    expect(await policyOf(bystander.deviceId)).toMatchObject({ hash: null, compliance: { status: "none" } });
    expect((await heartbeat(bystander)).body.policy).toBeUndefined();

    // Leaving the group clears it: the device is sent the empty policy.
    await adminRequest(t.app, "POST", "/admin/devices/bulk", { target: { group: "lobby" }, removeGroups: ["lobby"] });
    const left = await policyOf(joining.deviceId);
    expect(left).toMatchObject({ settings: {}, compliance: { status: "pending" } });
    expect(left.hash).not.toBe(joined.hash);
    expect((await heartbeat(joining)).body.policy).toEqual({ hash: left.hash, settings: {} });
  });

  it("queues the recompute of a big selection with the group change: the first 1,000 before the answer, the rest by the worker", async () => {
    const policy = await adminRequest(t.app, "POST", "/admin/device-policies", { name: "Lobby", settings: { restrictions: { camera: false } } });
    await adminRequest(t.app, "POST", `/admin/device-policies/${policy.body.id}/assignments`, { group: "lobby" });
    const ids = Array.from({ length: 1200 }, () => randomUUID());
    await database.db.device.createMany({ data: ids.map((id) => ({ id, tokenHash: "0".repeat(64), groups: ["hall"] })) });
    const res = await adminRequest(t.app, "POST", "/admin/devices/bulk", { target: { group: "hall" }, addGroups: ["lobby"] });
    expect(res.body).toMatchObject({ matched: 1200, updated: 1200 });
    const withHash = () => database.db.device.count({ where: { policyDesiredHash: { not: null } } });
    expect(await withHash()).toBe(1000);
    expect(await database.db.policyRecompute.count()).toBe(200);
    expect(await t.recomputePolicies()).toBe(200);
    expect(await withHash()).toBe(1200);
  });

  it("selects by group and by the list's filters, and replaces groups", async () => {
    const online = await enrollDevice(t.app, { model: "Kiosk X" });
    const offline = await enrollDevice(t.app, { model: "Kiosk X" });
    const other = await enrollDevice(t.app, { model: "Handheld" });
    await request(t.app).post("/v1/heartbeat").set("Authorization", `Bearer ${online.deviceToken}`).send(heartbeatBody());
    const byFilter = await adminRequest(t.app, "POST", "/admin/devices/bulk", {
      target: { filter: { search: "Kiosk", status: "offline" } },
      setGroups: ["spare"],
    });
    expect(byFilter.body).toMatchObject({ matched: 1, updated: 1 });
    expect(await groupsOf(offline.deviceId)).toEqual(["spare"]);
    expect(await groupsOf(online.deviceId)).toEqual([]);
    const byGroup = await adminRequest(t.app, "POST", "/admin/devices/bulk", { target: { group: "spare" }, setGroups: ["store"] });
    expect(byGroup.body).toMatchObject({ matched: 1, updated: 1 });
    expect(await groupsOf(offline.deviceId)).toEqual(["store"]);
    expect(await groupsOf(other.deviceId)).toEqual([]);
  });

  it("retires the devices of a revoked enrollment token, cancelling their commands; retired devices are not selected again", async () => {
    const enrollmentToken = await createEnrollmentToken(t.app, { maxUses: 5 });
    const tokenId = enrollmentToken.split(".")[0];
    const enrolled = [];
    for (let i = 0; i < 2; i++) {
      const res = await request(t.app)
        .post("/v1/register")
        .send({ enrollmentToken, device: { model: "Pixel" } });
      enrolled.push(res.body as { deviceId: string; deviceToken: string });
    }
    const stranger = await enrollDevice(t.app);
    await adminRequest(t.app, "POST", "/admin/command", { deviceId: enrolled[0]!.deviceId, type: "ping" });
    expect((await adminRequest(t.app, "POST", `/admin/enrollment-tokens/${tokenId}/revoke`)).status).toBe(200);

    const res = await adminRequest(t.app, "POST", "/admin/devices/bulk", { target: { enrollmentTokenId: tokenId }, retire: true });
    expect(res.body).toEqual({ matched: 2, updated: 0, retired: 2, cancelledCommands: 1 });
    for (const device of enrolled) {
      expect((await request(t.app).post("/v1/heartbeat").set("Authorization", `Bearer ${device.deviceToken}`).send(heartbeatBody())).status).toBe(401);
    }
    expect((await request(t.app).post("/v1/heartbeat").set("Authorization", `Bearer ${stranger.deviceToken}`).send(heartbeatBody())).status).toBe(200);
    expect((await adminRequest(t.app, "POST", "/admin/devices/bulk", { target: { enrollmentTokenId: tokenId }, retire: true })).body.matched).toBe(0);
    expect(await database.db.auditLog.count({ where: { action: "device.retire" } })).toBe(2);
  });

  it("refuses an empty edit, mixed group operations and unknown fields", async () => {
    const device = await enrollDevice(t.app);
    const target = { deviceIds: [device.deviceId] };
    for (const body of [
      { target },
      { target, setGroups: ["a"], addGroups: ["b"] },
      { target, retire: false },
      { target, aliasPrefix: "x", extra: 1 },
      { target: { all: true }, retire: true },
    ]) {
      const res = await adminRequest(t.app, "POST", "/admin/devices/bulk", body);
      expect(res.status).toBe(400);
      expect(res.body.error.code).toBe("validation_failed");
    }
  });

  it("cancels a whole batch: unfinished commands get the reason, finished ones keep their status", async () => {
    const a = await enrollDevice(t.app);
    const b = await enrollDevice(t.app);
    const batch = await adminRequest(t.app, "POST", "/admin/commands/bulk", { type: "ping", target: { deviceIds: [a.deviceId, b.deviceId] } });
    const commands = await database.db.command.findMany({ where: { batchId: batch.body.batchId } });
    const done = commands.find((command) => command.deviceId === a.deviceId)!;
    await request(t.app).post("/v1/action-result").set("Authorization", `Bearer ${a.deviceToken}`).send({ requestId: done.requestId, status: "succeeded" });

    const res = await adminRequest(t.app, "POST", `/admin/batches/${batch.body.batchId}/cancel`);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ batchId: batch.body.batchId, done: true, counts: { succeeded: 1, cancelled: 1, queued: 0 } });
    const cancelled = await adminRequest(t.app, "GET", `/admin/commands/${commands.find((command) => command.deviceId === b.deviceId)!.requestId}`);
    expect(cancelled.body).toMatchObject({ status: "cancelled", errorMessage: expect.stringMatching(/^batch cancelled by /) });
    expect(await database.db.auditLog.findFirst({ where: { action: "batch.cancel", targetId: batch.body.batchId } })).toMatchObject({
      details: { cancelled: 1 },
    });
    expect((await adminRequest(t.app, "POST", "/admin/batches/00000000-0000-4000-8000-000000000000/cancel")).status).toBe(404);
  });

  it("edits an auto-relaunch policy: disables it, changes its app; 404 and 409 as due", async () => {
    const created = await adminRequest(t.app, "POST", "/admin/policies", { group: "lobby", packageName: "com.example.kiosk" });
    await adminRequest(t.app, "POST", "/admin/policies", { group: "lobby", packageName: "com.example.other" });
    const disabled = await adminRequest(t.app, "PATCH", `/admin/policies/${created.body.id}`, { enabled: false });
    expect(disabled.status).toBe(200);
    expect(disabled.body).toMatchObject({ id: created.body.id, enabled: false, packageName: "com.example.kiosk" });
    const renamed = await adminRequest(t.app, "PATCH", `/admin/policies/${created.body.id}`, { packageName: "com.example.signage" });
    expect(renamed.body).toMatchObject({ packageName: "com.example.signage", enabled: false });
    expect((await adminRequest(t.app, "PATCH", `/admin/policies/${created.body.id}`, { packageName: "com.example.other" })).status).toBe(409);
    expect((await adminRequest(t.app, "PATCH", "/admin/policies/00000000-0000-4000-8000-000000000000", { enabled: true })).status).toBe(404);
    expect((await adminRequest(t.app, "PATCH", `/admin/policies/${created.body.id}`, {})).status).toBe(400);
    expect(await database.db.auditLog.count({ where: { action: "policy.update", targetId: created.body.id } })).toBe(2);
  });
});
