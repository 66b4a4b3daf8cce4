import { signAdminRequest } from "@mdm/contracts";
import request from "supertest";
import { pruneNonces } from "../../jobs/maintenance";
import {
  TEST_ADMIN_KEY,
  TEST_HMAC_SECRET,
  TEST_HOST,
  type TestApp,
  type TestDatabase,
  adminRequest,
  createTestApp,
  createTestDatabase,
  resetTables,
} from "../../test";

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

const PATH = "/admin/enrollment-tokens";
const BODY = JSON.stringify({ maxUses: 5, label: "warehouse" });

async function signed(overrides: Partial<Parameters<typeof signAdminRequest>[0]> = {}) {
  return signAdminRequest({
    adminKey: TEST_ADMIN_KEY,
    hmacSecret: TEST_HMAC_SECRET,
    method: "POST",
    host: TEST_HOST,
    pathWithQuery: PATH,
    body: BODY,
    ...overrides,
  });
}

function post(headers: Record<string, string>, body = BODY) {
  return request(t.app).post(PATH).set("Host", TEST_HOST).set(headers).set("Content-Type", "application/json").send(body);
}

describe("admin authentication", () => {
  it("accepts a correctly signed request", async () => {
    const res = await post(await signed());
    expect(res.status).toBe(201);
    expect(res.body).toMatchObject({ label: "warehouse", maxUses: 5, usedCount: 0 });
    expect(await database.db.auditLog.count({ where: { action: "enrollment_token.create" } })).toBe(1);
  });

  it("signs the query string too", async () => {
    expect((await adminRequest(t.app, "GET", "/admin/devices?limit=5")).status).toBe(200);
    const headers = await signAdminRequest({
      adminKey: TEST_ADMIN_KEY,
      hmacSecret: TEST_HMAC_SECRET,
      method: "GET",
      host: TEST_HOST,
      pathWithQuery: "/admin/devices?limit=5",
    });
    const res = await request(t.app).get("/admin/devices?limit=6").set("Host", TEST_HOST).set(headers);
    expect(res.status).toBe(401);
  });

  it("signs the Host: a request signed for another server sharing the keys is refused", async () => {
    const forStaging = await signed({ host: "staging.mdm.test" });
    const res = await post(forStaging);
    expect(res.status).toBe(401);
    expect(res.body.error.message).toMatch(/signature/);
    expect(await database.db.enrollmentToken.count()).toBe(0);
    const rightHost = await request(t.app).post(PATH).set("Host", "staging.mdm.test").set(forStaging).set("Content-Type", "application/json").send(BODY);
    expect(rightHost.status).toBe(201);
  });

  const refusals: Array<[string, () => Promise<Record<string, string>>, string?]> = [
    ["no headers at all", async () => ({})],
    ["a wrong admin key", async () => ({ ...(await signed()), "X-Admin": "wrong" })],
    ["a signature made with another secret", async () => signed({ hmacSecret: "another-secret" })],
    ["a signature over another body", async () => signed({ body: JSON.stringify({ maxUses: 500 }) })],
    ["a signature over another path", async () => signed({ pathWithQuery: "/admin/command" })],
    ["a signature over another method", async () => signed({ method: "PUT" })],
    ["a timestamp 301 s old", async () => signed({ timestamp: Math.floor(Date.now() / 1000) - 301 })],
    // 310, not 301: the server's clock may tick a second between signing and checking.
    ["a timestamp 310 s ahead", async () => signed({ timestamp: Math.floor(Date.now() / 1000) + 310 })],
    ["a malformed timestamp", async () => ({ ...(await signed()), "X-Timestamp": "soon" })],
    ["a too-short nonce", async () => signed({ nonce: "abc" })],
    ["a non-hex signature", async () => ({ ...(await signed()), "X-Signature": "z".repeat(64) })],
  ];

  it.each(refusals)("refuses %s with 401 and changes nothing", async (_case, headers) => {
    const res = await post(await headers());
    expect(res.status).toBe(401);
    expect(res.body.error.code).toBe("unauthorized");
    expect(res.body.error.requestId).toEqual(res.headers["x-request-id"]);
    expect(await database.db.enrollmentToken.count()).toBe(0);
    expect(await database.db.auditLog.count()).toBe(0);
  });

  it("refuses a replayed nonce", async () => {
    const headers = await signed();
    expect((await post(headers)).status).toBe(201);
    const replay = await post(headers);
    expect(replay.status).toBe(401);
    expect(replay.body.error.message).toMatch(/nonce/i);
    expect(await database.db.enrollmentToken.count()).toBe(1);
  });

  it("refuses a replay while its timestamp is still accepted, after an instance whose clock runs ahead pruned the nonces", async () => {
    // Signed one window ahead (the furthest a client clock may run), so accepted until two windows from now.
    const timestamp = Math.floor(t.clock.now().getTime() / 1000) + 300;
    const headers = await signed({ timestamp });
    expect((await post(headers)).status).toBe(201);
    // Near the end of the window here; the pruning instance's clock is 30 s ahead.
    t.clock.advance(595);
    const pruner = createTestApp(database.db);
    pruner.clock.advance(625);
    await pruneNonces(pruner.deps);
    const replay = await post(headers);
    expect(replay.status).toBe(401);
    expect(replay.body.error.message).toMatch(/nonce/i);
    expect(await database.db.enrollmentToken.count()).toBe(1);
  });

  it("authenticates before parsing: a wrongly signed malformed body is 401, not 400", async () => {
    const res = await post({ ...(await signed()), "X-Admin": "wrong" }, "{not json");
    expect(res.status).toBe(401);
  });

  it("rate-limits admin calls with 429 and Retry-After", async () => {
    t = createTestApp(database.db, { env: { RATE_LIMIT_ADMIN_PER_MINUTE: "2" } });
    const statuses = [];
    for (let i = 0; i < 3; i++) statuses.push((await adminRequest(t.app, "GET", "/admin/devices")).status);
    expect(statuses).toEqual([200, 200, 429]);
    const limited = await adminRequest(t.app, "GET", "/admin/devices");
    expect(limited.headers["retry-after"]).toMatch(/^\d+$/);
  });
});
