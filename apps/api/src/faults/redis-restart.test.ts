import { randomBytes } from "node:crypto";
import { AdminClient, SimulatedDevice } from "@mdm/simulator";
import { type ChildApi, startChildApi } from "../test/child-api";
import {
  FLEET_SIZE,
  INTERVAL_MS,
  apiSettings,
  credentials,
  expectEveryCommandRanOnce,
  missingHeartbeats,
  sleep,
  startCommandLoad,
  startFleet,
  waitFor,
} from "./harness";
import { type PrivatePostgres, type PrivateRedis, faultPort, privatePostgresAvailable, startPrivatePostgres, startPrivateRedis } from "./private-services";

// Redis (event bus between instances, shared rate limits) dies and comes back mid-run.
// Devices hold their sockets on one instance, commands are created on the other, so every
// command crosses instances: through Redis when it is up, by the devices' heartbeats (the
// database path) while it is down.
const DOWN_MS = 5_000;
const suite = privatePostgresAvailable() ? describe : describe.skip;

suite(`Redis restarted under ${FLEET_SIZE} devices`, () => {
  let pg: PrivatePostgres;
  let redis: PrivateRedis;
  const apis: ChildApi[] = [];

  beforeAll(async () => {
    pg = startPrivatePostgres(faultPort(2));
    redis = await startPrivateRedis(faultPort(3));
  });
  afterAll(async () => {
    await Promise.all(apis.map((api) => api.kill()));
    await redis?.close();
    pg?.close();
  });

  it("degrades to the database path while it is down, fans out through it again once back, and loses nothing acknowledged", async () => {
    const databaseUrl = await pg.createDatabase(`faults_${randomBytes(4).toString("hex")}`);
    const settings = apiSettings(databaseUrl, { REDIS_URL: redis.url });
    const holder = await startChildApi(settings);
    apis.push(holder);
    const other = await startChildApi(settings);
    apis.push(other);
    const fleet = await startFleet(holder.url);
    // A device that never heartbeats: only the bus can bring it a command at once.
    const admin = new AdminClient(other.url, credentials);
    const { token } = await admin.createEnrollmentToken({ maxUses: 1 });
    const quiet = await SimulatedDevice.enroll(holder.url, token, { reconnectBaseMs: 250, reconnectMaxMs: 2000 });
    quiet.on("problem", () => undefined);
    await quiet.connect();

    const commands = startCommandLoad(other.url, fleet.devices, 100);
    await sleep(INTERVAL_MS);
    await redis.stop();
    const downAt = Date.now();
    await sleep(DOWN_MS);
    const createdWhileDown = commands.created.size;
    await redis.start();

    // Fan-out recovers: a command for the quiet device, created on the other instance, arrives
    // over its socket without any heartbeat to carry it.
    const probe = await waitFor(
      async () => {
        const created = await admin.createCommand({ deviceId: quiet.deviceId, type: "ping" });
        return await quiet.waitForCommand(created.requestId, 3000).then(() => created.requestId);
      },
      Boolean,
      20_000,
      "a command crossing instances through Redis",
    );
    const recoveredMs = Date.now() - downAt - DOWN_MS;

    await sleep(2 * INTERVAL_MS);
    await commands.stop();
    await expectEveryCommandRanOnce(databaseUrl, commands, 60_000);
    await quiet.stop();
    await fleet.stop();

    // eslint-disable-next-line no-console
    console.log(
      `redis: ${fleet.acknowledged.size} heartbeats and ${commands.created.size} commands acknowledged (${createdWhileDown} by the end of the outage, ${commands.refused} refused); ` +
        `bus fan-out back ${recoveredMs} ms after Redis (probe ${probe})`,
    );
    expect(commands.refused).toBe(0);
    expect(holder.process.exitCode).toBeNull();
    expect(other.process.exitCode).toBeNull();
    expect(fleet.serverFailures.slice(0, 5)).toEqual([]);
    expect(await missingHeartbeats(databaseUrl, fleet.acknowledged)).toEqual([]);
  });
});
