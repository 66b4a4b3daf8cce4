import { Writable } from "node:stream";
import request from "supertest";
import { ListOutboxResponse } from "@mdm/contracts";
import winston from "winston";
import { createLogger } from "../lib/logger";
import { type TestApp, type TestDatabase, adminRequest, createTestApp, createTestDatabase, resetTables } from "../test";
import { asBrowser, signedInUser } from "../test/sessions";
import { startTestSmtpServer } from "../test/test-smtp";
import { type MailMessage, SmtpMailer } from "./mailer";
import { enqueueMail, processDueMails, pruneOutbox, startMailWorker } from "./outbox";

let database: TestDatabase;
let t: TestApp;

beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(() => database.close());
beforeEach(async () => {
  await resetTables(database.db);
  t = createTestApp(database.db, { env: { WEB_URL: "https://mdm.example.com", MAIL_MAX_ATTEMPTS: "3", MAIL_RETRY_BASE_SECONDS: "30" } });
});

const INVITE = {
  to: ["new@example.com"],
  subject: "You are invited to Keelson",
  text: "Choose your password here: https://mdm.example.com/reset-password?token=abc.secret\nThanks.\n",
};

const enqueue = (message: MailMessage = INVITE, kind: "invite" | "alert" = "invite") => enqueueMail(database.db, kind, message, t.clock.now());

function captureLogs() {
  const lines: Array<Record<string, unknown>> = [];
  const logger = createLogger("info");
  logger.clear();
  logger.add(
    new winston.transports.Stream({
      stream: new Writable({
        write: (chunk, _encoding, done) => {
          lines.push(JSON.parse(String(chunk)));
          done();
        },
      }),
    }),
  );
  t.deps.logger = logger;
  return lines;
}

describe("the mail worker without a provider", () => {
  it("marks due mails recorded and logs their recipients, subject and links at info", async () => {
    const lines = captureLogs();
    const row = await enqueue();
    expect(await processDueMails(t.deps)).toBe(1);
    expect(await database.db.outboxMail.findUniqueOrThrow({ where: { id: row.id } })).toMatchObject({
      status: "recorded",
      provider: "none",
      attempts: 1,
      nextAttemptAt: null,
      finishedAt: expect.any(Date),
      text: INVITE.text,
    });
    expect(lines).toContainEqual(
      expect.objectContaining({
        level: "info",
        message: expect.stringContaining("recorded, not sent"),
        mailId: row.id.toString(),
        to: ["new@example.com"],
        subject: "You are invited to Keelson",
        links: ["https://mdm.example.com/reset-password?token=abc.secret"],
      }),
    );
    expect(await processDueMails(t.deps)).toBe(0);
  });

  it("runs by itself once started, and says at start that mail is not being sent", async () => {
    const lines = captureLogs();
    const worker = startMailWorker(t.deps, { pollMs: 50 });
    try {
      await enqueue();
      for (let i = 0; i < 100 && (await database.db.outboxMail.count({ where: { status: "recorded" } })) === 0; i++)
        await new Promise((resolve) => setTimeout(resolve, 20));
      expect(await database.db.outboxMail.count({ where: { status: "recorded" } })).toBe(1);
      expect(lines).toContainEqual(expect.objectContaining({ level: "warn", message: expect.stringContaining("mail is not being sent") }));
    } finally {
      await worker.stop();
    }
  });
});

describe("the mail worker with SMTP", () => {
  it("sends a due mail to a real SMTP server and keeps its message id, not its link", async () => {
    const server = await startTestSmtpServer();
    t.deps.mailer = new SmtpMailer({ url: `smtp://127.0.0.1:${server.port}`, from: "fleet@example.com" });
    try {
      const row = await enqueue();
      await processDueMails(t.deps);
      expect(server.received).toEqual([expect.objectContaining({ to: ["new@example.com"], subject: INVITE.subject })]);
      expect(server.received[0]!.body.replace(/\r\n/g, "\n")).toBe(INVITE.text);
      const stored = await database.db.outboxMail.findUniqueOrThrow({ where: { id: row.id } });
      expect(stored).toMatchObject({ status: "sent", provider: "smtp", attempts: 1, lastError: null, text: null, nextAttemptAt: null });
      expect(stored.providerMessageId).toMatch(/^<.+>$/);
    } finally {
      t.deps.mailer?.close?.();
      await server.close();
    }
  });

  it("retries a mail the server refuses, with growing delays, then marks it failed after MAIL_MAX_ATTEMPTS", async () => {
    const server = await startTestSmtpServer({ refuse: { code: 451, message: "Mailbox over quota, try later" } });
    t.deps.mailer = new SmtpMailer({ url: `smtp://127.0.0.1:${server.port}`, from: "fleet@example.com" });
    try {
      const row = await enqueue();
      const stored = () => database.db.outboxMail.findUniqueOrThrow({ where: { id: row.id } });

      await processDueMails(t.deps);
      const first = await stored();
      expect(first).toMatchObject({ status: "queued", attempts: 1, lastError: expect.stringMatching(/451.*over quota/) });
      const firstDelay = (first.nextAttemptAt!.getTime() - t.clock.now().getTime()) / 1000;
      expect(firstDelay).toBeGreaterThan(30 * 0.8 - 1);
      expect(firstDelay).toBeLessThanOrEqual(30 * 1.2);
      expect(await processDueMails(t.deps)).toBe(0); // not due yet

      t.clock.advance(firstDelay + 1);
      await processDueMails(t.deps);
      const second = await stored();
      expect(second).toMatchObject({ status: "queued", attempts: 2 });
      const secondDelay = (second.nextAttemptAt!.getTime() - t.clock.now().getTime()) / 1000;
      expect(secondDelay).toBeGreaterThan(60 * 0.8 - 1);

      t.clock.advance(secondDelay + 1);
      await processDueMails(t.deps);
      expect(await stored()).toMatchObject({
        status: "failed",
        attempts: 3,
        nextAttemptAt: null,
        text: null,
        finishedAt: expect.any(Date),
        lastError: expect.stringMatching(/over quota/),
      });
      t.clock.advance(3600);
      expect(await processDueMails(t.deps)).toBe(0);
      expect(server.attempts()).toBe(3);
      expect(server.received).toHaveLength(0);
    } finally {
      t.deps.mailer?.close?.();
      await server.close();
    }
  });

  it("fails over to the next attempt when the server cannot be reached", async () => {
    const server = await startTestSmtpServer();
    await server.close();
    t.deps.mailer = new SmtpMailer({ url: `smtp://127.0.0.1:${server.port}`, from: "fleet@example.com" });
    const row = await enqueue();
    await processDueMails(t.deps);
    expect(await database.db.outboxMail.findUniqueOrThrow({ where: { id: row.id } })).toMatchObject({
      status: "queued",
      attempts: 1,
      lastError: expect.stringMatching(/ECONNREFUSED/),
    });
  });
});

describe("claiming", () => {
  it("never hands one mail to two workers", async () => {
    for (let i = 0; i < 30; i++) await enqueue({ ...INVITE, to: [`user${i}@example.com`] });
    const sends: string[] = [];
    const slowProvider = (name: string) => ({
      name: "smtp" as const,
      send: async (message: MailMessage) => {
        await new Promise((resolve) => setTimeout(resolve, 5));
        sends.push(`${name}:${message.to[0]}`);
        return { id: `${name}-${sends.length}` };
      },
    });
    const [a, b] = await Promise.all([processDueMails({ ...t.deps, mailer: slowProvider("a") }), processDueMails({ ...t.deps, mailer: slowProvider("b") })]);
    expect(a + b).toBe(30);
    const recipients = sends.map((send) => send.split(":")[1]);
    expect(new Set(recipients).size).toBe(30);
    expect(await database.db.outboxMail.count({ where: { status: "sent" } })).toBe(30);
  });
});

describe("retention", () => {
  it("prunes finished mails older than MAIL_RETENTION_DAYS; queued ones and alerts stay", async () => {
    const old = await enqueue(INVITE, "alert");
    const stillQueued = await enqueue();
    await database.db.alert.create({ data: { kind: "group_offline", group: "north", subject: "s", recipients: ["ops@example.com"], outboxMailId: old.id } });
    await processDueMails(t.deps); // both recorded
    await database.db.outboxMail.update({ where: { id: stillQueued.id }, data: { status: "queued" } });
    t.clock.advance(31 * 24 * 3600);
    const recent = await enqueue();
    expect(await pruneOutbox(t.deps)).toBe(1);
    expect((await database.db.outboxMail.findMany({ orderBy: { id: "asc" } })).map((row) => row.id)).toEqual([stillQueued.id, recent.id]);
    expect(await database.db.alert.findFirstOrThrow()).toMatchObject({ outboxMailId: null });
  });
});

describe("GET /admin/mail/outbox", () => {
  it("lists the outbox newest first to an admin, says mail is not being sent, and shows the text of recorded mails only", async () => {
    const admin = await signedInUser(t, "admin", "admin@example.com");
    await enqueue({ ...INVITE, to: ["first@example.com"] });
    await processDueMails(t.deps);
    await enqueue({ ...INVITE, to: ["second@example.com"] });

    const res = await asBrowser(t.app, admin, "get", "/admin/mail/outbox");
    expect(res.status).toBe(200);
    const body = ListOutboxResponse.parse(res.body);
    expect(body).toMatchObject({ provider: "none", sending: false, nextCursor: null });
    expect(body.mails.map((mail) => [mail.to[0], mail.status, mail.text])).toEqual([
      ["second@example.com", "queued", null],
      ["first@example.com", "recorded", INVITE.text],
    ]);
  });

  it("says which provider sends, and pages with nextCursor", async () => {
    t.deps.mailer = { name: "resend", send: async () => ({ id: "re_1" }) };
    for (let i = 0; i < 5; i++) await enqueue({ ...INVITE, to: [`user${i}@example.com`] });
    const first = await adminRequest(t.app, "GET", "/admin/mail/outbox?limit=3");
    expect(first.status).toBe(200);
    expect(first.body).toMatchObject({ provider: "resend", sending: true });
    expect(first.body.mails.map((mail: { to: string[] }) => mail.to[0])).toEqual(["user4@example.com", "user3@example.com", "user2@example.com"]);
    const second = await adminRequest(t.app, "GET", `/admin/mail/outbox?limit=3&cursor=${first.body.nextCursor}`);
    expect(second.body.mails.map((mail: { to: string[] }) => mail.to[0])).toEqual(["user1@example.com", "user0@example.com"]);
    expect(second.body.nextCursor).toBeNull();
  });

  it.each(["viewer", "operator"] as const)("refuses a %s with 403: the outbox holds sign-in links", async (role) => {
    const user = await signedInUser(t, role);
    expect((await asBrowser(t.app, user, "get", "/admin/mail/outbox")).status).toBe(403);
  });

  it("refuses an anonymous caller with 401", async () => {
    expect((await request(t.app).get("/admin/mail/outbox")).status).toBe(401);
  });
});
