import { createHash } from "node:crypto";
import { PasswordResetCheckResponse } from "@mdm/contracts";
import request from "supertest";
import { type TestApp, type TestDatabase, createTestApp, createTestDatabase, resetTables } from "../../test";
import { TEST_PASSWORD, createUser, signIn, signedInUser } from "../../test/sessions";
import { handleAllPasswordResetRequests } from "./password-reset.service";

let database: TestDatabase;
let t: TestApp;

beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(() => database.close());
beforeEach(async () => {
  await resetTables(database.db);
  t = createTestApp(database.db, { env: { WEB_URL: "https://mdm.example.com/" } });
});

const NEW_PASSWORD = "a brand new passphrase";

/** Asks for a reset, then lets the mail worker handle the request, as a running server does. */
async function requestReset(email: string) {
  const res = await request(t.app).post("/auth/password-reset").send({ email });
  await handleAllPasswordResetRequests(t.deps);
  return res;
}
const confirm = (token: string, password = NEW_PASSWORD) => request(t.app).post("/auth/password-reset/confirm").send({ token, password });

/** The token of the link in the latest mail in the outbox. */
async function tokenFromMail(): Promise<string> {
  const text = (await t.outbox()).at(-1)!.text!;
  const link = /https:\/\/mdm\.example\.com\/reset-password\?token=(\S+)/.exec(text);
  if (!link) throw new Error(`no reset link in: ${text}`);
  return decodeURIComponent(link[1]!);
}

describe("POST /auth/password-reset", () => {
  it("does the same work for a known and an unknown email before answering: one request row, no lookup, token or mail yet", async () => {
    await createUser(database.db, { email: "known@example.com" });
    for (const email of ["known@example.com", "unknown@example.com"]) {
      const res = await request(t.app).post("/auth/password-reset").send({ email });
      expect(res.status).toBe(202);
      expect(await database.db.passwordResetToken.count()).toBe(0);
      expect(await t.outbox()).toHaveLength(0);
      expect(await database.db.auditLog.count({ where: { action: "auth.password_reset.request" } })).toBe(0);
    }
    expect((await database.db.passwordResetRequest.findMany({ orderBy: { id: "asc" } })).map((row) => row.email)).toEqual([
      "known@example.com",
      "unknown@example.com",
    ]);

    // The worker then does the rest, once: a token and a mail for the known address only.
    await handleAllPasswordResetRequests(t.deps);
    await handleAllPasswordResetRequests(t.deps);
    expect(await database.db.passwordResetRequest.count()).toBe(0);
    expect(await database.db.passwordResetToken.count()).toBe(1);
    expect((await t.outbox()).map((mail) => mail.to)).toEqual([["known@example.com"]]);
    const audited = await database.db.auditLog.findMany({ where: { action: "auth.password_reset.request" }, orderBy: { id: "asc" } });
    expect(audited.map((entry) => [(entry.details as { email: string }).email, (entry.details as { eligible: boolean }).eligible])).toEqual([
      ["known@example.com", true],
      ["unknown@example.com", false],
    ]);
  });

  it("answers a known and an unknown email identically; only the known one gets a mail", async () => {
    await createUser(database.db, { email: "known@example.com" });
    const known = await requestReset("known@example.com");
    const unknown = await requestReset("unknown@example.com");
    for (const res of [known, unknown]) expect(res.status).toBe(202);
    expect(known.body).toEqual(unknown.body);
    expect(known.headers["content-type"]).toBe(unknown.headers["content-type"]);
    expect(known.headers["content-length"]).toBe(unknown.headers["content-length"]);

    const outbox = await t.outbox();
    expect(outbox).toHaveLength(1);
    expect(outbox[0]).toMatchObject({ kind: "password_reset", to: ["known@example.com"], subject: "Reset your Keelson password", status: "queued" });
    expect(outbox[0]!.text).toMatch(/within 30 minutes/);
    expect(await database.db.passwordResetToken.count()).toBe(1);
  });

  it("says the link was recorded, not sent, when no mail provider is configured, and queued when one is", async () => {
    await createUser(database.db, { email: "known@example.com" });
    const recorded = await requestReset("known@example.com");
    expect(recorded.body).toEqual({ mail: "recorded", message: expect.stringContaining("recorded, not sent") });
    await t.sendMail();
    expect(await t.outbox()).toMatchObject([{ status: "recorded" }]);

    t.deps.mailer = { name: "resend", send: async () => ({ id: "re_1" }) };
    const queued = await requestReset("unknown@example.com");
    expect(queued.body).toEqual({ mail: "queued", message: "If an account uses this address, a link to reset its password is on its way." });
  });

  it("stores only the sha256 of 32 random bytes, valid for 30 minutes", async () => {
    const user = await createUser(database.db, { email: "known@example.com" });
    await requestReset("known@example.com");
    const [id, secret] = (await tokenFromMail()).split(".");
    expect(Buffer.from(secret!, "base64url")).toHaveLength(32);
    const row = await database.db.passwordResetToken.findUniqueOrThrow({ where: { id } });
    expect(row).toMatchObject({ userId: user.id, usedAt: null, tokenHash: createHash("sha256").update(secret!).digest("hex") });
    expect(row.expiresAt.getTime() - row.createdAt.getTime()).toBe(30 * 60_000);
  });

  it("mails nobody for a disabled account, and answers the same", async () => {
    await createUser(database.db, { email: "gone@example.com", disabled: true });
    const res = await requestReset("gone@example.com");
    expect(res.status).toBe(202);
    expect(await t.outbox()).toHaveLength(0);
  });

  it("allows 3 requests an hour per address, then 429 with Retry-After and no mail", async () => {
    // Four accounts, so only the address's limit holds mails back (one account gets one
    // mail an interval: account-limits.test.ts).
    const statuses: number[] = [];
    for (let i = 0; i < 4; i++) {
      await createUser(database.db, { email: `known${i}@example.com` });
      statuses.push((await requestReset(`known${i}@example.com`)).status);
    }
    expect(statuses).toEqual([202, 202, 202, 429]);
    const limited = await requestReset("unknown@example.com");
    expect(limited.status).toBe(429);
    expect(limited.body.error.code).toBe("rate_limited");
    expect(Number(limited.headers["retry-after"])).toBeGreaterThan(3500);
    expect(Number(limited.headers["retry-after"])).toBeLessThanOrEqual(3600);
    expect(await t.outbox()).toHaveLength(3);
  });

  it("records each request in the audit log", async () => {
    await createUser(database.db, { email: "known@example.com" });
    await requestReset("known@example.com");
    await requestReset("unknown@example.com");
    const entries = await database.db.auditLog.findMany({ where: { action: "auth.password_reset.request" }, orderBy: { id: "asc" } });
    expect(entries.map((entry) => [entry.actor, entry.details])).toEqual([
      ["anonymous", { email: "known@example.com", eligible: true, mail: "recorded" }],
      ["anonymous", { email: "unknown@example.com", eligible: false, mail: null }],
    ]);
    expect(entries[0]!.ip).toBeTruthy();
  });

  it("refuses a malformed email with 400", async () => {
    expect((await requestReset("not an email")).status).toBe(400);
    expect(await t.outbox()).toHaveLength(0);
  });
});

describe("POST /auth/password-reset/confirm", () => {
  beforeEach(async () => {
    await createUser(database.db, { email: "known@example.com" });
  });

  it("sets the password: the new one signs in, the old one no longer", async () => {
    await requestReset("known@example.com");
    const res = await confirm(await tokenFromMail());
    expect(res.status).toBe(204);
    expect((await request(t.app).post("/auth/login").send({ email: "known@example.com", password: TEST_PASSWORD })).status).toBe(401);
    expect((await request(t.app).post("/auth/login").send({ email: "known@example.com", password: NEW_PASSWORD })).status).toBe(200);
    const entry = await database.db.auditLog.findFirstOrThrow({ where: { action: "auth.password_reset.confirm" } });
    expect(entry.actor).toBe("known@example.com");
  });

  it("works once: a second use is refused and changes nothing", async () => {
    await requestReset("known@example.com");
    const token = await tokenFromMail();
    expect((await confirm(token)).status).toBe(204);
    const again = await confirm(token, "yet another passphrase");
    expect(again.status).toBe(401);
    expect(again.body.error.code).toBe("unauthorized");
    expect((await request(t.app).post("/auth/login").send({ email: "known@example.com", password: NEW_PASSWORD })).status).toBe(200);
  });

  it("works once even when two uses race", async () => {
    await requestReset("known@example.com");
    const token = await tokenFromMail();
    const results = await Promise.all([confirm(token, "first racer passphrase"), confirm(token, "second racer passphrase")]);
    expect(results.map((res) => res.status).sort()).toEqual([204, 401]);
  });

  it("expires after 30 minutes", async () => {
    await requestReset("known@example.com");
    t.clock.advance(30 * 60 + 1);
    expect((await confirm(await tokenFromMail())).status).toBe(401);
    expect((await request(t.app).post("/auth/login").send({ email: "known@example.com", password: TEST_PASSWORD })).status).toBe(200);
  });

  it("still works just before 30 minutes", async () => {
    await requestReset("known@example.com");
    t.clock.advance(29 * 60);
    expect((await confirm(await tokenFromMail())).status).toBe(204);
  });

  it("signs the user out everywhere", async () => {
    const session = await signIn(t.app, "known@example.com");
    await requestReset("known@example.com");
    expect((await confirm(await tokenFromMail())).status).toBe(204);
    expect((await request(t.app).get("/auth/me").set("Cookie", session.cookie)).status).toBe(401);
    expect((await request(t.app).post("/auth/refresh").set("Cookie", session.cookie).set("X-CSRF-Token", session.csrf)).status).toBe(401);
  });

  it("invalidates the user's other pending links", async () => {
    await requestReset("known@example.com");
    const first = await tokenFromMail();
    t.clock.advance(301); // past PASSWORD_RESET_MAIL_INTERVAL_SECONDS: the next request mails a new link
    await requestReset("known@example.com");
    const second = await tokenFromMail();
    expect(second).not.toBe(first);
    expect((await confirm(second)).status).toBe(204);
    expect((await confirm(first)).status).toBe(401);
  });

  it("refuses a disabled user's link", async () => {
    await requestReset("known@example.com");
    await database.db.user.updateMany({ data: { disabledAt: new Date() } });
    expect((await confirm(await tokenFromMail())).status).toBe(401);
  });

  it.each([
    ["garbage", async () => "garbage"],
    ["an unknown id", async () => `3f0e8a3c-1111-4222-8333-444455556666.${"A".repeat(43)}`],
    ["a real id with a wrong secret", async () => `${(await tokenFromMail()).split(".")[0]}.${"A".repeat(43)}`],
  ])("refuses %s with 401", async (_case, token) => {
    await requestReset("known@example.com");
    expect((await confirm(await token())).status).toBe(401);
    expect(await database.db.passwordResetToken.count({ where: { usedAt: { not: null } } })).toBe(0);
  });

  it("refuses a weak password with 400 and leaves the link usable", async () => {
    await requestReset("known@example.com");
    const token = await tokenFromMail();
    const res = await confirm(token, "short");
    expect(res.status).toBe(400);
    expect(res.body.error.details.map((issue: { path: string }) => issue.path)).toEqual(["password"]);
    expect((await confirm(token)).status).toBe(204);
  });

  it("needs no session, and a session does not replace the token", async () => {
    const admin = await signedInUser(t, "admin");
    const res = await request(t.app).post("/auth/password-reset/confirm").set("Cookie", admin.cookie).send({ password: NEW_PASSWORD });
    expect(res.status).toBe(400);
  });
});

describe("POST /auth/password-reset/check", () => {
  const check = (token: string) => request(t.app).post("/auth/password-reset/check").send({ token });

  beforeEach(async () => {
    await createUser(database.db, { email: "known@example.com" });
  });

  it("accepts a usable link without using it: the password can still be set with it", async () => {
    await requestReset("known@example.com");
    const token = await tokenFromMail();
    const res = await check(token);
    expect(res.status).toBe(200);
    expect(PasswordResetCheckResponse.parse(res.body)).toEqual({
      valid: true,
      expiresAt: (await database.db.passwordResetToken.findFirstOrThrow()).expiresAt.toISOString(),
    });
    expect((await check(token)).status).toBe(200);
    expect((await confirm(token)).status).toBe(204);
  });

  it.each([
    ["used", async (token: string) => void (await confirm(token))],
    ["expired", async () => t.clock.advance(30 * 60 + 1)],
    ["of a disabled user", async () => void (await database.db.user.updateMany({ data: { disabledAt: new Date() } }))],
  ])("says a link %s is not valid, as the confirmation would refuse it", async (_name, spoil) => {
    await requestReset("known@example.com");
    const token = await tokenFromMail();
    await spoil(token);
    const res = await check(token);
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ valid: false, expiresAt: null });
    expect((await confirm(token, "one more new passphrase")).status).toBe(401);
  });

  it("says an unknown or malformed token is not valid, and refuses an empty one with 400", async () => {
    await requestReset("known@example.com");
    const [id] = (await tokenFromMail()).split(".");
    expect((await check(`${id}.${"A".repeat(43)}`)).body).toEqual({ valid: false, expiresAt: null });
    expect((await check("not-a-token")).body).toEqual({ valid: false, expiresAt: null });
    const empty = await check("");
    expect(empty.status).toBe(400);
    expect(empty.body.error.code).toBe("validation_failed");
  });

  it("is rate-limited per address like sign-in", async () => {
    t = createTestApp(database.db, { env: { RATE_LIMIT_LOGIN_PER_MINUTE: "2" } });
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++) statuses.push((await check("not-a-token")).status);
    expect(statuses).toEqual([200, 200, 429]);
  });
});
