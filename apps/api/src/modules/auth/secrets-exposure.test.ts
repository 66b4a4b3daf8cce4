import { Writable } from "node:stream";
import type { Express } from "express";
import request from "supertest";
import { handleAllPasswordResetRequests } from "./password-reset.service";
import winston from "winston";
import { createApp } from "../../app";
import { createLogger } from "../../lib/logger";
import type { MailMessage } from "../../mail/mailer";
import { processDueMails } from "../../mail/outbox";
import { type TestDatabase, createTestApp, createTestDatabase, resetTables } from "../../test";
import { TEST_PASSWORD, setCookies, signedInFrom } from "../../test/sessions";

// Runs every auth and user flow with logging at debug level, then looks for any password,
// password hash or token (refresh, access, reset, invitation) in response bodies, response
// headers other than Set-Cookie (which carries the session cookies by design), the logs
// and the audit log. Mail goes through a provider here: only a server without one logs
// the links of the mails it records (see mail/outbox.test.ts).

let database: TestDatabase;

beforeAll(async () => {
  database = await createTestDatabase();
  await resetTables(database.db);
});
afterAll(() => database.close());

const NEW_PASSWORD = "the second passphrase";
const INVITEE_PASSWORD = "the invitee's passphrase";

it("never shows a password, a password hash or a token in a response, a log line or the audit log", async () => {
  const base = createTestApp(database.db, { env: { WEB_URL: "https://mdm.example.com" } });
  const lines: string[] = [];
  const logger = createLogger("debug");
  logger.clear();
  logger.add(
    new winston.transports.Stream({
      stream: new Writable({
        write: (chunk, _encoding, done) => {
          lines.push(String(chunk));
          done();
        },
      }),
    }),
  );
  const sent: MailMessage[] = [];
  const deps = {
    ...base.deps,
    logger,
    mailer: {
      name: "smtp" as const,
      send: async (message: MailMessage) => {
        sent.push(message);
        return { id: `<${sent.length}@test>` };
      },
    },
  };
  const app: Express = createApp(deps);

  const responses: request.Response[] = [];
  const secrets = new Set<string>([TEST_PASSWORD, NEW_PASSWORD, INVITEE_PASSWORD]);
  const call = async (res: request.Test) => {
    const done = await res;
    responses.push(done);
    for (const cookie of Object.values(setCookies(done))) if (cookie.value && !/^[A-Za-z0-9_-]{43}$/.test(cookie.value)) secrets.add(cookie.value);
    return done;
  };
  const linkToken = async () => {
    await processDueMails(deps);
    return decodeURIComponent(/token=(\S+)/.exec(sent.at(-1)!.text)![1]!);
  };

  const setup = await call(request(app).post("/auth/setup").send({ email: "admin@example.com", password: TEST_PASSWORD }));
  let admin = signedInFrom(setup);
  await call(request(app).post("/auth/login").send({ email: "admin@example.com", password: "a wrong password" }));
  await call(request(app).post("/auth/login").send({ email: "nobody@example.com", password: TEST_PASSWORD }));
  admin = signedInFrom(await call(request(app).post("/auth/login").send({ email: "admin@example.com", password: TEST_PASSWORD })));
  await call(request(app).get("/auth/me").set("Cookie", admin.cookie));
  admin = signedInFrom(await call(request(app).post("/auth/refresh").set("Cookie", admin.cookie).set("X-CSRF-Token", admin.csrf)));
  await call(request(app).get("/auth/ws-ticket").set("Cookie", admin.cookie));

  await call(request(app).post("/admin/users").set("Cookie", admin.cookie).set("X-CSRF-Token", admin.csrf).send({ email: "new@example.com", role: "viewer" }));
  const invitation = await linkToken();
  secrets.add(invitation);
  await call(request(app).post("/auth/password-reset/confirm").send({ token: invitation, password: INVITEE_PASSWORD }));
  await call(request(app).post("/auth/password-reset/confirm").send({ token: invitation, password: INVITEE_PASSWORD }));
  const users = await call(request(app).get("/admin/users").set("Cookie", admin.cookie));
  await call(
    request(app).patch(`/admin/users/${users.body.users[1].id}`).set("Cookie", admin.cookie).set("X-CSRF-Token", admin.csrf).send({ role: "operator" }),
  );

  await call(request(app).post("/auth/password-reset").send({ email: "admin@example.com" }));
  await handleAllPasswordResetRequests(deps);
  const reset = await linkToken();
  secrets.add(reset);
  await call(request(app).post("/auth/password-reset/confirm").send({ token: reset, password: "short" }));
  await call(request(app).post("/auth/password-reset/confirm").send({ token: reset, password: NEW_PASSWORD }));
  admin = signedInFrom(await call(request(app).post("/auth/login").send({ email: "admin@example.com", password: NEW_PASSWORD })));
  await call(request(app).get("/admin/audit-log?limit=200").set("Cookie", admin.cookie));
  await call(request(app).post("/auth/logout").set("Cookie", admin.cookie).set("X-CSRF-Token", admin.csrf));

  for (const user of await database.db.user.findMany()) secrets.add(user.passwordHash);
  for (const row of await database.db.passwordResetToken.findMany()) secrets.add(row.tokenHash);
  for (const row of await database.db.session.findMany()) secrets.add(row.refreshHash);
  expect(secrets.size).toBeGreaterThan(10);
  expect(responses.every((res) => res.status < 500)).toBe(true);
  expect(lines.length).toBeGreaterThanOrEqual(responses.length);

  const shown = [
    ...responses.map((res) => JSON.stringify({ body: res.body, text: res.text, headers: { ...res.headers, "set-cookie": undefined } })),
    ...lines,
    JSON.stringify(await database.db.auditLog.findMany(), (_key, value) => (typeof value === "bigint" ? value.toString() : value)),
  ].join("\n");
  for (const secret of secrets) expect({ secret, found: shown.includes(secret) }).toEqual({ secret, found: false });
  expect(shown).not.toMatch(/\$2[aby]\$\d\d\$/);
  expect(shown).not.toMatch(/passwordHash|refreshHash|tokenHash/);
  // Sent mails keep no link in the database either.
  expect(await database.db.outboxMail.findMany({ select: { status: true, text: true } })).toEqual([
    { status: "sent", text: null },
    { status: "sent", text: null },
  ]);
});
