import request from "supertest";
import { type TestDatabase, createEnrollmentToken, createTestApp, createTestDatabase, resetTables } from "../test";
import { TEST_PASSWORD, asBrowser, createUser, signedInUser } from "../test/sessions";

let database: TestDatabase;

beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(() => database.close());
beforeEach(() => resetTables(database.db));

function expectSecurityHeaders(res: request.Response) {
  expect(res.headers["x-content-type-options"]).toBe("nosniff");
  expect(res.headers["x-frame-options"]).toBe("DENY");
  expect(res.headers["content-security-policy"]).toContain("frame-ancestors 'none'");
  expect(res.headers["cache-control"]).toBe("no-store");
  // Nothing may be revalidated from a cache that holds nothing: no validator either.
  expect(res.headers.etag).toBeUndefined();
}

describe("security headers", () => {
  it("are on every answer: success, error and unknown route", async () => {
    const t = createTestApp(database.db);
    for (const res of [await request(t.app).get("/api/health"), await request(t.app).get("/admin/devices"), await request(t.app).get("/nope")]) {
      expectSecurityHeaders(res);
    }
  });

  it("send HSTS only when the request came over TLS", async () => {
    const t = createTestApp(database.db);
    expect((await request(t.app).get("/api/health")).headers["strict-transport-security"]).toBeUndefined();
    // supertest connects from loopback, a trusted proxy by default: its X-Forwarded-Proto counts.
    const overTls = await request(t.app).get("/api/health").set("X-Forwarded-Proto", "https");
    expect(overTls.headers["strict-transport-security"]).toBe("max-age=31536000; includeSubDomains");
  });

  it("keep every answer carrying a secret out of caches: register, enrollment token, login, ws-ticket", async () => {
    const t = createTestApp(database.db);
    const admin = await signedInUser(t, "admin");
    const token = await asBrowser(t.app, admin, "post", "/admin/enrollment-tokens").send({ maxUses: 5 });
    expect(token.status).toBe(201);
    expectSecurityHeaders(token);

    const register = await request(t.app)
      .post("/v1/register")
      .send({ enrollmentToken: await createEnrollmentToken(t.app), device: { model: "Pixel 8" } });
    expect(register.status).toBe(201);
    expectSecurityHeaders(register);

    const user = await createUser(database.db, { role: "viewer" });
    const login = await request(t.app).post("/auth/login").send({ email: user.email, password: TEST_PASSWORD });
    expect(login.status).toBe(200);
    expectSecurityHeaders(login);

    const ticket = await asBrowser(t.app, admin, "get", "/auth/ws-ticket");
    expect(ticket.status).toBe(200);
    expectSecurityHeaders(ticket);
  });

  it("leave the API reference's static assets cacheable", async () => {
    const t = createTestApp(database.db);
    const asset = await request(t.app).get("/api/docs/assets/swagger-ui.css");
    expect(asset.status).toBe(200);
    expect(asset.headers["cache-control"]).toBe("public, max-age=3600");
    expect(asset.headers["x-content-type-options"]).toBe("nosniff");
  });
});
