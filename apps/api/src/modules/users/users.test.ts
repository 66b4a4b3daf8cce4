import { InviteUserResponse, ListUsersResponse } from "@mdm/contracts";
import request from "supertest";
import { type TestApp, type TestDatabase, createTestApp, createTestDatabase, resetTables } from "../../test";
import { type SignedIn, TEST_PASSWORD, asBrowser, createUser, signIn, signedInUser } from "../../test/sessions";
import { updateUser } from "./users.service";

let database: TestDatabase;
let t: TestApp;
let admin: SignedIn & { email: string };

beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(() => database.close());
beforeEach(async () => {
  await resetTables(database.db);
  t = createTestApp(database.db, { env: { WEB_URL: "https://mdm.example.com" } });
  admin = await signedInUser(t, "admin", "admin@example.com");
});

const auditActions = async () => (await database.db.auditLog.findMany({ orderBy: { id: "asc" } })).map((entry) => entry.action);

function linkToken(text: string): string {
  const match = /https:\/\/mdm\.example\.com\/reset-password\?token=(\S+)/.exec(text);
  if (!match) throw new Error(`no link in: ${text}`);
  return decodeURIComponent(match[1]!);
}

describe("GET /admin/users", () => {
  it("lists users, oldest first, without password hashes", async () => {
    await createUser(database.db, { email: "v@example.com", role: "viewer" });
    const res = await asBrowser(t.app, admin, "get", "/admin/users");
    expect(res.status).toBe(200);
    const { users } = ListUsersResponse.parse(res.body);
    expect(users.map((user) => [user.email, user.role])).toEqual([
      ["admin@example.com", "admin"],
      ["v@example.com", "viewer"],
    ]);
    expect(JSON.stringify(res.body)).not.toMatch(/passwordHash|\$2[aby]\$/);
  });

  it.each(["viewer", "operator"] as const)("refuses a %s with 403", async (role) => {
    const user = await signedInUser(t, role);
    const res = await asBrowser(t.app, user, "get", "/admin/users");
    expect(res.status).toBe(403);
    expect(res.body.error.code).toBe("forbidden");
  });

  it("refuses the admin key: user management is for signed-in admins", async () => {
    expect((await request(t.app).get("/admin/users")).status).toBe(401);
  });
});

describe("POST /admin/users (invite)", () => {
  it("without a mail provider, records the invitation in the outbox, says so, and its link completes the invitation", async () => {
    const res = await asBrowser(t.app, admin, "post", "/admin/users").send({ email: "New.Hire@Example.com", name: "New Hire", role: "operator" });
    expect(res.status).toBe(201);
    expect(InviteUserResponse.parse(res.body)).toMatchObject({
      email: "new.hire@example.com",
      name: "New Hire",
      role: "operator",
      pending: true,
      disabled: false,
      mail: "recorded",
    });

    expect(await t.sendMail()).toBe(1);
    const [mail, ...others] = await t.outbox();
    expect(others).toHaveLength(0);
    expect(mail).toMatchObject({
      kind: "invite",
      to: ["new.hire@example.com"],
      subject: "You are invited to Keelson",
      status: "recorded",
      provider: "none",
      attempts: 1,
    });
    expect(mail!.text).toContain("admin@example.com invited you");
    expect((await request(t.app).post("/auth/login").send({ email: "new.hire@example.com", password: TEST_PASSWORD })).status).toBe(401);

    const confirm = await request(t.app)
      .post("/auth/password-reset/confirm")
      .send({ token: linkToken(mail!.text!), password: TEST_PASSWORD });
    expect(confirm.status).toBe(204);
    const session = await signIn(t.app, "new.hire@example.com");
    const me = await request(t.app).get("/auth/me").set("Cookie", session.cookie);
    expect(me.body).toMatchObject({ role: "operator", pending: false });
    expect(await auditActions()).toEqual(["auth.login", "user.invite", "auth.login_failed", "auth.password_reset.confirm", "auth.login"]);
    expect((await database.db.auditLog.findFirstOrThrow({ where: { action: "user.invite" } })).details).toMatchObject({ mail: "recorded" });
  });

  it("with a mail provider, queues the invitation and the worker sends it, then erases its link from the outbox", async () => {
    const sent: Array<{ to: string[]; text: string }> = [];
    t.deps.mailer = {
      name: "smtp",
      send: async (message) => {
        sent.push(message);
        return { id: "<1@test>" };
      },
    };
    const res = await asBrowser(t.app, admin, "post", "/admin/users").send({ email: "queued@example.com", role: "viewer" });
    expect(res.status).toBe(201);
    expect(res.body.mail).toBe("queued");
    expect(await t.outbox()).toMatchObject([{ status: "queued", attempts: 0 }]);

    await t.sendMail();
    expect(sent).toEqual([expect.objectContaining({ to: ["queued@example.com"], text: expect.stringContaining("/reset-password?token=") })]);
    expect(await t.outbox()).toMatchObject([{ status: "sent", provider: "smtp", providerMessageId: "<1@test>", text: null, nextAttemptAt: null }]);
    expect(
      (
        await request(t.app)
          .post("/auth/password-reset/confirm")
          .send({ token: linkToken(sent[0]!.text), password: TEST_PASSWORD })
      ).status,
    ).toBe(204);
  });

  it("keeps the link valid for 7 days, not longer", async () => {
    await asBrowser(t.app, admin, "post", "/admin/users").send({ email: "late@example.com", role: "viewer" });
    const token = linkToken((await t.outbox())[0]!.text!);
    t.clock.advance(7 * 24 * 3600 + 1);
    expect((await request(t.app).post("/auth/password-reset/confirm").send({ token, password: TEST_PASSWORD })).status).toBe(401);
  });

  it("refuses a duplicate email, in any case, with 409 and mails nobody", async () => {
    await createUser(database.db, { email: "taken@example.com" });
    const res = await asBrowser(t.app, admin, "post", "/admin/users").send({ email: "TAKEN@example.com", role: "viewer" });
    expect(res.status).toBe(409);
    expect(res.body.error.code).toBe("conflict");
    expect(await t.outbox()).toHaveLength(0);
  });

  it("keeps the invitation when the provider is down: the mail stays queued and is retried later", async () => {
    t.deps.mailer = { name: "smtp", send: async () => Promise.reject(new Error("smtp down")) };
    const res = await asBrowser(t.app, admin, "post", "/admin/users").send({ email: "x@example.com", role: "viewer" });
    expect(res.status).toBe(201);
    expect(res.body.mail).toBe("queued");
    await t.sendMail();
    const [mail] = await t.outbox();
    expect(mail).toMatchObject({ status: "queued", attempts: 1, lastError: "smtp down" });
    expect(mail!.nextAttemptAt!.getTime()).toBeGreaterThan(t.clock.now().getTime());
    expect(await database.db.user.count({ where: { email: "x@example.com" } })).toBe(1);
  });

  it("refuses an operator with 403 and creates nothing", async () => {
    const operator = await signedInUser(t, "operator");
    const res = await asBrowser(t.app, operator, "post", "/admin/users").send({ email: "x@example.com", role: "admin" });
    expect(res.status).toBe(403);
    expect(await database.db.user.count({ where: { email: "x@example.com" } })).toBe(0);
    expect(await t.outbox()).toHaveLength(0);
  });

  it.each([
    ["an unknown role", { email: "x@example.com", role: "root" }],
    ["no role", { email: "x@example.com" }],
    ["a password (invitees choose their own)", { email: "x@example.com", role: "viewer", password: TEST_PASSWORD }],
  ])("refuses %s with 400", async (_case, body) => {
    expect((await asBrowser(t.app, admin, "post", "/admin/users").send(body)).status).toBe(400);
  });
});

describe("PATCH /admin/users/{userId}", () => {
  const patch = (userId: string, body: unknown, as: SignedIn = admin) => asBrowser(t.app, as, "patch", `/admin/users/${userId}`).send(body as object);

  it("changes the role and records the change", async () => {
    const user = await createUser(database.db, { role: "viewer" });
    const res = await patch(user.id, { role: "operator" });
    expect(res.status).toBe(200);
    expect(res.body.role).toBe("operator");
    const entry = await database.db.auditLog.findFirstOrThrow({ where: { action: "user.role_change" } });
    expect(entry).toMatchObject({ actor: "admin@example.com", targetType: "user", targetId: user.id, details: { from: "viewer", to: "operator" } });
  });

  it("disables a user: their sessions end and they cannot sign in; enabling lets them back", async () => {
    const user = await createUser(database.db, { role: "operator" });
    const session = await signIn(t.app, user.email);
    expect((await patch(user.id, { disabled: true })).body.disabled).toBe(true);
    expect((await request(t.app).get("/auth/me").set("Cookie", session.cookie)).status).toBe(401);
    expect((await database.db.session.findFirstOrThrow({ where: { userId: user.id } })).revokedAt).not.toBeNull();
    expect((await request(t.app).post("/auth/login").send({ email: user.email, password: TEST_PASSWORD })).status).toBe(401);

    expect((await patch(user.id, { disabled: false })).body.disabled).toBe(false);
    expect((await request(t.app).post("/auth/login").send({ email: user.email, password: TEST_PASSWORD })).status).toBe(200);
    expect(await auditActions()).toEqual(expect.arrayContaining(["user.disable", "user.enable"]));
  });

  it("renames, and clears a name with null", async () => {
    const user = await createUser(database.db, { name: "Old" });
    expect((await patch(user.id, { name: "New" })).body.name).toBe("New");
    expect((await patch(user.id, { name: null })).body.name).toBeNull();
  });

  it("refuses to demote or disable the last active admin with 409", async () => {
    for (const body of [{ role: "operator" }, { disabled: true }]) {
      const res = await patch(admin.userId, body);
      expect(res.status).toBe(409);
      expect(res.body.error.code).toBe("conflict");
    }
    expect(await database.db.user.findUniqueOrThrow({ where: { id: admin.userId } })).toMatchObject({ role: "admin", disabledAt: null });
  });

  it("does not count a disabled or invited admin as another active one", async () => {
    await createUser(database.db, { role: "admin", disabled: true });
    await createUser(database.db, { role: "admin", password: null });
    expect((await patch(admin.userId, { role: "viewer" })).status).toBe(409);
  });

  it("lets an admin step down when another admin remains", async () => {
    await createUser(database.db, { role: "admin" });
    expect((await patch(admin.userId, { role: "viewer" })).status).toBe(200);
  });

  it("lets only one of two admins demoting each other at once succeed", async () => {
    // Called below the routes: through them, the loser may already be refused as a non-admin.
    const other = await createUser(database.db, { role: "admin" });
    const results = await Promise.allSettled([
      updateUser(t.deps, other.id, { role: "viewer" }, { name: "admin@example.com" }),
      updateUser(t.deps, admin.userId, { role: "viewer" }, { name: other.email }),
    ]);
    expect(results.map((result) => result.status).sort()).toEqual(["fulfilled", "rejected"]);
    const refusal = results.find((result) => result.status === "rejected") as PromiseRejectedResult;
    expect(refusal.reason).toMatchObject({ status: 409, code: "conflict" });
    expect(await database.db.user.count({ where: { role: "admin" } })).toBe(1);
  });

  it("answers 404 for an unknown user", async () => {
    expect((await patch("3f0e8a3c-1111-4222-8333-444455556666", { role: "viewer" })).status).toBe(404);
  });

  it.each([
    ["an empty body", {}],
    ["an unknown field", { email: "x@example.com" }],
    ["an unknown role", { role: "owner" }],
  ])("refuses %s with 400", async (_case, body) => {
    const user = await createUser(database.db);
    expect((await patch(user.id, body)).status).toBe(400);
  });

  it("refuses a viewer with 403 and changes nothing", async () => {
    const viewer = await signedInUser(t, "viewer");
    const res = await patch(viewer.userId, { role: "admin" }, viewer);
    expect(res.status).toBe(403);
    expect((await database.db.user.findUniqueOrThrow({ where: { id: viewer.userId } })).role).toBe("viewer");
  });
});
