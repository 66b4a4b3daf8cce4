import { ListAuditLogResponse } from "@mdm/contracts";
import request from "supertest";
import { type TestApp, type TestDatabase, createTestDatabase, resetTables } from "../../test";
import { type SignedIn, asBrowser, createAuthTestApp, signedInUser } from "../../test/sessions";

let database: TestDatabase;
let t: TestApp;
let viewer: SignedIn;

beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(() => database.close());
beforeEach(async () => {
  await resetTables(database.db);
  t = createAuthTestApp(database.db);
  viewer = await signedInUser(t, "viewer", "viewer@example.com");
  await database.db.auditLog.deleteMany();
});

const at = (minutes: number) => new Date(Date.UTC(2026, 10, 25, 12, minutes));

async function seed() {
  await database.db.auditLog.createMany({
    data: [
      { at: at(0), actor: "alice@example.com", action: "user.invite", targetType: "user", targetId: "u1", ip: "10.0.0.1", details: { role: "viewer" } },
      { at: at(1), actor: "bob@example.com", action: "auth.login", targetType: "user", targetId: "u2" },
      { at: at(2), actor: "alice@example.com", action: "command.create", targetType: "device", targetId: "d1" },
      // Two entries at the same instant: the id orders them.
      { at: at(3), actor: "alice@example.com", action: "auth.login", targetType: "user", targetId: "u1" },
      { at: at(3), actor: "bob@example.com", action: "auth.logout", targetType: "user", targetId: "u2" },
    ],
  });
}

const list = (query = "") => asBrowser(t.app, viewer, "get", `/admin/audit-log${query}`);

describe("GET /admin/audit-log", () => {
  it("lists entries newest first, with every field", async () => {
    await seed();
    const res = await list();
    expect(res.status).toBe(200);
    const { entries, nextCursor } = ListAuditLogResponse.parse(res.body);
    expect(entries.map((entry) => entry.action)).toEqual(["auth.logout", "auth.login", "command.create", "auth.login", "user.invite"]);
    expect(entries.at(-1)).toEqual({
      id: expect.stringMatching(/^\d+$/),
      at: at(0).toISOString(),
      actor: "alice@example.com",
      action: "user.invite",
      targetType: "user",
      targetId: "u1",
      ip: "10.0.0.1",
      details: { role: "viewer" },
    });
    expect(nextCursor).toBeNull();
  });

  it("pages with the cursor, without overlap or gap, through entries sharing a time", async () => {
    await seed();
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const res = await list(`?limit=2${cursor ? `&cursor=${cursor}` : ""}`);
      expect(res.status).toBe(200);
      const page = ListAuditLogResponse.parse(res.body);
      seen.push(...page.entries.map((entry) => entry.id));
      cursor = page.nextCursor;
      pages += 1;
    } while (cursor);
    expect(pages).toBe(3);
    const all = ListAuditLogResponse.parse((await list()).body).entries.map((entry) => entry.id);
    expect(seen).toEqual(all);
  });

  it.each([
    ["actor", "?actor=alice@example.com", ["auth.login", "command.create", "user.invite"]],
    ["action", "?action=auth.login", ["auth.login", "auth.login"]],
    ["target", "?targetType=user&targetId=u2", ["auth.logout", "auth.login"]],
    ["time range", `?from=${at(1).toISOString()}&to=${at(3).toISOString()}`, ["command.create", "auth.login"]],
    ["several at once", "?actor=bob@example.com&action=auth.login", ["auth.login"]],
  ])("filters by %s", async (_case, query, actions) => {
    await seed();
    const res = await list(query);
    expect(res.status).toBe(200);
    expect(res.body.entries.map((entry: { action: string }) => entry.action)).toEqual(actions);
  });

  it.each([
    ["an unknown cursor", "?cursor=999999"],
    ["a malformed cursor", "?cursor=abc"],
    ["a cursor past bigint", "?cursor=9999999999999999999"],
    ["a limit over 200", "?limit=201"],
    ["a malformed time", "?from=yesterday"],
    ["an unknown filter", "?user=alice"],
  ])("refuses %s with 400", async (_case, query) => {
    await seed();
    const res = await list(query);
    expect(res.status).toBe(400);
    expect(res.body.error.code).toBe("validation_failed");
  });

  it("is open to every signed-in role", async () => {
    for (const role of ["operator", "admin"] as const) {
      const user = await signedInUser(t, role);
      expect((await asBrowser(t.app, user, "get", "/admin/audit-log")).status).toBe(200);
    }
  });

  it("refuses a request without a session with 401", async () => {
    expect((await request(t.app).get("/admin/audit-log")).status).toBe(401);
  });

  it("shows what the auth routes record, with the address", async () => {
    await request(t.app).post("/auth/login").send({ email: "viewer@example.com", password: "wrong password" });
    const { entries } = ListAuditLogResponse.parse((await list("?action=auth.login_failed")).body);
    expect(entries).toHaveLength(1);
    expect(entries[0]).toMatchObject({ actor: "viewer@example.com", details: { reason: "wrong_password" }, ip: expect.any(String) });
  });
});
