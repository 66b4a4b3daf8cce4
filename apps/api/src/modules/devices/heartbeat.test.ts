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
} from "../../test";
import { renewSocketLeases, sweepSocketLeases, takeSocketLeases } from "../../realtime/presence";
import { poolOf } from "../../db/client";

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

describe("POST /v1/heartbeat: happy", () => {
  it("updates the live state and appends a telemetry event", async () => {
    const device = await enrollDevice(t.app);
    const res = await request(t.app).post("/v1/heartbeat").auth(device.deviceToken, { type: "bearer" }).send(heartbeatBody());
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ serverTime: expect.any(String), heartbeatIntervalSeconds: 60, commands: [] });

    const row = await database.db.device.findUniqueOrThrow({ where: { id: device.deviceId } });
    expect(row).toMatchObject({ batteryLevel: 81, batteryCharging: false, networkType: "wifi", networkSignal: -55, ipAddress: "10.0.0.12" });
    expect(row.memoryTotal).toBe(4_000_000_000n);
    expect(row.lastSeenAt).not.toBeNull();
    const events = await database.db.telemetryEvent.findMany({ where: { deviceId: device.deviceId } });
    expect(events).toHaveLength(1);
    expect(events[0]).toMatchObject({ batteryLevel: 81, storageAvailable: 20_000_000_000n });
  });

  it("keeps sections a partial heartbeat does not carry, and a new FCM token clears the invalid mark", async () => {
    const device = await enrollDevice(t.app);
    const bearer = { type: "bearer" } as const;
    await request(t.app).post("/v1/heartbeat").auth(device.deviceToken, bearer).send(heartbeatBody());
    await database.db.device.update({ where: { id: device.deviceId }, data: { fcmTokenInvalidAt: new Date() } });
    const res = await request(t.app)
      .post("/v1/heartbeat")
      .auth(device.deviceToken, bearer)
      .send({ deviceTime: new Date().toISOString(), battery: { level: 12, charging: true }, fcmToken: "fresh-token" });
    expect(res.status).toBe(200);
    const row = await database.db.device.findUniqueOrThrow({ where: { id: device.deviceId } });
    expect(row).toMatchObject({ batteryLevel: 12, batteryCharging: true, networkType: "wifi", fcmToken: "fresh-token", fcmTokenInvalidAt: null });
    expect(await database.db.telemetryEvent.count()).toBe(2);
  });

  it("is recorded after a migration changed the type of a column the prepared heartbeat statement returns (a rolling deploy)", async () => {
    const device = await enrollDevice(t.app);
    const heartbeat = () => request(t.app).post("/v1/heartbeat").auth(device.deviceToken, { type: "bearer" }).send(heartbeatBody());
    // Prepares the statement on the connection the next heartbeat takes (the pool reuses the last one freed).
    expect((await heartbeat()).status).toBe(200);
    const pool = poolOf(database.db);
    await pool.query(`ALTER TABLE "Device" ALTER COLUMN model TYPE varchar(200)`);
    try {
      const res = await heartbeat();
      expect(res.status).toBe(200);
      expect(await database.db.telemetryEvent.count({ where: { deviceId: device.deviceId } })).toBe(2);
    } finally {
      await pool.query(`ALTER TABLE "Device" ALTER COLUMN model TYPE text`);
    }
  });

  it("shows the live state to admins", async () => {
    const device = await enrollDevice(t.app);
    await request(t.app).post("/v1/heartbeat").auth(device.deviceToken, { type: "bearer" }).send(heartbeatBody());
    const res = await adminRequest(t.app, "GET", `/admin/devices/${device.deviceId}`);
    expect(res.status).toBe(200);
    expect(res.body.state).toMatchObject({
      battery: { level: 81, charging: false },
      memory: { total: 4_000_000_000, available: 1_500_000_000 },
      apps: [{ packageName: "com.example.kiosk", running: true }],
      uptimeSeconds: 3600,
    });
  });
});

describe("POST /v1/heartbeat: errors", () => {
  it("answers 400 with field paths and stores nothing", async () => {
    const device = await enrollDevice(t.app);
    const res = await request(t.app)
      .post("/v1/heartbeat")
      .auth(device.deviceToken, { type: "bearer" })
      .send(heartbeatBody({ battery: { level: 101, charging: "yes" }, memory: { total: -1, available: 1 } }));
    expect(res.status).toBe(400);
    expect(res.body.error.details.map((issue: { path: string }) => issue.path).sort()).toEqual(["battery.charging", "battery.level", "memory.total"]);
    expect(await database.db.telemetryEvent.count()).toBe(0);
  });

  it("requires deviceTime", async () => {
    const device = await enrollDevice(t.app);
    const res = await request(t.app).post("/v1/heartbeat").auth(device.deviceToken, { type: "bearer" }).send({});
    expect(res.status).toBe(400);
    expect(res.body.error.details).toEqual([expect.objectContaining({ path: "deviceTime" })]);
  });
});

describe("POST /v1/heartbeat: security", () => {
  it.each([
    ["no header", undefined],
    ["a wrong scheme", "Basic abc"],
    ["a malformed token", "Bearer nonsense"],
  ])("refuses %s with 401", async (_case, authorization) => {
    const call = request(t.app).post("/v1/heartbeat");
    if (authorization) call.set("Authorization", authorization);
    const res = await call.send(heartbeatBody());
    expect(res.status).toBe(401);
    expect(res.body.error.code).toBe("unauthorized");
  });

  it("refuses a token whose secret belongs to another device, and stores nothing", async () => {
    const first = await enrollDevice(t.app);
    const second = await enrollDevice(t.app);
    const mixed = `${first.deviceId}.${second.deviceToken.split(".")[1]}`;
    const res = await request(t.app).post("/v1/heartbeat").auth(mixed, { type: "bearer" }).send(heartbeatBody());
    expect(res.status).toBe(401);
    expect(await database.db.telemetryEvent.count()).toBe(0);
    expect((await database.db.device.findUniqueOrThrow({ where: { id: first.deviceId } })).lastSeenAt).toBeNull();
  });

  it("rate-limits per device, not per address: one device's flood does not block another behind the same NAT", async () => {
    t = createTestApp(database.db, { env: { RATE_LIMIT_DEVICE_PER_MINUTE: "3" } });
    const noisy = await enrollDevice(t.app);
    const quiet = await enrollDevice(t.app);
    const send = (token: string) => request(t.app).post("/v1/heartbeat").auth(token, { type: "bearer" }).send(heartbeatBody());
    const answers = [];
    for (let i = 0; i < 4; i++) answers.push(await send(noisy.deviceToken));
    expect(answers.map((answer) => answer.status)).toEqual([200, 200, 200, 429]);
    // The budget's state in the draft-7 RateLimit headers, on answers and refusals alike.
    expect(answers.map((answer) => answer.headers["ratelimit-policy"])).toEqual(Array(4).fill("3;w=60"));
    expect(answers.map((answer) => answer.headers.ratelimit?.replace(/reset=\d+$/, "reset=N"))).toEqual([
      "limit=3, remaining=2, reset=N",
      "limit=3, remaining=1, reset=N",
      "limit=3, remaining=0, reset=N",
      "limit=3, remaining=0, reset=N",
    ]);
    const limited = await send(noisy.deviceToken);
    expect(limited.body.error.code).toBe("rate_limited");
    expect(Number(limited.headers["retry-after"])).toBeGreaterThan(0);
    expect(Number(limited.headers["retry-after"])).toBeLessThanOrEqual(60);
    expect((await send(quiet.deviceToken)).status).toBe(200);
  });
});

describeWithPostgres("POST /v1/heartbeat: storage", () => {
  it.each(["Device", "DeviceListing"] as const)(
    "updates the device's %s row as a HOT update (no index rewritten)",
    async (table) => {
      const device = await enrollDevice(t.app);
      const bearer = { type: "bearer" } as const;
      await request(t.app).post("/v1/heartbeat").auth(device.deviceToken, bearer).send(heartbeatBody());
      // The first heartbeat brings the device online, which DeviceListing's offline index sees
      // (not a HOT update): it must be counted before the window, not in it. A backend may
      // hold its statistics for up to 10 s: every connection flushes them first.
      await flushStatistics();
      const before = await tableUpdates(table);
      let moved = 0;
      for (let i = 0; i < 20; i++) {
        t.clock.advance(60);
        const blocks = await pagesOf([device.deviceId], table);
        const res = await request(t.app)
          .post("/v1/heartbeat")
          .auth(device.deviceToken, bearer)
          .send(heartbeatBody({ battery: { level: 80 - i, charging: i % 2 === 0 }, network: { type: i % 2 ? "wifi" : "cellular", signal: -50 - i } }));
        expect(res.status).toBe(200);
        moved += await movedSince(blocks, table);
      }
      const after = await settled(async () => {
        const now = await tableUpdates(table);
        return now.updates - before.updates >= 20 ? now : undefined;
      });
      expect(after.updates - before.updates).toBeGreaterThanOrEqual(20);
      // Pages fill with old versions while a snapshot anywhere in the database (an autoanalyze,
      // say) keeps them from being pruned: the few versions that then had to go to another page
      // cannot be HOT. Every one that stayed on its page must be, which no index change allows.
      // Most stay (a page holds several versions of the row), or the test would say little.
      expect(moved).toBeLessThanOrEqual(10);
      expect(after.hot - before.hot).toBe(after.updates - before.updates - moved);
    },
    60_000,
  );
});

describeWithPostgres("socket leases: storage", () => {
  it("makes due a command created while the lease was being written (a worker that claimed it then saw no socket, pushed it, and set its retry minutes away)", async () => {
    const device = await enrollDevice(t.app);
    // Hold the device's row as an update would (a new command's foreign key still reads it), so the
    // lease's statement starts, its snapshot taken, and waits.
    const holder = new Client({ connectionString: database.url });
    await holder.connect();
    try {
      await holder.query("BEGIN");
      await holder.query(`SELECT 1 FROM "Device" WHERE id = $1 FOR NO KEY UPDATE`, [device.deviceId]);
      const taking = takeSocketLeases(t.deps, [device.deviceId]);
      for (let i = 0; i < 200; i++) {
        const { rows } = await holder.query(`SELECT count(*)::int AS n FROM pg_locks WHERE NOT granted`);
        if (rows[0].n > 0) break;
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      // Meanwhile the command is created, claimed without a socket, pushed: due in an hour.
      const created = await adminRequest(t.app, "POST", "/admin/command", { deviceId: device.deviceId, type: "ping" });
      expect(created.status).toBe(201);
      const later = new Date(t.clock.now().getTime() + 3600_000);
      await database.db.command.update({ where: { requestId: created.body.requestId }, data: { status: "sent", nextAttemptAt: later } });
      await holder.query("COMMIT");

      const [leased] = await taking;
      expect(leased).toMatchObject({ id: device.deviceId, dueCommands: 1 });
      const command = await database.db.command.findUniqueOrThrow({ where: { requestId: created.body.requestId } });
      expect(command.nextAttemptAt!.getTime()).toBeLessThanOrEqual(t.clock.now().getTime());
    } finally {
      await holder.end();
    }
  });

  it("renews the leases of an instance's sockets as HOT updates, and the sweep still finds a lapsed one", async () => {
    const devices = [await enrollDevice(t.app), await enrollDevice(t.app), await enrollDevice(t.app)];
    const ids = devices.map((device) => device.deviceId);
    // What enrollment wrote has reached the statistics once two readings a flush apart agree.
    let before = await tableUpdates("Device");
    for (;;) {
      await new Promise((resolve) => setTimeout(resolve, 1100));
      const now = await tableUpdates("Device");
      if (now.updates === before.updates) break;
      before = now;
    }
    const listingBefore = await tableUpdates("DeviceListing");
    // Taking a lease sets the holder, which the sweep's index holds: those three are not HOT.
    for (const id of ids) expect(await takeSocketLeases(t.deps, [id])).toHaveLength(1);
    let moved = 0;
    for (let i = 0; i < 10; i++) {
      t.clock.advance(20);
      const blocks = await pagesOf(ids);
      expect(await renewSocketLeases(t.deps, ids)).toEqual([]);
      moved += await movedSince(blocks);
    }
    const after = await settled(async () => {
      const now = await tableUpdates("Device");
      return now.updates - before.updates >= 33 ? now : undefined;
    });
    expect(after.updates - before.updates).toBe(33);
    // A lease changes nothing the device list reads: no listing row was written.
    expect((await tableUpdates("DeviceListing")).updates).toBe(listingBefore.updates);
    // As for heartbeats: a renewal that had to move to another page cannot be HOT, every other
    // must; most stay on their page.
    expect(moved).toBeLessThanOrEqual(15);
    expect(after.hot - before.hot).toBe(30 - moved);

    // The last two go on being renewed; the first one's instance stops: past the lease it is swept.
    t.clock.advance(t.deps.env.WS_LEASE_SECONDS / 2);
    await renewSocketLeases(t.deps, ids.slice(1));
    t.clock.advance(t.deps.env.WS_LEASE_SECONDS / 2 + 1);
    expect(await sweepSocketLeases(t.deps)).toBe(1);
    const held = await database.db.device.findMany({ where: { socketInstanceId: { not: null } }, select: { id: true } });
    expect(held.map((device) => device.id).sort()).toEqual(ids.slice(1).sort());
  }, 60_000);
});

// What the backends have flushed so far, read afresh (flushStatistics makes them flush).
async function tableUpdates(table: "Device" | "DeviceListing"): Promise<{ updates: number; hot: number }> {
  const [row] = await database.db.$transaction(async (tx) => {
    await tx.$executeRaw`SELECT pg_stat_force_next_flush()`;
    await tx.$executeRaw`SELECT pg_stat_clear_snapshot()`;
    return tx.$queryRaw<Array<{ updates: number; hot: number }>>`
      SELECT n_tup_upd::int AS updates, n_tup_hot_upd::int AS hot FROM pg_stat_user_tables WHERE relname = ${table}`;
  });
  return row!;
}

/** The heap page each device's row in `table` is on now. */
async function pagesOf(ids: string[], table: "Device" | "DeviceListing" = "Device"): Promise<Map<string, number>> {
  const rows = await database.db.$queryRawUnsafe<Array<{ id: string; page: number }>>(
    `SELECT id::text, (ctid::text::point)[0]::int AS page FROM "${table}" WHERE id = ANY($1::uuid[])`,
    ids,
  );
  return new Map(rows.map((row) => [row.id, row.page]));
}

/** How many of these rows are now on another page than they were (an update that found no room on theirs). */
async function movedSince(pages: Map<string, number>, table: "Device" | "DeviceListing" = "Device"): Promise<number> {
  const now = await pagesOf([...pages.keys()], table);
  return [...pages].filter(([id, page]) => now.get(id) !== page).length;
}

/** Has every connection of the app's pool flush its statistics (PostgreSQL holds them up to 10 s). */
async function flushStatistics(): Promise<void> {
  const pool = poolOf(database.db);
  const clients = await Promise.all(Array.from({ length: pool.options.max }, () => pool.connect()));
  try {
    // Each flushes as its statement ends, before it answers.
    for (const client of clients) await client.query("SELECT pg_stat_force_next_flush()");
  } finally {
    for (const client of clients) client.release();
  }
}

/** Polls until `read` returns a value, for statistics other connections flush on their own schedule. */
async function settled<T>(read: () => Promise<T | undefined>): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    const value = await read();
    if (value !== undefined) return value;
    if (attempt > 300) throw new Error("statistics never showed the updates");
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}
