import { execFile } from "node:child_process";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import type { IncomingHttpHeaders } from "node:http";
import { Agent, type AgentOptions, type Server, createServer } from "node:https";
import type { AddressInfo, Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type ConnectionOptions, connect } from "node:tls";
import { promisify } from "node:util";
import type { Credential } from "firebase-admin/app";
import { FcmPushGateway } from "../push/fcm-push-gateway";

export const FAKE_FCM_PROJECT_ID = "mdm-test";
export const FAKE_FCM_ACCESS_TOKEN = "test-token";

/** One `messages:send` call as the fake server received it. */
export type FakeFcmRequest = {
  path: string;
  headers: IncomingHttpHeaders;
  body: { message?: Record<string, unknown> } & Record<string, unknown>;
};

/** How the fake answers a given registration token instead of succeeding. */
export type FakeFcmFailure = "unregistered" | "server_error";

export type FakeFcm = {
  readonly port: number;
  /** Every send request received, oldest first. */
  readonly requests: FakeFcmRequest[];
  /** Makes every later send to `token` fail the given way. */
  failToken(token: string, failure: FakeFcmFailure): void;
  /** A gateway running the real firebase-admin SDK against this server; close() closes it too. */
  createGateway(): FcmPushGateway;
  /** Closes every gateway built here, then the server. */
  close(): Promise<void>;
};

const SEND_PATH = /^\/v1\/projects\/([^/]+)\/messages:send$/;

// Error bodies as FCM v1 sends them.
const FAILURES: Record<FakeFcmFailure, { status: number; body: unknown }> = {
  unregistered: {
    status: 404,
    body: {
      error: {
        code: 404,
        message: "Requested entity was not found.",
        status: "NOT_FOUND",
        details: [{ "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError", errorCode: "UNREGISTERED" }],
      },
    },
  },
  // firebase-admin retries only 503 by default, so a 500 is answered once and fails at once.
  server_error: {
    status: 500,
    body: { error: { code: 500, message: "Internal error encountered.", status: "INTERNAL" } },
  },
};

/** A self-signed certificate for fcm.googleapis.com; its key doubles as the service account's key. */
async function selfSignedCertificate(): Promise<{ key: string; cert: string }> {
  const dir = await mkdtemp(join(tmpdir(), "fake-fcm-"));
  try {
    const [keyPath, certPath] = [join(dir, "key.pem"), join(dir, "cert.pem")];
    await promisify(execFile)("openssl", [
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-subj",
      "/CN=fcm.googleapis.com",
      "-days",
      "1",
      "-keyout",
      keyPath,
      "-out",
      certPath,
    ]);
    return { key: await readFile(keyPath, "utf8"), cert: await readFile(certPath, "utf8") };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Sends every connection to the fake, whatever host the SDK asks for (fcm.googleapis.com). */
class FakeFcmAgent extends Agent {
  constructor(
    private readonly port: number,
    options?: AgentOptions,
  ) {
    super(options);
  }

  override createConnection(options: ConnectionOptions): Socket {
    return connect({
      host: "127.0.0.1",
      port: this.port,
      rejectUnauthorized: false,
      servername: options.servername ?? "fcm.googleapis.com",
    });
  }
}

// google-auth-library (behind cert()) ignores httpAgent, so tokens come from here instead.
const fakeCredential: Credential = {
  getAccessToken: async () => ({ access_token: FAKE_FCM_ACCESS_TOKEN, expires_in: 3600 }),
};

/**
 * A gateway running the real firebase-admin SDK against the fake listening on `port`, for
 * another process (an API instance a test starts, and kills, as a child process).
 */
export function fakeFcmGateway(port: number): { gateway: FcmPushGateway; agent: Agent } {
  const agent = new FakeFcmAgent(port);
  const serviceAccountJson = JSON.stringify({ type: "service_account", project_id: FAKE_FCM_PROJECT_ID });
  return { gateway: new FcmPushGateway({ serviceAccountJson, httpAgent: agent, credential: fakeCredential }), agent };
}

/**
 * Starts a fake FCM v1 HTTPS server on 127.0.0.1 at a free port. `delayMs` holds each
 * answer back, like a slow network, so a test can act in the middle of a fan-out.
 */
export async function startFakeFcm(options: { delayMs?: number } = {}): Promise<FakeFcm> {
  const { key, cert } = await selfSignedCertificate();
  const requests: FakeFcmRequest[] = [];
  const failures = new Map<string, FakeFcmFailure>();
  const gateways: FcmPushGateway[] = [];
  const agents: Agent[] = [];
  let sent = 0;

  const server: Server = createServer({ key, cert }, (req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (chunk: Buffer) => chunks.push(chunk));
    req.on("end", () => {
      const reply = (status: number, body: unknown) => {
        res.writeHead(status, { "content-type": "application/json; charset=UTF-8" });
        res.end(JSON.stringify(body));
      };
      const path = req.url ?? "";
      const projectId = SEND_PATH.exec(path)?.[1];
      if (req.method !== "POST" || !projectId) return reply(404, { error: { code: 404, status: "NOT_FOUND" } });

      const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as FakeFcmRequest["body"];
      requests.push({ path, headers: req.headers, body });
      const failure = failures.get(String(body.message?.token));
      if (failure) return reply(FAILURES[failure].status, FAILURES[failure].body);
      sent += 1;
      const name = `projects/${projectId}/messages/${sent}`;
      if (options.delayMs) setTimeout(() => reply(200, { name }), options.delayMs);
      else reply(200, { name });
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", resolve);
  });
  const { port } = server.address() as AddressInfo;

  const serviceAccountJson = JSON.stringify({
    type: "service_account",
    project_id: FAKE_FCM_PROJECT_ID,
    private_key_id: "fake-key-id",
    private_key: key,
    client_email: `push@${FAKE_FCM_PROJECT_ID}.iam.gserviceaccount.com`,
    client_id: "0",
  });

  return {
    port,
    requests,
    failToken: (token, failure) => failures.set(token, failure),
    createGateway() {
      const httpAgent = new FakeFcmAgent(port);
      const gateway = new FcmPushGateway({ serviceAccountJson, httpAgent, credential: fakeCredential });
      agents.push(httpAgent);
      gateways.push(gateway);
      return gateway;
    },
    async close() {
      await Promise.all(gateways.map((gateway) => gateway.close()));
      for (const agent of agents) agent.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve, reject) => server.close((error) => (error ? reject(error) : resolve())));
    },
  };
}
