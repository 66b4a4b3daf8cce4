import { randomBytes } from "node:crypto";
import { AdminClient, ApiError, SimulatedDevice, UpgradeRefusedError } from "@mdm/simulator";
import { type ChildApi, startChildApi } from "../test/child-api";
import {
  FLEET_SIZE,
  INTERVAL_MS,
  type Outcome,
  apiSettings,
  credentials,
  expectEveryCommandRanOnce,
  missingHeartbeats,
  probe,
  sleep,
  startCommandLoad,
  startFleet,
  waitFor,
} from "./harness";
import { type PrivatePostgres, faultPort, privatePostgresAvailable, startPrivatePostgres } from "./private-services";

// PostgreSQL stops (immediate shutdown, as a crash) for 10 s under a fleet heartbeating
// over WebSockets and HTTP, while an admin keeps creating commands. The API must answer
// 503 with Retry-After on every route meanwhile, come back by itself, and lose nothing it
// acknowledged.
const OUTAGE_MS = 10_000;
const suite = privatePostgresAvailable() ? describe : describe.skip;

suite(`PostgreSQL stopped for 10 s under ${FLEET_SIZE} devices`, () => {
  let pg: PrivatePostgres;
  let api: ChildApi | undefined;

  beforeAll(() => {
    pg = startPrivatePostgres(faultPort(0));
  });
  afterAll(async () => {
    await api?.kill();
    pg?.close();
  });

  it("answers 503 + Retry-After everywhere, recovers within 15 s by itself, and loses no acknowledged heartbeat or command", async () => {
    const databaseUrl = await pg.createDatabase(`faults_${randomBytes(4).toString("hex")}`);
    api = await startChildApi(apiSettings(databaseUrl));
    const fleet = await startFleet(api.url);
    const admin = new AdminClient(api.url, credentials);
    const { token: enrollmentToken } = await admin.createEnrollmentToken({ maxUses: 10 });
    const [someone, other] = fleet.devices as [SimulatedDevice, SimulatedDevice];
    // One device heartbeats by HTTP only (its socket closed), so both transports face the outage.
    await other.disconnect();
    await sleep(INTERVAL_MS);
    const commands = startCommandLoad(api.url, fleet.devices, 100);
    await sleep(INTERVAL_MS);

    // Every kind of route, asked again and again while the database is down.
    const heartbeatBody = JSON.stringify({ deviceTime: new Date().toISOString(), battery: { level: 50, charging: false } });
    const routes: Record<string, () => Promise<Outcome>> = {
      health: () => probe(`${api!.url}/api/health`),
      "device heartbeat": () =>
        probe(`${api!.url}/v1/heartbeat`, {
          method: "POST",
          headers: { Authorization: `Bearer ${someone.registration.deviceToken}`, "Content-Type": "application/json" },
          body: heartbeatBody,
        }),
      "device action result": () =>
        probe(`${api!.url}/v1/action-result`, {
          method: "POST",
          headers: { Authorization: `Bearer ${someone.registration.deviceToken}`, "Content-Type": "application/json" },
          body: JSON.stringify({ requestId: "00000000-0000-4000-8000-000000000000", status: "acknowledged" }),
        }),
      enrollment: () =>
        probe(`${api!.url}/v1/register`, {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ enrollmentToken, device: { model: "Late" } }),
        }),
      "admin read": () => viaAdmin(() => admin.getDevice(someone.deviceId)),
      "admin list": () => viaAdmin(() => admin.listCommands({ limit: 5 })),
      "admin write": () => viaAdmin(() => admin.createCommand({ deviceId: someone.deviceId, type: "ping" })),
      "dashboard sign-in": () =>
        probe(`${api!.url}/auth/login`, {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ email: "ops@example.com", password: "correct horse battery" }),
        }),
      "device socket upgrade": async () => {
        const started = Date.now();
        const late = new SimulatedDevice(api!.url, someone.registration, { reconnectBaseMs: 60_000 });
        try {
          await late.connect();
          return { status: 101, retryAfter: null, ms: Date.now() - started };
        } catch (error) {
          if (error instanceof UpgradeRefusedError)
            return {
              status: error.status,
              retryAfter: error.retryAfterSeconds === undefined ? null : String(error.retryAfterSeconds),
              ms: Date.now() - started,
            };
          // Authenticated from the token cache, then the presence lease could not be written:
          // the socket closes with 1013 (try again later), WebSocket's 503.
          if (/\(1013 /.test(String(error))) return { status: 1013, retryAfter: null, ms: Date.now() - started };
          return { error: String(error), ms: Date.now() - started };
        } finally {
          await late.disconnect();
        }
      },
    };
    pg.stop();
    const stoppedAt = Date.now();
    const during: Array<[string, Outcome]> = [];
    while (Date.now() - stoppedAt < OUTAGE_MS - 1000) {
      for (const [name, ask] of Object.entries(routes)) during.push([name, await ask()]);
      await sleep(250);
    }
    await sleep(Math.max(0, OUTAGE_MS - (Date.now() - stoppedAt)));
    pg.start();
    const restartedAt = Date.now();

    // Within 15 s of its return, the API serves normally without anyone restarting it.
    await waitFor(
      async () => Promise.all([probe(`${api!.url}/api/health`), routes["device heartbeat"]!(), routes["admin read"]!()]),
      (outcomes) => outcomes.every((outcome) => "status" in outcome && outcome.status === 200),
      15_000,
      "health, a heartbeat and an admin read answering 200",
    );
    const recoveredMs = Date.now() - restartedAt;

    // Let the fleet and the delivery engine catch up, then stop the load and settle.
    await sleep(2 * INTERVAL_MS);
    await commands.stop();
    await expectEveryCommandRanOnce(databaseUrl, commands, 60_000);
    await fleet.stop();

    const byRoute = new Map<string, string[]>();
    for (const [name, outcome] of during) {
      const seen = "status" in outcome ? `${outcome.status}${outcome.retryAfter ? " Retry-After" : ""}` : outcome.error;
      byRoute.set(name, [...new Set([...(byRoute.get(name) ?? []), seen])]);
    }
    // eslint-disable-next-line no-console
    console.log(
      `outage: ${during.length} probes, ${fleet.acknowledged.size} heartbeats acknowledged, ${commands.created.size} commands acknowledged (${commands.refused} refused), recovered ${recoveredMs} ms after PostgreSQL returned\n` +
        [...byRoute].map(([name, seen]) => `  ${name}: ${seen.join(", ")}`).join("\n"),
    );
    const { "device socket upgrade": upgrades, ...http } = Object.fromEntries(byRoute);
    expect(http).toEqual(
      Object.fromEntries(
        Object.keys(routes)
          .filter((name) => name !== "device socket upgrade")
          .map((name) => [name, ["503 Retry-After"]]),
      ),
    );
    expect(upgrades!.filter((seen) => seen !== "503 Retry-After" && seen !== "1013")).toEqual([]);
    expect(during.every(([, outcome]) => outcome.ms < 10_000)).toBe(true);
    expect(api.process.exitCode).toBeNull();
    expect(fleet.serverFailures.slice(0, 5)).toEqual([]);
    expect(await missingHeartbeats(databaseUrl, fleet.acknowledged)).toEqual([]);
    expect(commands.created.size).toBeGreaterThan(0);
  });
});

async function viaAdmin(call: () => Promise<unknown>): Promise<Outcome> {
  const started = Date.now();
  try {
    await call();
    return { status: 200, retryAfter: null, ms: Date.now() - started };
  } catch (error) {
    if (error instanceof ApiError)
      return { status: error.status, retryAfter: error.retryAfterSeconds === undefined ? null : String(error.retryAfterSeconds), ms: Date.now() - started };
    return { error: String(error), ms: Date.now() - started };
  }
}
