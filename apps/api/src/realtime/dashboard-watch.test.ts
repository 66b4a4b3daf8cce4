import { randomUUID } from "node:crypto";
import type { DeviceLiveState } from "@mdm/contracts";
import { testServerUrl } from "../test/test-db";
import { publishingWhileWatched, WATCH_REPEAT_MS } from "./dashboard-watch";
import { type EventBus, type FleetEvent, LocalEventBus, PgEventBus, RedisEventBus } from "./event-bus";

const stateOf = (deviceId: string): DeviceLiveState => ({
  deviceId,
  online: true,
  lastSeenAt: new Date().toISOString(),
  connected: false,
  connectedSince: null,
  disconnectedSince: null,
  batteryLevel: 50,
  batteryCharging: false,
  memoryAvailable: null,
  networkType: "wifi",
});

/** The device states `bus` hears for `deviceId`, in order, and the `deliver` events (the markers below). */
function listen(bus: EventBus, deviceId: string) {
  const heard: string[] = [];
  bus.subscribe((event) => {
    if (event.kind === "device_state" && event.state.deviceId === deviceId) heard.push("state");
    if (event.kind === "deliver" && event.deviceId === deviceId) heard.push(`marker ${event.requestId}`);
    if (event.kind === "dashboards_watching") heard.push("watching");
  });
  return heard;
}

async function until(what: string, check: () => boolean, ms = 5_000): Promise<void> {
  for (const deadline = Date.now() + ms; !check(); ) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

test("device states are published only within three repeat periods of a dashboard's word; every other event always", () => {
  let now = 1_000_000;
  const bus = publishingWhileWatched(new LocalEventBus(), () => now);
  const deviceId = randomUUID();
  const heard = listen(bus, deviceId);
  const marker = (requestId: string): FleetEvent => ({ kind: "deliver", deviceId, requestId });

  bus.publish({ kind: "device_state", state: stateOf(deviceId) });
  bus.publish(marker("1"));
  expect(heard).toEqual(["marker 1"]);

  bus.publish({ kind: "dashboards_watching" });
  bus.publish({ kind: "device_state", state: stateOf(deviceId) });
  now += 3 * WATCH_REPEAT_MS - 1;
  bus.publish({ kind: "device_state", state: stateOf(deviceId) });
  now += 1;
  bus.publish({ kind: "device_state", state: stateOf(deviceId) });
  bus.publish(marker("2"));
  expect(heard).toEqual(["marker 1", "watching", "state", "state", "marker 2"]);
});

const redisUrl = process.env.REDIS_URL;
const postgresUrl = testServerUrl();
const transports: Array<[string, string | undefined, (url: string) => Promise<EventBus>]> = [
  ["Redis", redisUrl, (url) => RedisEventBus.connect(url)],
  ["PostgreSQL", postgresUrl, (url) => PgEventBus.connect(url)],
];

describe.each(transports)("between two instances over %s", (_name, url, connect) => {
  const withTransport = url ? test : test.skip;
  const buses: EventBus[] = [];
  afterAll(async () => {
    await Promise.all(buses.map((bus) => bus.close()));
  });

  withTransport("a heartbeat's device state crosses only once a dashboard is open on the other instance", async () => {
    const [heartbeats, dashboards] = [publishingWhileWatched(await connect(url!)), publishingWhileWatched(await connect(url!))];
    buses.push(heartbeats, dashboards);
    const deviceId = randomUUID();
    const heardByDashboards = listen(dashboards, deviceId);
    const heardByHeartbeats = listen(heartbeats, deviceId);

    // No dashboard anywhere: the state is not sent (the marker after it, on the same channel, is).
    heartbeats.publish({ kind: "device_state", state: stateOf(deviceId) });
    heartbeats.publish({ kind: "deliver", deviceId, requestId: "before" });
    await until("the first marker", () => heardByDashboards.includes("marker before"));
    expect(heardByDashboards).toEqual(["marker before"]);

    // A dashboard opens on the other instance, which says so; once the word has arrived, states cross.
    await dashboards.publishNow({ kind: "dashboards_watching" });
    await until("the word on the heartbeats' instance", () => heardByHeartbeats.includes("watching"));
    heartbeats.publish({ kind: "device_state", state: stateOf(deviceId) });
    heartbeats.publish({ kind: "deliver", deviceId, requestId: "after" });
    await until("the second marker", () => heardByDashboards.includes("marker after"));
    expect(heardByDashboards).toEqual(["marker before", "watching", "state", "marker after"]);
  });
});
