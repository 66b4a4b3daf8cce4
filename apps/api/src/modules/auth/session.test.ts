import type { IncomingMessage } from "node:http";
import request from "supertest";
import { type TestApp, type TestDatabase, createTestApp, createTestDatabase, resetTables } from "../../test";
import { type SignedIn, cookieHeader, signedInUser } from "../../test/sessions";
import { authenticateSession, dashboardAuthenticator, verifyWsTicket } from "./session";

let database: TestDatabase;
let t: TestApp;
let operator: SignedIn;

beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(() => database.close());
beforeEach(async () => {
  await resetTables(database.db);
  t = createTestApp(database.db, { env: { WEB_URL: "https://dashboard.example.com" } });
  operator = await signedInUser(t, "operator", "op@example.com");
});

/** An upgrade request as `ws` hands it to the authenticator. */
function upgrade(headers: Record<string, string>): IncomingMessage {
  return { headers: { host: "api.example.com", ...headers } } as unknown as IncomingMessage;
}

async function ticket(): Promise<string> {
  return (await request(t.app).get("/auth/ws-ticket").set("Authorization", `Bearer ${operator.access}`)).body.ticket;
}

describe("verifyWsTicket", () => {
  it("names the user, role and session for 60 seconds", async () => {
    const before = t.clock.now().getTime();
    const value = await ticket();
    const after = t.clock.now().getTime();
    const verified = verifyWsTicket(t.deps.env, value, t.clock.now());
    expect(verified).toEqual({
      userId: operator.userId,
      role: "operator",
      sessionId: (await database.db.session.findFirstOrThrow()).id,
      ticketId: expect.any(String),
      expiresAt: expect.any(Date),
    });
    // 60 s from the whole second it was issued in (JWTs count seconds). Measured from the
    // ticket's own expiry: a check at "now + 59 s" failed whenever the request crossed a second.
    const expiresAt = verified!.expiresAt.getTime();
    expect(expiresAt).toBeGreaterThan(before + 59_000);
    expect(expiresAt).toBeLessThanOrEqual(after + 60_000);
    expect(verifyWsTicket(t.deps.env, value, new Date(expiresAt - 1000))).toBeDefined();
    expect(verifyWsTicket(t.deps.env, value, new Date(expiresAt))).toBeUndefined();
  });

  it("refuses an access token, a tampered ticket and another server's ticket", async () => {
    const value = await ticket();
    expect(verifyWsTicket(t.deps.env, operator.access)).toBeUndefined();
    expect(verifyWsTicket(t.deps.env, `${value.slice(0, -2)}xx`)).toBeUndefined();
    expect(verifyWsTicket({ JWT_SECRET: "another-server-secret" }, value)).toBeUndefined();
    expect(verifyWsTicket(t.deps.env, "not a jwt")).toBeUndefined();
  });
});

describe("authenticateSession", () => {
  it("returns the user, session and how they authenticated", async () => {
    const byCookie = await authenticateSession(t.deps, upgrade({ cookie: cookieHeader({ access: operator.access }) }));
    expect(byCookie).toEqual({ id: operator.userId, email: "op@example.com", role: "operator", sessionId: expect.any(String), viaCookie: true });
    const byBearer = await authenticateSession(t.deps, upgrade({ authorization: `Bearer ${operator.access}` }));
    expect(byBearer).toMatchObject({ id: operator.userId, viaCookie: false });
  });

  it("returns undefined for a revoked session", async () => {
    await database.db.session.updateMany({ data: { revokedAt: new Date() } });
    expect(await authenticateSession(t.deps, upgrade({ authorization: `Bearer ${operator.access}` }))).toBeUndefined();
  });
});

describe("dashboardAuthenticator (/ws/dashboard upgrades)", () => {
  const authenticate = (headers: Record<string, string>, protocols: string[] = ["mdm.dashboard.v1"]) =>
    dashboardAuthenticator(t.deps)(upgrade(headers), protocols);

  it("accepts a ticket from any origin", async () => {
    expect(await authenticate({ origin: "https://elsewhere.example.net" }, ["mdm.dashboard.v1", `ticket.${await ticket()}`])).toEqual({
      userId: operator.userId,
      sessionId: expect.any(String),
    });
  });

  it("accepts a ticket once, on any instance (the use is a row)", async () => {
    const value = await ticket();
    expect(await authenticate({}, ["mdm.dashboard.v1", `ticket.${value}`])).toBeDefined();
    const otherInstance = createTestApp(database.db, { env: { WEB_URL: "https://dashboard.example.com" } });
    expect(await dashboardAuthenticator(otherInstance.deps)(upgrade({}), ["mdm.dashboard.v1", `ticket.${value}`])).toBeUndefined();
    expect(await authenticate({}, ["mdm.dashboard.v1", `ticket.${value}`])).toBeUndefined();
  });

  it("refuses a ticket of a signed-out session", async () => {
    const value = await ticket();
    await database.db.session.updateMany({ data: { revokedAt: new Date() } });
    expect(await authenticate({}, ["mdm.dashboard.v1", `ticket.${value}`])).toBeUndefined();
  });

  it("refuses an expired ticket, and a disabled user's ticket", async () => {
    const value = await ticket();
    t.clock.advance(61);
    expect(await authenticate({}, ["mdm.dashboard.v1", `ticket.${value}`])).toBeUndefined();
    const fresh = await ticket();
    await database.db.user.updateMany({ data: { disabledAt: new Date() } });
    expect(await authenticate({}, ["mdm.dashboard.v1", `ticket.${fresh}`])).toBeUndefined();
  });

  it("accepts the session cookie from the API's own origin or WEB_URL's", async () => {
    const cookie = cookieHeader({ access: operator.access });
    expect(await authenticate({ cookie, origin: "https://api.example.com" })).toMatchObject({ userId: operator.userId });
    expect(await authenticate({ cookie, origin: "https://dashboard.example.com" })).toMatchObject({ userId: operator.userId });
  });

  it("refuses the session cookie sent by a page of another origin", async () => {
    expect(await authenticate({ cookie: cookieHeader({ access: operator.access }), origin: "https://evil.example.net" })).toBeUndefined();
  });

  it("refuses an upgrade with neither", async () => {
    expect(await authenticate({ origin: "https://dashboard.example.com" })).toBeUndefined();
  });
});
