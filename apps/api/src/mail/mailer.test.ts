import { type IncomingHttpHeaders, type Server, createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { parseEnv } from "../config/env";
import { startTestSmtpServer } from "../test/test-smtp";
import { ResendMailer, SmtpMailer, createMailer, mailProviderOf, smtpOptions } from "./mailer";

type Received = { method?: string; url?: string; headers: IncomingHttpHeaders; body: Record<string, unknown> };

/** A stand-in for Resend's API: records each request and answers with `reply`. */
async function startFakeResend(reply: (received: Received) => { status: number; body: unknown }) {
  const received: Received[] = [];
  const server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const entry = { method: req.method, url: req.url, headers: req.headers, body: JSON.parse(Buffer.concat(chunks).toString("utf8") || "{}") };
      received.push(entry);
      const { status, body } = reply(entry);
      res.writeHead(status, { "content-type": "application/json" });
      res.end(JSON.stringify(body));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    received,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

const MESSAGE = { to: ["ops@example.com"], subject: "3 devices went offline", text: "Till 1, Till 2, Till 3" };

describe("ResendMailer", () => {
  it("posts the message to /emails with the API key as bearer, and returns Resend's id", async () => {
    const fake = await startFakeResend(() => ({ status: 200, body: { id: "49a3999c-0ce1-4ea6-ab68-afcd6dc2e794" } }));
    try {
      const env = parseEnv({ RESEND_API_KEY: "re_test_123", RESEND_BASE_URL: fake.url, MAIL_FROM: "Fleet <fleet@example.com>" });
      const mailer = createMailer(env)!;
      expect(mailer).toBeInstanceOf(ResendMailer);
      expect(await mailer.send({ ...MESSAGE, html: "<p>Till 1</p>" })).toEqual({ id: "49a3999c-0ce1-4ea6-ab68-afcd6dc2e794" });

      expect(fake.received).toHaveLength(1);
      const [request] = fake.received;
      expect(request).toMatchObject({ method: "POST", url: "/emails" });
      expect(request!.headers.authorization).toBe("Bearer re_test_123");
      expect(request!.headers["content-type"]).toMatch(/^application\/json/);
      expect(request!.body).toEqual({
        from: "Fleet <fleet@example.com>",
        to: ["ops@example.com"],
        subject: MESSAGE.subject,
        text: MESSAGE.text,
        html: "<p>Till 1</p>",
      });
    } finally {
      await fake.close();
    }
  });

  it("throws when Resend refuses the mail (the SDK itself would not)", async () => {
    const fake = await startFakeResend(() => ({
      status: 422,
      body: { statusCode: 422, name: "validation_error", message: "Invalid `from` field." },
    }));
    try {
      const mailer = new ResendMailer({ apiKey: "re_test_123", from: "nobody", baseUrl: fake.url });
      await expect(mailer.send(MESSAGE)).rejects.toThrow(/validation_error: Invalid `from` field/);
    } finally {
      await fake.close();
    }
  });

  it("throws when Resend cannot be reached", async () => {
    const fake = await startFakeResend(() => ({ status: 200, body: {} }));
    await fake.close();
    const mailer = new ResendMailer({ apiKey: "re_test_123", from: "a@example.com", baseUrl: fake.url });
    await expect(mailer.send(MESSAGE)).rejects.toThrow();
  });
});

describe("SmtpMailer, against a real SMTP server on loopback", () => {
  it("delivers the message with its recipients, subject, text and html", async () => {
    const server = await startTestSmtpServer();
    const mailer = new SmtpMailer({ url: `smtp://127.0.0.1:${server.port}`, from: "Fleet <fleet@example.com>" });
    try {
      const text = "Choose your password here: https://mdm.example.com/reset-password?token=abc.DEF_-123%3D\nThe link works once.\n";
      const receipt = await mailer.send({ to: ["ops@example.com", "lead@example.com"], subject: "Device offline: Till 3", text, html: "<p>Till 3</p>" });
      expect(receipt.id).toMatch(/^<.+@.+>$/);
      expect(server.received).toHaveLength(1);
      const [mail] = server.received;
      expect(mail).toMatchObject({ from: "fleet@example.com", to: ["ops@example.com", "lead@example.com"], subject: "Device offline: Till 3" });
      expect(mail!.raw).toMatch(/^To: ops@example.com, lead@example.com$/m);
      expect(mail!.raw).toMatch(/^From: Fleet <fleet@example.com>$/m);
      expect(mail!.raw).toContain(receipt.id);
      expect(mail!.body.replace(/\r\n/g, "\n")).toBe(text);
      expect(mail!.raw).toMatch(/text\/html/);
    } finally {
      mailer.close();
      await server.close();
    }
  });

  it("signs in with the user and password of SMTP_URL, URL-decoded", async () => {
    const server = await startTestSmtpServer({ auth: { user: "mdm@example.com", pass: "p@ss:word/1 ok" } });
    const mailer = new SmtpMailer({ url: `smtp://mdm%40example.com:p%40ss%3Aword%2F1%20ok@127.0.0.1:${server.port}`, from: "fleet@example.com" });
    try {
      await mailer.send(MESSAGE);
      expect(server.received).toEqual([expect.objectContaining({ user: "mdm@example.com", to: ["ops@example.com"] })]);
    } finally {
      mailer.close();
      await server.close();
    }
  });

  it("throws when the server refuses the password, and sends nothing", async () => {
    const server = await startTestSmtpServer({ auth: { user: "mdm", pass: "right" } });
    const mailer = new SmtpMailer({ url: `smtp://mdm:wrong@127.0.0.1:${server.port}`, from: "fleet@example.com" });
    try {
      await expect(mailer.send(MESSAGE)).rejects.toThrow(/Invalid username or password/);
      expect(server.received).toHaveLength(0);
    } finally {
      mailer.close();
      await server.close();
    }
  });

  it("throws when the server refuses the message", async () => {
    const server = await startTestSmtpServer({ refuse: { code: 451, message: "Mailbox over quota, try later" } });
    const mailer = new SmtpMailer({ url: `smtp://127.0.0.1:${server.port}`, from: "fleet@example.com" });
    try {
      await expect(mailer.send(MESSAGE)).rejects.toThrow(/451.*over quota/);
    } finally {
      mailer.close();
      await server.close();
    }
  });

  it("reads SMTP_URL: smtps is TLS from the start, smtp upgrades and must when sending a password to another host", () => {
    expect(smtpOptions("smtps://u:p@mail.example.com")).toMatchObject({
      host: "mail.example.com",
      port: 465,
      secure: true,
      auth: { user: "u", pass: "p" },
      requireTLS: false,
    });
    expect(smtpOptions("smtp://u:p@mail.example.com")).toMatchObject({ port: 587, secure: false, requireTLS: true });
    expect(smtpOptions("smtp://mail.example.com:25")).toMatchObject({ port: 25, secure: false, auth: undefined, requireTLS: false });
    expect(smtpOptions("smtp://u:p@127.0.0.1:2525")).toMatchObject({ port: 2525, requireTLS: false });
    expect(smtpOptions("smtp://u:p@[::1]:2525")).toMatchObject({ host: "::1", requireTLS: false });
  });
});

describe("createMailer", () => {
  it("has no provider without RESEND_API_KEY or SMTP_URL: mail is only recorded", () => {
    expect(createMailer(parseEnv({}))).toBeUndefined();
    expect(mailProviderOf(parseEnv({}))).toBe("none");
  });

  it("picks SMTP with SMTP_URL, Resend with a key, and MAIL_PROVIDER over both", () => {
    expect(createMailer(parseEnv({ SMTP_URL: "smtp://mail.example.com" }))).toBeInstanceOf(SmtpMailer);
    expect(createMailer(parseEnv({ SMTP_URL: "smtp://mail.example.com", RESEND_API_KEY: "re_1" }))).toBeInstanceOf(ResendMailer);
    expect(createMailer(parseEnv({ SMTP_URL: "smtp://mail.example.com", RESEND_API_KEY: "re_1", MAIL_PROVIDER: "smtp" }))).toBeInstanceOf(SmtpMailer);
    expect(createMailer(parseEnv({ RESEND_API_KEY: "re_1", MAIL_PROVIDER: "none" }))).toBeUndefined();
  });

  it("refuses a MAIL_PROVIDER without its settings, and an SMTP_URL that is not smtp(s)://, without echoing it", () => {
    expect(() => parseEnv({ MAIL_PROVIDER: "smtp" })).toThrow(/SMTP_URL: must be set when MAIL_PROVIDER is smtp/);
    expect(() => parseEnv({ MAIL_PROVIDER: "resend" })).toThrow(/RESEND_API_KEY: must be set/);
    expect(() => parseEnv({ SMTP_URL: "https://u:secret-pass@mail.example.com" })).toThrow(/SMTP_URL: must be smtp:/);
    expect(() => parseEnv({ SMTP_URL: "https://u:secret-pass@mail.example.com" })).not.toThrow(/secret-pass/);
  });

  it("defaults the sender to Keelson <alerts@localhost>", () => {
    expect(parseEnv({}).MAIL_FROM).toBe("Keelson <alerts@localhost>");
  });
});
