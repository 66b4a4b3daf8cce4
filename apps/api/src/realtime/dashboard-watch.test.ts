import request from "supertest";
import { sweepOffline } from "../modules/fleet/fleet-monitor";
import { createTestApp, createTestDatabase, enrollDevice, heartbeatBody, type TestApp, type TestDatabase, testServerUrl } from "../test";
import { DashboardWatch, WATCH_TTL_MS } from "./dashboard-watch";
import { type EventBus, LocalEventBus, PgEventBus, RedisEventBus } from "./event-bus";

/** A watch on `bus` whose clock the test moves. */
function watchWithClock(bus: EventBus) {
  const clock = { ms: 1_000_000 };
  return { watch: new DashboardWatch(bus, () => clock.ms), clock };
}

test("a watch starts open, closes three repeat periods after the last word, and a word opens it again", async () => {
  const bus = new LocalEventBus();
  const { watch, clock } = watchWithClock(bus);
  // A dashboard may already be open on another instance: its next word can be a repeat period away.
  expect(watch.watched).toBe(true);
  clock.ms += WATCH_TTL_MS - 1;
  expect(watch.watched).toBe(true);
  clock.ms += 1;
  expect(watch.watched).toBe(false);

  await bus.publishNow({ kind: "dashboards_watching" });
  expect(watch.watched).toBe(true);
  clock.ms += WATCH_TTL_MS;
  expect(watch.watched).toBe(false);
  watch.heard();
  expect(watch.watched).toBe(true);
});

async function until(what: string, check: () => boolean, ms = 5_000): Promise<void> {
  for (const deadline = Date.now() + ms; !check(); ) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const transports: Array<[string, string | undefined, (url: string) => Promise<EventBus>]> = [
  ["Redis", process.env.REDIS_URL, (url) => RedisEventBus.connect(url)],
  ["PostgreSQL", testServerUrl(), (url) => PgEventBus.connect(url)],
];

describe.each(transports)("between two instances over %s", (_name, url, connect) => {
  const withTransport = url ? test : test.skip;
  const buses: EventBus[] = [];
  afterAll(async () => {
    await Promise.all(buses.map((bus) => bus.close()));
  });

  withTransport("the word of an instance with dashboards opens the other instance's watch", async () => {
    const [heartbeats, dashboards] = [await connect(url!), await connect(url!)];
    buses.push(heartbeats, dashboards);
    const { watch, clock } = watchWithClock(heartbeats);
    clock.ms += WATCH_TTL_MS;
    expect(watch.watched).toBe(false);
    await dashboards.publishNow({ kind: "dashboards_watching" });
    await until("the word on the other instance", () => watch.watched);
  });
});

describe("what a heartbeat and a sweep put on the bus", () => {
  let database: TestDatabase;
  let t: TestApp;
  const published: string[] = [];
  beforeAll(async () => {
    database = await createTestDatabase();
    t = createTestApp(database.db);
    t.deps.bus.subscribe((event) => {
      if (event.kind === "device_state") published.push(`${event.state.deviceId} online=${event.state.online}`);
    });
  });
  afterAll(async () => {
    await database.close();
  });

  test("a heartbeat's device state only while a dashboard is open somewhere; a device going offline always", async () => {
    const device = await enrollDevice(t.app);
    const heartbeat = () => request(t.app).post("/v1/heartbeat").set("Authorization", `Bearer ${device.deviceToken}`).send(heartbeatBody()).expect(200);
    const { watch, clock } = watchWithClock(t.deps.bus);
    t.deps.dashboards = watch;

    await heartbeat();
    expect(published).toEqual([`${device.deviceId} online=true`]);

    // No dashboard anywhere: the next heartbeat repeats it all, so this one is held back.
    clock.ms += WATCH_TTL_MS;
    await heartbeat();
    expect(published).toEqual([`${device.deviceId} online=true`]);

    // Going offline happens once: a dashboard opening later must not have missed it.
    t.clock.advance(24 * 3600);
    expect((await sweepOffline(t.deps)).map((row) => row.id)).toEqual([device.deviceId]);
    expect(published).toEqual([`${device.deviceId} online=true`, `${device.deviceId} online=false`]);

    await t.deps.bus.publishNow({ kind: "dashboards_watching" });
    await heartbeat();
    expect(published).toEqual([`${device.deviceId} online=true`, `${device.deviceId} online=false`, `${device.deviceId} online=true`]);
  });
});
