import request from "supertest";
import { type TestDatabase, createTestApp, createTestDatabase, resetTables } from "../../test";
import { TEST_PASSWORD } from "../../test/sessions";
import { parseCreateAdminArgs, runCreateAdmin } from "./create-admin-cli";

let database: TestDatabase;

beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(() => database.close());
beforeEach(() => resetTables(database.db));

describe("parseCreateAdminArgs", () => {
  it("takes --email, --name and --password, in both spellings", () => {
    expect(parseCreateAdminArgs(["--email", "Ops@Example.com", "--name=Ops", `--password=${TEST_PASSWORD}`], {})).toEqual({
      email: "ops@example.com",
      name: "Ops",
      password: TEST_PASSWORD,
    });
  });

  it("falls back to EMAIL, NAME and PASSWORD", () => {
    expect(parseCreateAdminArgs([], { EMAIL: "ops@example.com", PASSWORD: TEST_PASSWORD })).toEqual({ email: "ops@example.com", password: TEST_PASSWORD });
  });

  it.each([
    ["no email", [], { PASSWORD: TEST_PASSWORD }, /email/],
    ["a weak password", ["--email", "ops@example.com"], { PASSWORD: "short" }, /password/],
    ["an unknown argument", ["--role", "viewer"], {}, /unknown argument/],
  ])("refuses %s with a usage line", (_case, argv, vars, message) => {
    expect(() => parseCreateAdminArgs(argv as string[], vars)).toThrow(message);
    expect(() => parseCreateAdminArgs(argv as string[], vars)).toThrow(/usage: user:create-admin/);
  });
});

describe("runCreateAdmin", () => {
  const vars = { PASSWORD: TEST_PASSWORD, BCRYPT_COST: "10" };

  it("creates an admin who can sign in, and records it", async () => {
    const user = await runCreateAdmin(["--email", "ops@example.com"], { ...vars, DATABASE_URL: database.url });
    expect(user).toMatchObject({ email: "ops@example.com", role: "admin", pending: false });
    const t = createTestApp(database.db);
    expect((await request(t.app).post("/auth/login").send({ email: "ops@example.com", password: TEST_PASSWORD })).status).toBe(200);
    expect(await database.db.auditLog.findFirstOrThrow({ where: { action: "user.create_admin" } })).toMatchObject({ actor: "cli", targetId: user.id });
    // Setup is no longer offered once the CLI made an admin.
    expect((await request(t.app).get("/auth/setup")).body).toEqual({ needed: false, tokenRequired: false });
  });

  it("refuses an email that is taken", async () => {
    await runCreateAdmin(["--email", "ops@example.com"], { ...vars, DATABASE_URL: database.url });
    await expect(runCreateAdmin(["--email", "OPS@example.com"], { ...vars, DATABASE_URL: database.url })).rejects.toThrow(/already/);
    expect(await database.db.user.count()).toBe(1);
  });
});
