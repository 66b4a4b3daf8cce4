import { SessionResponse, UserView } from "@mdm/contracts";
import jwt from "jsonwebtoken";
import request from "supertest";
import { type TestApp, type TestDatabase, createTestApp, createTestDatabase, resetTables } from "../../test";
import { TEST_PASSWORD, asBrowser, cookieHeader, createUser, setCookies, signIn, signedInFrom, signedInUser } from "../../test/sessions";

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

const auditActions = async () => (await database.db.auditLog.findMany({ orderBy: { id: "asc" } })).map((entry) => entry.action);

describe("GET /auth/setup", () => {
  it("says setup is needed while no user exists, and not after", async () => {
    expect((await request(t.app).get("/auth/setup")).body).toEqual({ needed: true, tokenRequired: false });
    await createUser(database.db);
    expect((await request(t.app).get("/auth/setup")).body).toEqual({ needed: false, tokenRequired: false });
  });
});

describe("POST /auth/setup", () => {
  const body = { email: "Founder@Example.com", password: TEST_PASSWORD, name: "Founder" };

  it("creates the first admin and signs them in", async () => {
    const res = await request(t.app).post("/auth/setup").send(body);
    expect(res.status).toBe(201);
    const session = SessionResponse.parse(res.body);
    expect(session.user).toMatchObject({ email: "founder@example.com", name: "Founder", role: "admin", disabled: false, pending: false });
    const cookies = setCookies(res);
    expect(cookies.mdm_csrf!.value).toBe(session.csrfToken);
    const me = await request(t.app).get("/auth/me").set("Cookie", signedInFrom(res).cookie);
    expect(me.status).toBe(200);
    expect(me.body.email).toBe("founder@example.com");
    expect(await auditActions()).toEqual(["auth.setup"]);
  });

  it("refuses with 409 once a user exists, and creates nothing", async () => {
    await createUser(database.db, { role: "viewer" });
    const res = await request(t.app).post("/auth/setup").send(body);
    expect(res.status).toBe(409);
    expect(res.body.error.code).toBe("conflict");
    expect(setCookies(res)).toEqual({});
    expect(await database.db.user.count()).toBe(1);
  });

  it("works only once", async () => {
    expect((await request(t.app).post("/auth/setup").send(body)).status).toBe(201);
    const again = await request(t.app)
      .post("/auth/setup")
      .send({ ...body, email: "second@example.com" });
    expect(again.status).toBe(409);
    expect(await database.db.user.count()).toBe(1);
  });

  it("creates exactly one admin when calls race", async () => {
    const results = await Promise.all(
      Array.from({ length: 5 }, (_, i) =>
        request(t.app)
          .post("/auth/setup")
          .send({ email: `racer${i}@example.com`, password: TEST_PASSWORD }),
      ),
    );
    expect(results.map((res) => res.status).sort()).toEqual([201, 409, 409, 409, 409]);
    expect(await database.db.user.count()).toBe(1);
  });

  it.each([
    ["a short password", { email: "a@example.com", password: "short" }],
    ["a password over 72 bytes", { email: "a@example.com", password: "é".repeat(37) }],
    ["a malformed email", { email: "not-an-email", password: TEST_PASSWORD }],
    ["an unknown field", { email: "a@example.com", password: TEST_PASSWORD, role: "viewer" }],
  ])("refuses %s with 400 and creates nothing", async (_case, invalid) => {
    const res = await request(t.app).post("/auth/setup").send(invalid);
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe("validation_failed");
    expect(await database.db.user.count()).toBe(0);
  });
});

describe("POST /auth/login", () => {
  it("signs in: a SessionResponse and the three cookies with their attributes", async () => {
    const user = await createUser(database.db, { email: "op@example.com", role: "operator" });
    const res = await request(t.app).post("/auth/login").send({ email: "op@example.com", password: TEST_PASSWORD });
    expect(res.status).toBe(200);
    const session = SessionResponse.parse(res.body);
    expect(session.user).toEqual(UserView.parse({ ...session.user, id: user.id, role: "operator" }));
    const expiresIn = Date.parse(session.accessTokenExpiresAt) - Date.now();
    expect(expiresIn).toBeGreaterThan(14 * 60_000);
    expect(expiresIn).toBeLessThanOrEqual(15 * 60_000);

    const cookies = setCookies(res);
    expect(cookies.mdm_session!.attributes).toMatch(/Path=\/(;|$)/);
    expect(cookies.mdm_session!.attributes).toMatch(/HttpOnly/);
    expect(cookies.mdm_session!.attributes).toMatch(/SameSite=Lax/);
    expect(cookies.mdm_session!.attributes).not.toMatch(/Secure/);
    expect(cookies.mdm_refresh!.attributes).toMatch(/Path=\/auth(;|$)/);
    expect(cookies.mdm_refresh!.attributes).toMatch(/HttpOnly/);
    expect(cookies.mdm_refresh!.attributes).toMatch(/Max-Age=604800/);
    expect(cookies.mdm_csrf!.attributes).not.toMatch(/HttpOnly/);
    expect(cookies.mdm_csrf!.value).toBe(session.csrfToken);

    const claims = jwt.decode(cookies.mdm_session!.value) as jwt.JwtPayload;
    expect(claims).toMatchObject({ sub: user.id, role: "operator", sid: expect.any(String) });
    expect(claims.exp! - claims.iat!).toBe(900);
    expect(jwt.decode(cookies.mdm_session!.value, { complete: true })!.header.alg).toBe("HS256");

    const rows = await database.db.session.findMany();
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ id: claims.sid, userId: user.id, revokedAt: null, ip: expect.any(String) });
    const audit = await database.db.auditLog.findFirstOrThrow({ where: { action: "auth.login" } });
    expect(audit).toMatchObject({ actor: "op@example.com", targetId: user.id, ip: expect.any(String) });
  });

  it("marks the cookies Secure in production", async () => {
    t = createTestApp(database.db, { env: { NODE_ENV: "production", JWT_SECRET: "j".repeat(40), BCRYPT_COST: "10" } });
    const user = await createUser(database.db);
    const res = await request(t.app).post("/auth/login").send({ email: user.email, password: TEST_PASSWORD });
    for (const cookie of Object.values(setCookies(res))) expect(cookie.attributes).toMatch(/Secure/);
  });

  it("takes the email in any case", async () => {
    await createUser(database.db, { email: "mixed@example.com" });
    expect((await request(t.app).post("/auth/login").send({ email: "MIXED@Example.com", password: TEST_PASSWORD })).status).toBe(200);
  });

  it("answers a wrong password and an unknown email identically, records both, sets no cookie", async () => {
    await createUser(database.db, { email: "known@example.com" });
    const wrong = await request(t.app).post("/auth/login").send({ email: "known@example.com", password: "not the password" });
    const unknown = await request(t.app).post("/auth/login").send({ email: "nobody@example.com", password: "not the password" });
    for (const res of [wrong, unknown]) {
      expect(res.status).toBe(401);
      expect(res.headers["set-cookie"]).toBeUndefined();
    }
    expect({ ...wrong.body.error, requestId: "" }).toEqual({ ...unknown.body.error, requestId: "" });
    expect(await database.db.session.count()).toBe(0);
    const failures = await database.db.auditLog.findMany({ where: { action: "auth.login_failed" }, orderBy: { id: "asc" } });
    // Whoever typed the email is not its owner: the actor stays anonymous.
    expect(failures.map((entry) => [entry.actor, (entry.details as { email: string }).email, (entry.details as { reason: string }).reason])).toEqual([
      ["anonymous", "known@example.com", "wrong_password"],
      ["anonymous", "nobody@example.com", "unknown_email"],
    ]);
  });

  it.each([
    ["a disabled user", { disabled: true }],
    ["an invited user who has not set a password", { password: null }],
  ])("refuses %s with the same 401", async (_case, options) => {
    const user = await createUser(database.db, options);
    const res = await request(t.app).post("/auth/login").send({ email: user.email, password: TEST_PASSWORD });
    expect(res.status).toBe(401);
    expect(res.body.error.message).toBe("Wrong email or password");
    expect(await database.db.session.count()).toBe(0);
  });

  it("rate-limits per address and email: 10 a minute, then 429 with Retry-After", async () => {
    await createUser(database.db, { email: "target@example.com" });
    const statuses: number[] = [];
    for (let i = 0; i < 11; i++) statuses.push((await request(t.app).post("/auth/login").send({ email: "target@example.com", password: "guess" })).status);
    expect(statuses).toEqual([...Array(10).fill(401), 429]);
    const limited = await request(t.app).post("/auth/login").send({ email: "target@example.com", password: TEST_PASSWORD });
    expect(limited.status).toBe(429);
    expect(limited.headers["retry-after"]).toMatch(/^\d+$/);
    // Another account from the same address is not locked out.
    expect((await request(t.app).post("/auth/login").send({ email: "other@example.com", password: "guess" })).status).toBe(401);
  });
});

describe("session authentication (GET /auth/me)", () => {
  it("accepts the session cookie and a bearer access token", async () => {
    const session = await signedInUser(t, "viewer", "v@example.com");
    const byCookie = await request(t.app)
      .get("/auth/me")
      .set("Cookie", cookieHeader({ access: session.access }));
    const byBearer = await request(t.app).get("/auth/me").set("Authorization", `Bearer ${session.access}`);
    for (const res of [byCookie, byBearer]) {
      expect(res.status).toBe(200);
      expect(UserView.parse(res.body)).toMatchObject({ email: "v@example.com", role: "viewer" });
      expect(res.body).not.toHaveProperty("passwordHash");
    }
  });

  it("refuses a request without a session with 401", async () => {
    const res = await request(t.app).get("/auth/me");
    expect(res.status).toBe(401);
    expect(res.body.error.code).toBe("unauthorized");
  });

  it("refuses an access token after its 15 minutes", async () => {
    const session = await signedInUser(t);
    t.clock.advance(14 * 60);
    expect((await request(t.app).get("/auth/me").set("Cookie", session.cookie)).status).toBe(200);
    t.clock.advance(60 + 1);
    expect((await request(t.app).get("/auth/me").set("Cookie", session.cookie)).status).toBe(401);
  });

  it.each([
    ["signed with another secret", (access: string) => jwt.sign(jwt.decode(access) as object, "another-secret", { algorithm: "HS256" })],
    ["unsigned (alg none)", (access: string) => jwt.sign(jwt.decode(access) as object, "", { algorithm: "none" })],
    [
      "with a changed role",
      (access: string) =>
        `${access.split(".")[0]}.${Buffer.from(JSON.stringify({ ...(jwt.decode(access) as object), role: "admin" })).toString("base64url")}.${access.split(".")[2]}`,
    ],
    ["that is a device token", () => "3f0e8a3c-1111-4222-8333-444455556666.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"],
  ])("refuses an access token %s", async (_case, forge) => {
    const session = await signedInUser(t, "viewer");
    const res = await request(t.app)
      .get("/auth/me")
      .set("Authorization", `Bearer ${forge(session.access)}`);
    expect(res.status).toBe(401);
  });

  it("refuses a WebSocket ticket as an access token", async () => {
    const session = await signedInUser(t);
    const ticket = (await request(t.app).get("/auth/ws-ticket").set("Cookie", session.cookie)).body.ticket;
    expect((await request(t.app).get("/auth/me").set("Authorization", `Bearer ${ticket}`)).status).toBe(401);
  });

  it("refuses at once the session of a user who gets disabled", async () => {
    const session = await signedInUser(t, "operator");
    await database.db.user.update({ where: { id: session.userId }, data: { disabledAt: new Date() } });
    expect((await request(t.app).get("/auth/me").set("Cookie", session.cookie)).status).toBe(401);
  });

  it("applies a role change at the next request, whatever the token says", async () => {
    const session = await signedInUser(t, "admin");
    expect((await asBrowser(t.app, session, "get", "/admin/users")).status).toBe(200);
    await database.db.user.update({ where: { id: session.userId }, data: { role: "viewer" } });
    expect((await asBrowser(t.app, session, "get", "/admin/users")).status).toBe(403);
  });
});

describe("POST /auth/refresh", () => {
  const refresh = (cookie: string, csrf?: string) => {
    const call = request(t.app).post("/auth/refresh").set("Cookie", cookie);
    return csrf ? call.set("X-CSRF-Token", csrf) : call;
  };

  it("rotates: new access and refresh cookies; the new ones work", async () => {
    const session = await signedInUser(t, "viewer");
    t.clock.advance(20 * 60);
    expect((await request(t.app).get("/auth/me").set("Cookie", session.cookie)).status).toBe(401);

    const res = await refresh(session.cookie, session.csrf);
    expect(res.status).toBe(200);
    SessionResponse.parse(res.body);
    const renewed = signedInFrom(res);
    expect(renewed.refresh).not.toBe(session.refresh);
    expect(renewed.access).not.toBe(session.access);
    expect(renewed.csrf).toBe(session.csrf);
    expect((await request(t.app).get("/auth/me").set("Cookie", renewed.cookie)).status).toBe(200);
    expect((await database.db.session.findFirstOrThrow()).lastUsedAt.getTime()).toBeGreaterThan(Date.now() + 19 * 60_000);
  });

  it("treats a replaced refresh token presented again as theft: revokes the session", async () => {
    const session = await signedInUser(t, "viewer");
    const renewed = signedInFrom(await refresh(session.cookie, session.csrf));
    t.clock.advance(11);

    const reuse = await refresh(session.cookie, session.csrf);
    expect(reuse.status).toBe(401);
    expect(setCookies(reuse).mdm_refresh?.value).toBe("");
    // The thief's copy and the user's current tokens are all dead now.
    expect((await refresh(renewed.cookie, renewed.csrf)).status).toBe(401);
    expect((await request(t.app).get("/auth/me").set("Cookie", renewed.cookie)).status).toBe(401);
    expect((await database.db.session.findFirstOrThrow()).revokedAt).not.toBeNull();
    expect(await auditActions()).toContain("auth.refresh_reused");
  });

  it("lets a second tab refreshing at the same moment through, without rotating again", async () => {
    const session = await signedInUser(t, "viewer");
    const [first, second] = await Promise.all([refresh(session.cookie, session.csrf), refresh(session.cookie, session.csrf)]);
    expect([first.status, second.status]).toEqual([200, 200]);
    const rotatedBy = [first, second].filter((res) => setCookies(res).mdm_refresh);
    expect(rotatedBy).toHaveLength(1);
    const current = signedInFrom(rotatedBy[0]!);
    expect((await refresh(current.cookie, current.csrf)).status).toBe(200);
    expect((await database.db.session.findFirstOrThrow()).revokedAt).toBeNull();
  });

  it("refuses without the CSRF token with 403 and rotates nothing", async () => {
    const session = await signedInUser(t, "viewer");
    const before = await database.db.session.findFirstOrThrow();
    for (const csrf of [undefined, "wrong-token"]) {
      const res = await refresh(session.cookie, csrf);
      expect(res.status).toBe(403);
      expect(res.body.error.code).toBe("forbidden");
    }
    expect(await database.db.session.findFirstOrThrow()).toEqual(before);
    expect((await refresh(session.cookie, session.csrf)).status).toBe(200);
  });

  it("refuses a CSRF token of another session", async () => {
    const mine = await signedInUser(t, "viewer");
    const theirs = await signedInUser(t, "viewer");
    const res = await refresh(cookieHeader({ refresh: mine.refresh, csrf: theirs.csrf }), theirs.csrf);
    expect(res.status).toBe(403);
  });

  it.each([
    ["no refresh cookie", (s: { csrf: string }) => cookieHeader({ csrf: s.csrf })],
    ["a malformed refresh cookie", (s: { csrf: string }) => `mdm_refresh=garbage; mdm_csrf=${s.csrf}`],
  ])("refuses %s with 401", async (_case, cookie) => {
    const session = await signedInUser(t, "viewer");
    expect((await refresh(cookie(session), session.csrf)).status).toBe(401);
  });

  it("refuses after 7 days without use", async () => {
    const session = await signedInUser(t, "viewer");
    t.clock.advance(7 * 24 * 3600 + 1);
    expect((await refresh(session.cookie, session.csrf)).status).toBe(401);
  });

  it("refuses a disabled user's refresh", async () => {
    const session = await signedInUser(t, "viewer");
    await database.db.user.update({ where: { id: session.userId }, data: { disabledAt: new Date() } });
    expect((await refresh(session.cookie, session.csrf)).status).toBe(401);
  });
});

describe("POST /auth/logout", () => {
  it("revokes the session and clears the cookies", async () => {
    const session = await signedInUser(t, "viewer");
    const res = await asBrowser(t.app, session, "post", "/auth/logout");
    expect(res.status).toBe(204);
    const cleared = setCookies(res);
    for (const name of ["mdm_session", "mdm_refresh", "mdm_csrf"]) {
      expect(cleared[name]!.value).toBe("");
      expect(cleared[name]!.attributes).toMatch(/Expires=Thu, 01 Jan 1970/);
    }
    expect(cleared.mdm_refresh!.attributes).toMatch(/Path=\/auth/);
    expect((await request(t.app).get("/auth/me").set("Cookie", session.cookie)).status).toBe(401);
    expect((await request(t.app).post("/auth/refresh").set("Cookie", session.cookie).set("X-CSRF-Token", session.csrf)).status).toBe(401);
    expect(await auditActions()).toEqual(["auth.login", "auth.logout"]);
  });

  it("refuses a cookie logout without the CSRF token, and the session lives on", async () => {
    const session = await signedInUser(t, "viewer");
    const res = await request(t.app).post("/auth/logout").set("Cookie", session.cookie);
    expect(res.status).toBe(403);
    expect((await request(t.app).get("/auth/me").set("Cookie", session.cookie)).status).toBe(200);
  });

  it("signs out a bearer client without CSRF", async () => {
    const session = await signedInUser(t, "viewer");
    expect((await request(t.app).post("/auth/logout").set("Authorization", `Bearer ${session.access}`)).status).toBe(204);
    expect((await request(t.app).get("/auth/me").set("Authorization", `Bearer ${session.access}`)).status).toBe(401);
  });

  it("works with an expired access cookie alone", async () => {
    const session = await signedInUser(t, "viewer");
    t.clock.advance(3600);
    const res = await request(t.app)
      .post("/auth/logout")
      .set("Cookie", cookieHeader({ access: session.access, csrf: session.csrf }))
      .set("X-CSRF-Token", session.csrf);
    expect(res.status).toBe(204);
    expect((await database.db.session.findFirstOrThrow()).revokedAt).not.toBeNull();
  });

  it("answers 204 without a session", async () => {
    expect((await request(t.app).post("/auth/logout")).status).toBe(204);
  });
});

describe("CSRF on session routes", () => {
  it("refuses a cookie write without the token (403) and changes nothing; accepts it with the token or by bearer", async () => {
    const admin = await signedInUser(t, "admin");
    const other = await createUser(database.db, { role: "viewer" });
    const patch = () => request(t.app).patch(`/admin/users/${other.id}`).set("Cookie", admin.cookie).send({ role: "operator" });

    for (const res of [await patch(), await patch().set("X-CSRF-Token", "x".repeat(43))]) {
      expect(res.status).toBe(403);
      expect(res.body.error.code).toBe("forbidden");
    }
    expect((await database.db.user.findUniqueOrThrow({ where: { id: other.id } })).role).toBe("viewer");
    expect(await auditActions()).toEqual(["auth.login"]);

    expect((await patch().set("X-CSRF-Token", admin.csrf)).status).toBe(200);
    const bearer = await request(t.app).patch(`/admin/users/${other.id}`).set("Authorization", `Bearer ${admin.access}`).send({ role: "viewer" });
    expect(bearer.status).toBe(200);
  });

  it("needs no token for a cookie GET", async () => {
    const admin = await signedInUser(t, "admin");
    expect((await request(t.app).get("/admin/users").set("Cookie", admin.cookie)).status).toBe(200);
  });
});

describe("admin routes with a session", () => {
  it("accept an admin's session and record the admin as the actor", async () => {
    const admin = await signedInUser(t, "admin", "boss@example.com");
    const res = await asBrowser(t.app, admin, "post", "/admin/enrollment-tokens").send({ maxUses: 2 });
    expect(res.status).toBe(201);
    expect((await database.db.enrollmentToken.findFirstOrThrow()).createdBy).toBe("boss@example.com");
    expect((await asBrowser(t.app, admin, "get", "/admin/devices")).status).toBe(200);
  });

  it("refuse a viewer with 403 and change nothing", async () => {
    const user = await signedInUser(t, "viewer");
    const res = await asBrowser(t.app, user, "post", "/admin/enrollment-tokens").send({ maxUses: 2 });
    expect(res.status).toBe(403);
    expect(await database.db.enrollmentToken.count()).toBe(0);
  });

  it("refuse an admin's cookie write without the CSRF token", async () => {
    const admin = await signedInUser(t, "admin");
    const res = await request(t.app).post("/admin/enrollment-tokens").set("Cookie", admin.cookie).send({ maxUses: 2 });
    expect(res.status).toBe(403);
    expect(await database.db.enrollmentToken.count()).toBe(0);
  });

  it("check the signature, not the session, when X-Admin is sent", async () => {
    const admin = await signedInUser(t, "admin");
    const res = await asBrowser(t.app, admin, "get", "/admin/devices").set("X-Admin", "wrong");
    expect(res.status).toBe(401);
  });
});

describe("GET /auth/ws-ticket", () => {
  it("gives a 60-second ticket", async () => {
    const session = await signedInUser(t, "operator");
    const res = await request(t.app).get("/auth/ws-ticket").set("Cookie", session.cookie);
    expect(res.status).toBe(200);
    const claims = jwt.decode(res.body.ticket) as jwt.JwtPayload;
    expect(claims).toMatchObject({ sub: session.userId, aud: "ws", role: "operator" });
    expect(claims.exp! - claims.iat!).toBe(60);
    expect(Date.parse(res.body.expiresAt)).toBe(claims.exp! * 1000);
  });

  it("needs a session", async () => {
    expect((await request(t.app).get("/auth/ws-ticket")).status).toBe(401);
  });
});

it("keeps passwords out of stored rows: only a bcrypt hash, of the cost BCRYPT_COST names", async () => {
  // The suites hash at the test-only cost 4; production's default is 12 (env.test.ts).
  const t = createTestApp(database.db, { env: { BCRYPT_COST: "12" } });
  const res = await request(t.app).post("/auth/setup").send({ email: "a@example.com", password: TEST_PASSWORD });
  expect(res.status).toBe(201);
  const user = await database.db.user.findFirstOrThrow();
  expect(user.passwordHash).toMatch(/^\$2[aby]\$12\$/);
  expect(user.passwordHash).not.toContain(TEST_PASSWORD);
  expect((await signIn(t.app, "a@example.com")).userId).toBe(user.id);
});
