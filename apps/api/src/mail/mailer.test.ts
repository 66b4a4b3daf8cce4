import { type IncomingHttpHeaders, type Server, createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { parseEnv } from "../config/env";
import { LocalMailer, ResendMailer, createMailer } from "./mailer";

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
      const mailer = createMailer(env);
      expect(mailer).toBeInstanceOf(ResendMailer);
      expect(await mailer.send({ ...MESSAGE, html: "<p>Till 1</p>" })).toEqual({ id: "49a3999c-0ce1-4ea6-ab68-afcd6dc2e794" });

      expect(fake.received).toHaveLength(1);
      const [request] = fake.received;
      expect(request).toMatchObject({ method: "POST", url: "/emails" });
      expect(request!.headers.authorization).toBe("Bearer re_test_123");
      expect(request!.headers["content-type"]).toMatch(/^application\/json/);
      expect(request!.body).toEqual({ from: "Fleet <fleet@example.com>", to: ["ops@example.com"], subject: MESSAGE.subject, text: MESSAGE.text, html: "<p>Till 1</p>" });
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

describe("createMailer", () => {
  it("records mail locally when no Resend key is set", async () => {
    const mailer = createMailer(parseEnv({}));
    expect(mailer).toBeInstanceOf(LocalMailer);
    await mailer.send(MESSAGE);
    expect((mailer as LocalMailer).sent).toEqual([{ ...MESSAGE, id: expect.stringMatching(/^local-/), at: expect.any(Date) }]);
  });

  it("defaults the sender to MDM <alerts@localhost>", () => {
    expect(parseEnv({}).MAIL_FROM).toBe("MDM <alerts@localhost>");
  });
});
