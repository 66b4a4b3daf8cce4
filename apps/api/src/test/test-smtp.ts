import type { AddressInfo } from "node:net";
import { SMTPServer } from "smtp-server";

export type ReceivedMail = { from: string; to: string[]; user?: string; raw: string; subject: string; body: string };

/** Undoes quoted-printable: soft line breaks and `=XX` escapes. */
function decodeQuotedPrintable(text: string): string {
  const bytes = text.replace(/=\r?\n/g, "").replace(/=([0-9A-F]{2})/gi, (_match, hex: string) => String.fromCharCode(parseInt(hex, 16)));
  return Buffer.from(bytes, "latin1").toString("utf8");
}

/** The text/plain part of a message as nodemailer writes it (single part or multipart/alternative), decoded. */
function textBody(raw: string): string {
  const [head, ...rest] = raw.split(/\r?\n\r?\n/);
  const body = rest.join("\r\n\r\n");
  const boundary = /boundary="?([^";\r\n]+)"?/i.exec(head!)?.[1];
  if (!boundary) return /quoted-printable/i.test(head!) ? decodeQuotedPrintable(body) : body;
  const part = body.split(`--${boundary}`).find((section) => /content-type: text\/plain/i.test(section));
  if (!part) return "";
  const [partHead, ...partBody] = part.replace(/^\r?\n/, "").split(/\r?\n\r?\n/);
  const text = partBody.join("\r\n\r\n").replace(/\r?\n$/, "");
  return /quoted-printable/i.test(partHead!) ? decodeQuotedPrintable(text) : text;
}

/**
 * A real SMTP server on loopback (the `smtp-server` package), recording what it accepts.
 * `auth`: the one account it accepts, required; `refuse`: answers every DATA with this
 * reply, as a server that is over quota or rejecting mail would.
 */
export async function startTestSmtpServer(options: { auth?: { user: string; pass: string }; refuse?: { code: number; message: string } } = {}) {
  const received: ReceivedMail[] = [];
  let attempts = 0;
  const server = new SMTPServer({
    authOptional: !options.auth,
    // Plain connections on loopback: the client's TLS rules are tested on their own.
    allowInsecureAuth: true,
    disabledCommands: options.auth ? ["STARTTLS"] : ["STARTTLS", "AUTH"],
    logger: false,
    onAuth(auth, _session, callback) {
      if (auth.username === options.auth?.user && auth.password === options.auth?.pass) return callback(null, { user: auth.username });
      callback(Object.assign(new Error("Invalid username or password"), { responseCode: 535 }));
    },
    onData(stream, session, callback) {
      attempts++;
      const chunks: Buffer[] = [];
      stream.on("data", (chunk: Buffer) => chunks.push(chunk));
      stream.on("end", () => {
        if (options.refuse) return callback(Object.assign(new Error(options.refuse.message), { responseCode: options.refuse.code }));
        const raw = Buffer.concat(chunks).toString("utf8");
        const subject = /^Subject: (.*)$/im.exec(raw)?.[1]?.trim() ?? "";
        received.push({
          from: session.envelope.mailFrom ? session.envelope.mailFrom.address : "",
          to: session.envelope.rcptTo.map((address) => address.address),
          user: typeof session.user === "string" ? session.user : undefined,
          raw,
          subject,
          body: textBody(raw),
        });
        callback();
      });
    },
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  const { port } = server.server.address() as AddressInfo;
  return {
    port,
    received,
    /** DATA commands seen, accepted or not. */
    attempts: () => attempts,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
