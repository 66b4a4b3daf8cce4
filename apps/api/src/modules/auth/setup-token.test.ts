import request from "supertest";
import { type TestApp, type TestDatabase, createTestApp, createTestDatabase, resetTables } from "../../test";
import { TEST_PASSWORD } from "../../test/sessions";
import { issueSetupToken } from "./setup-token";

// POST /auth/setup from anywhere but the API's own host needs the one-time token the API
// prints at start (server.ts logs what issueSetupToken returns). Remote clients are
// simulated with X-Forwarded-For from the trusted loopback proxy (supertest's socket).

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

const REMOTE = "203.0.113.50";
const setup = (body: Record<string, unknown>, from?: string) => {
  const call = request(t.app).post("/auth/setup");
  return (from ? call.set("X-Forwarded-For", from) : call).send({ email: "first@example.com", password: TEST_PASSWORD, ...body });
};

describe("first-admin setup token", () => {
  it("refuses a remote first visitor without the token, or with a wrong one", async () => {
    await issueSetupToken(t.deps);
    const without = await setup({}, REMOTE);
    expect(without.status).toBe(401);
    expect(without.body.error.code).toBe("unauthorized");
    // Each says, in words, what is wrong and where the token is.
    expect(without.body.error.message).toMatch(/^The setup token is missing: the API prints it in its log at start/);
    const wrong = await setup({ setupToken: "guessed-token" }, REMOTE);
    expect(wrong.status).toBe(401);
    expect(wrong.body.error.message).toMatch(/^This setup token is not the one the API printed/);
    expect(await database.db.user.count()).toBe(0);
  });

  it("lets the remote holder of the printed token create the admin, once", async () => {
    const token = await issueSetupToken(t.deps);
    expect(token).toEqual(expect.any(String));
    const created = await setup({ setupToken: token }, REMOTE);
    expect(created.status).toBe(201);
    // Setup is over: the token is gone with it.
    expect((await setup({ email: "second@example.com", setupToken: token }, REMOTE)).status).toBe(409);
    expect(await database.db.usedNonce.count({ where: { nonce: { startsWith: "setup-token:" } } })).toBe(0);
    expect(await issueSetupToken(t.deps)).toBeUndefined();
  });

  it("accepts a token printed by another instance on the same database", async () => {
    const token = await issueSetupToken(createTestApp(database.db).deps);
    expect((await setup({ setupToken: token }, REMOTE)).status).toBe(201);
  });

  it("refuses an expired token (7 days)", async () => {
    const token = await issueSetupToken(t.deps);
    t.clock.advance(7 * 24 * 3600 + 1);
    expect((await setup({ setupToken: token }, REMOTE)).status).toBe(401);
  });

  it("needs no token on the API's own host", async () => {
    expect((await setup({})).status).toBe(201);
  });

  it("asks for the token from a browser behind a proxy on this very host (its address is local, but it was relayed)", async () => {
    await issueSetupToken(t.deps);
    // nginx in front of the dashboard on the same machine: every browser arrives from 127.0.0.1.
    const relayed = await setup({}, "127.0.0.1");
    expect(relayed.status).toBe(401);
    expect((await request(t.app).get("/auth/setup").set("X-Forwarded-For", "127.0.0.1")).body).toEqual({ needed: true, tokenRequired: true });
    expect((await request(t.app).get("/auth/setup").set("Forwarded", "for=127.0.0.1")).body).toEqual({ needed: true, tokenRequired: true });
    expect(await database.db.user.count()).toBe(0);
  });

  it("asks for the token from a web page on this host that names itself in Host (DNS rebinding)", async () => {
    await issueSetupToken(t.deps);
    const rebound = await request(t.app)
      .post("/auth/setup")
      .set("Host", "attacker.example:8000")
      .send({ email: "first@example.com", password: "correct horse battery staple" });
    expect(rebound.status).toBe(401);
    expect((await request(t.app).get("/auth/setup").set("Host", "attacker.example")).body).toEqual({ needed: true, tokenRequired: true });
    expect((await request(t.app).get("/auth/setup").set("Host", "localhost:8000")).body).toEqual({ needed: true, tokenRequired: false });
    expect(await database.db.user.count()).toBe(0);
  });

  it("accepts the operator's SETUP_TOKEN", async () => {
    const operatorToken = "s".repeat(40);
    t = createTestApp(database.db, { env: { SETUP_TOKEN: operatorToken } });
    expect((await setup({ setupToken: "x".repeat(40) }, REMOTE)).status).toBe(401);
    expect((await setup({ setupToken: operatorToken }, REMOTE)).status).toBe(201);
  });

  it("tells each client whether it needs the token", async () => {
    expect((await request(t.app).get("/auth/setup").set("X-Forwarded-For", REMOTE)).body).toEqual({ needed: true, tokenRequired: true });
    expect((await request(t.app).get("/auth/setup")).body).toEqual({ needed: true, tokenRequired: false });
  });
});
