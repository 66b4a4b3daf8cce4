import { randomUUID } from "node:crypto";
import request from "supertest";
import { handleAllPasswordResetRequests } from "./password-reset.service";
import { type TestApp, type TestDatabase, createTestApp, createTestDatabase, resetTables } from "../../test";
import { TEST_PASSWORD, createUser } from "../../test/sessions";

// Sign-in and reset limits that hold per account, whatever address the attempts come
// from, and the client address itself, which only the one trusted proxy hop may name.

let database: TestDatabase;
let t: TestApp;

beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(() => database.close());
beforeEach(async () => {
  await resetTables(database.db);
  // The per-address limits stay out of the way: every attempt below comes from a new address.
  t = createTestApp(database.db, { env: { RATE_LIMIT_LOGIN_PER_MINUTE: "1000", RATE_LIMIT_PASSWORD_RESET_PER_HOUR: "1000" } });
});

let addresses = 0;
/** A fresh client address, as the trusted proxy (supertest's loopback socket) reports it. */
const fromNewAddress = () => `10.0.${Math.floor(++addresses / 250)}.${(addresses % 250) + 1}`;

const loginFrom = (address: string, email: string, password: string) =>
  request(t.app).post("/auth/login").set("X-Forwarded-For", address).send({ email, password });
const login = (email: string, password: string) => loginFrom(fromNewAddress(), email, password);

describe("failed sign-ins per account", () => {
  it("after 10 failures from one address, that address waits (429 + Retry-After), even with the right password; the owner elsewhere signs in", async () => {
    const user = await createUser(database.db, { email: "target@example.com" });
    const attacker = fromNewAddress();
    for (let i = 0; i < 10; i++) expect((await loginFrom(attacker, user.email, `wrong password ${i}`)).status).toBe(401);
    const refused = await loginFrom(attacker, user.email, TEST_PASSWORD);
    expect(refused.status).toBe(429);
    expect(refused.body.error.code).toBe("rate_limited");
    expect(Number(refused.headers["retry-after"])).toBe(30);
    // The attacker keeps trying once a second: the owner, from another address, is not locked out.
    for (let i = 0; i < 5; i++) await loginFrom(attacker, user.email, "wrong password");
    expect((await login(user.email, TEST_PASSWORD)).status).toBe(200);
  });

  // With 2 free failures per address, the account-wide backoff starts at 20 failures.
  const withTwoFreeFailures = () => {
    t = createTestApp(database.db, {
      env: {
        RATE_LIMIT_LOGIN_PER_MINUTE: "1000",
        RATE_LIMIT_PASSWORD_RESET_PER_HOUR: "1000",
        RATE_LIMIT_LOGIN_FAILURES_PER_ACCOUNT: "2",
      },
    });
  };

  it("caps guessing spread over many addresses: after 10 times the limit in all, an address that failed waits; the owner at a fresh one signs in", async () => {
    withTwoFreeFailures();
    const user = await createUser(database.db, { email: "spread@example.com" });
    const attackers = Array.from({ length: 20 }, fromNewAddress);
    for (const attacker of attackers) expect((await loginFrom(attacker, user.email, "wrong password")).status).toBe(401);
    // Each attacking address has failed once only, under its own limit, yet waits.
    const refused = await loginFrom(attackers[0]!, user.email, TEST_PASSWORD);
    expect(refused.status).toBe(429);
    expect(Number(refused.headers["retry-after"])).toBe(30);
    // The owner, from an address that never failed here, is not locked out.
    expect((await login(user.email, TEST_PASSWORD)).status).toBe(200);
  });

  it("while a distributed guess is held back, a fresh address gets one try, then waits", async () => {
    withTwoFreeFailures();
    const user = await createUser(database.db, { email: "fresh@example.com" });
    for (let i = 0; i < 20; i++) await login(user.email, "wrong password");
    const fresh = fromNewAddress();
    expect((await loginFrom(fresh, user.email, "another guess")).status).toBe(401);
    expect((await loginFrom(fresh, user.email, "and another")).status).toBe(429);
  });

  it("counts IPv6 clients by their /56: a host cycling through its subnet is one address", async () => {
    withTwoFreeFailures();
    const user = await createUser(database.db, { email: "v6@example.com" });
    const statuses: number[] = [];
    for (let i = 1; i <= 4; i++) statuses.push((await loginFrom(`2001:db8:1:2::${i.toString(16)}`, user.email, "wrong password")).status);
    expect(statuses).toEqual([401, 401, 429, 429]);
    // Another /56 is another address.
    expect((await loginFrom("2001:db8:2::1", user.email, TEST_PASSWORD)).status).toBe(200);
  });

  it("backs off, doubling, instead of locking the account out", async () => {
    const user = await createUser(database.db, { email: "owner@example.com" });
    const address = fromNewAddress();
    for (let i = 0; i < 10; i++) await loginFrom(address, user.email, "wrong password");
    expect((await loginFrom(address, user.email, TEST_PASSWORD)).status).toBe(429);
    t.clock.advance(31);
    // After the wait one attempt goes through; it fails, and the next wait is twice as long.
    expect((await loginFrom(address, user.email, "wrong password")).status).toBe(401);
    const doubled = await loginFrom(address, user.email, TEST_PASSWORD);
    expect(doubled.status).toBe(429);
    expect(Number(doubled.headers["retry-after"])).toBe(60);
    t.clock.advance(61);
    // The owner gets in after the wait, and that clears the count.
    expect((await loginFrom(address, user.email, TEST_PASSWORD)).status).toBe(200);
    expect((await loginFrom(address, user.email, "wrong password")).status).toBe(401);
    expect((await loginFrom(address, user.email, TEST_PASSWORD)).status).toBe(200);
  });

  it("counts unknown emails alike and leaves other accounts alone", async () => {
    const other = await createUser(database.db, { email: "other@example.com" });
    const address = fromNewAddress();
    for (let i = 0; i < 10; i++) expect((await loginFrom(address, "nobody@example.com", "wrong password")).status).toBe(401);
    expect((await loginFrom(address, "nobody@example.com", "wrong password")).status).toBe(429);
    expect((await loginFrom(address, other.email, TEST_PASSWORD)).status).toBe(200);
  });

  it("is forgotten 15 minutes after the last failure", async () => {
    const user = await createUser(database.db, { email: "later@example.com" });
    const address = fromNewAddress();
    for (let i = 0; i < 10; i++) await loginFrom(address, user.email, "wrong password");
    t.clock.advance(15 * 60 + 1);
    for (let i = 0; i < 10; i++) expect((await loginFrom(address, user.email, "wrong password")).status).toBe(401);
  });
});

const withRedis = process.env.REDIS_URL ? it : it.skip;
withRedis("failed sign-ins are counted in Redis, one count for every instance", async () => {
  const { default: Redis } = await import("ioredis");
  const redis = new Redis(`${process.env.REDIS_URL}/8`);
  try {
    const env = { RATE_LIMIT_LOGIN_PER_MINUTE: "1000" };
    const instances = [createTestApp(database.db, { env, redis }), createTestApp(database.db, { env, redis })];
    // Counters outlive the test for their window: an email of this run's own.
    const user = await createUser(database.db, { email: `${randomUUID()}@example.com` });
    const address = fromNewAddress();
    for (let i = 0; i < 10; i++) {
      const res = await request(instances[i % 2]!.app)
        .post("/auth/login")
        .set("X-Forwarded-For", address)
        .send({ email: user.email, password: "wrong" });
      expect(res.status).toBe(401);
    }
    for (const instance of instances) {
      expect(
        (await request(instance.app).post("/auth/login").set("X-Forwarded-For", address).send({ email: user.email, password: TEST_PASSWORD })).status,
      ).toBe(429);
    }
  } finally {
    redis.disconnect();
  }
});

describe("password reset requests per account", () => {
  const resetFrom = (address: string, email: string) => request(t.app).post("/auth/password-reset").set("X-Forwarded-For", address).send({ email });
  const resetMailsTo = async (email: string) => (await t.outbox()).filter((mail) => mail.to.includes(email));
  const tokenOf = (text: string) => decodeURIComponent(/reset-password\?token=(\S+)/.exec(text)![1]!);

  it("send one mail an interval, whatever the client address, and answer every request alike", async () => {
    const user = await createUser(database.db, { email: "reset@example.com" });
    const statuses: number[] = [];
    for (let i = 0; i < 5; i++) statuses.push((await resetFrom(fromNewAddress(), user.email)).status);
    expect(statuses).toEqual([202, 202, 202, 202, 202]);
    await handleAllPasswordResetRequests(t.deps);
    expect(await resetMailsTo(user.email)).toHaveLength(1);
    expect(await database.db.passwordResetToken.count({ where: { userId: user.id } })).toBe(1);
    const skipped = await database.db.auditLog.findMany({ where: { action: "auth.password_reset.request", targetId: user.id } });
    expect(skipped.filter((entry) => (entry.details as { skipped?: string }).skipped?.includes("still valid"))).toHaveLength(4);

    // Once the interval has passed, the next request mails a new link.
    t.clock.advance(301);
    await resetFrom(fromNewAddress(), user.email);
    await handleAllPasswordResetRequests(t.deps);
    expect(await resetMailsTo(user.email)).toHaveLength(2);
  });

  it("cannot be used to keep the owner from resetting: the link mailed for an attacker's request works", async () => {
    const user = await createUser(database.db, { email: "victim@example.com" });
    // The attacker asks first, from many addresses, and keeps asking...
    for (let i = 0; i < 4; i++) await resetFrom(fromNewAddress(), user.email);
    await handleAllPasswordResetRequests(t.deps);
    // ...the owner's own request is answered like theirs,
    expect((await resetFrom(fromNewAddress(), user.email)).status).toBe(202);
    await handleAllPasswordResetRequests(t.deps);
    // and the one link in the owner's inbox sets the password.
    const mails = await resetMailsTo(user.email);
    expect(mails).toHaveLength(1);
    const confirmed = await request(t.app)
      .post("/auth/password-reset/confirm")
      .send({ token: tokenOf(mails[0]!.text!), password: "a new password 123" });
    expect(confirmed.status).toBe(204);

    // A used link no longer holds the next request back.
    await resetFrom(fromNewAddress(), user.email);
    await handleAllPasswordResetRequests(t.deps);
    expect(await resetMailsTo(user.email)).toHaveLength(2);
  });

  it("send one mail when two instances handle requests for one account at once", async () => {
    const user = await createUser(database.db, { email: "race@example.com" });
    for (let i = 0; i < 40; i++) await resetFrom(fromNewAddress(), user.email);
    const other = createTestApp(database.db);
    await Promise.all([handleAllPasswordResetRequests(t.deps), handleAllPasswordResetRequests(other.deps), handleAllPasswordResetRequests(t.deps)]);
    expect(await database.db.passwordResetToken.count({ where: { userId: user.id } })).toBe(1);
    expect(await resetMailsTo(user.email)).toHaveLength(1);
  });
});

describe("the client address behind the trusted proxy", () => {
  it("is the hop the proxy appended, never what the client wrote before it", async () => {
    const user = await createUser(database.db, { email: "ip@example.com" });
    // A client forging X-Forwarded-For through a proxy on this host: the proxy appends the
    // peer it saw (here the same host). Only that entry counts.
    const statuses: number[] = [];
    for (let i = 0; i < 12; i++) {
      statuses.push(
        (
          await request(t.app)
            .post("/auth/login")
            .set("X-Forwarded-For", `203.0.113.${i + 1}, 127.0.0.1`)
            .send({ email: user.email, password: "wrong password" })
        ).status,
      );
    }
    const entries = await database.db.auditLog.findMany({ where: { action: "auth.login_failed" } });
    expect(new Set(entries.map((entry) => entry.ip))).toEqual(new Set(["127.0.0.1"]));
    expect(statuses.slice(0, 10).every((status) => status === 401)).toBe(true);
  });

  it("is counted against the per-address login limit however many forged addresses precede it", async () => {
    const limited = createTestApp(database.db, { env: { RATE_LIMIT_LOGIN_PER_MINUTE: "5", RATE_LIMIT_LOGIN_FAILURES_PER_ACCOUNT: "1000" } });
    const user = await createUser(database.db, { email: "forger@example.com" });
    const statuses: number[] = [];
    for (let i = 0; i < 7; i++) {
      statuses.push(
        (
          await request(limited.app)
            .post("/auth/login")
            .set("X-Forwarded-For", `198.51.100.${i + 1}, 127.0.0.1`)
            .send({ email: user.email, password: "wrong password" })
        ).status,
      );
    }
    expect(statuses).toEqual([401, 401, 401, 401, 401, 429, 429]);
  });
});
