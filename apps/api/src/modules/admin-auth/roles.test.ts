import { apiRoutes } from "@mdm/contracts";
import { type TestApp, type TestDatabase, createTestApp, createTestDatabase, enrollDevice, resetTables } from "../../test";
import { asBrowser, signedInUser } from "../../test/sessions";

// Admin routes accept the signed admin key or a user's session; the user's role must
// reach the route's `minRole` from the contract: viewers read, operators act on the
// fleet, admins also change settings.

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

describe("roles on admin routes", () => {
  it("lets a viewer read but not send commands, change devices or settings", async () => {
    const device = await enrollDevice(t.app);
    const viewer = await signedInUser(t, "viewer");
    expect((await asBrowser(t.app, viewer, "get", "/admin/devices")).status).toBe(200);
    expect((await asBrowser(t.app, viewer, "get", "/admin/fleet/summary")).status).toBe(200);
    expect((await asBrowser(t.app, viewer, "get", `/admin/commands?deviceId=${device.deviceId}`)).status).toBe(200);

    const refused = await asBrowser(t.app, viewer, "post", "/admin/command").send({ deviceId: device.deviceId, type: "reboot" });
    expect(refused.status).toBe(403);
    expect(refused.body.error.code).toBe("forbidden");
    expect((await asBrowser(t.app, viewer, "post", "/admin/commands/bulk").send({ target: { all: true }, type: "ping" })).status).toBe(403);
    expect((await asBrowser(t.app, viewer, "patch", `/admin/devices/${device.deviceId}`).send({ alias: "x" })).status).toBe(403);
    expect(await database.db.command.count()).toBe(0);
    expect((await database.db.device.findUniqueOrThrow({ where: { id: device.deviceId } })).alias).toBeNull();
  });

  it("lets an operator send commands and enroll devices, but not change alert settings", async () => {
    const device = await enrollDevice(t.app);
    const operator = await signedInUser(t, "operator");
    const sent = await asBrowser(t.app, operator, "post", "/admin/command").send({ deviceId: device.deviceId, type: "ping" });
    expect(sent.status).toBe(201);
    expect(sent.body.createdBy).toBe(operator.email);
    expect((await asBrowser(t.app, operator, "post", "/admin/enrollment-tokens").send({ maxUses: 1 })).status).toBe(201);
    expect((await asBrowser(t.app, operator, "patch", "/admin/alert-settings").send({ enabled: false })).status).toBe(403);
  });

  it("lets an admin do everything, and requires the CSRF header with the cookie", async () => {
    const admin = await signedInUser(t, "admin");
    expect((await asBrowser(t.app, admin, "patch", "/admin/alert-settings").send({ cooldownMinutes: 30 })).status).toBe(200);
    const withoutCsrf = await asBrowser(t.app, admin, "get", "/admin/alert-settings");
    expect(withoutCsrf.status).toBe(200);
    const forged = await asBrowser(t.app, admin, "patch", "/admin/alert-settings").set("X-CSRF-Token", "forged").send({ cooldownMinutes: 5 });
    expect(forged.status).toBe(403);
    expect((await database.db.alertSettings.findUniqueOrThrow({ where: { id: 1 } })).cooldownMinutes).toBe(30);
  });

  it("names a role for every admin route in the contract", () => {
    const unnamed = Object.entries(apiRoutes).filter(([, route]) => route.auth === "admin" && !("minRole" in route));
    expect(unnamed.map(([name]) => name)).toEqual([]);
  });
});
