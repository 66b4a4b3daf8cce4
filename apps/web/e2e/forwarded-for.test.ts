import http from "node:http";
import os from "node:os";
import { type Api, type Web, buildWeb, freePort, startApi, startWeb } from "./harness";

// Through the dashboard's running server (a production build under server.js): the API
// must see the address of whoever connected to the dashboard, whatever X-Forwarded-For
// that client sends, so per-address limits and the audit log cannot be forged.

jest.setTimeout(10 * 60_000);

let api: Api;
let web: Web;

beforeAll(async () => {
  const webPort = await freePort();
  // Only the per-address limits: the per-account ones would hide what this test is about.
  api = await startApi(`http://127.0.0.1:${webPort}`, { RATE_LIMIT_LOGIN_FAILURES_PER_ACCOUNT: "1000" });
  await buildWeb(api.url);
  web = await startWeb(webPort, api.url);
});

afterAll(async () => {
  await web?.stop();
  await api?.close();
});

/** A JSON POST to the dashboard from a given local address, with the headers a forger would add. */
function post(path: string, body: unknown, headers: Record<string, string>, localAddress = "127.0.0.1"): Promise<number> {
  const url = new URL(path, web.url);
  const data = JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = http.request(
      {
        host: url.hostname,
        port: url.port,
        path: url.pathname,
        method: "POST",
        localAddress,
        headers: { "Content-Type": "application/json", "Content-Length": Buffer.byteLength(data), ...headers },
      },
      (res) => {
        res.resume();
        res.on("end", () => resolve(res.statusCode ?? 0));
      },
    );
    req.on("error", reject);
    req.end(data);
  });
}

const octet = () => Math.floor(Math.random() * 250) + 1;
const forged = () => ({ "X-Forwarded-For": `203.0.113.${octet()}`, "X-Real-IP": `198.51.100.${octet()}`, Forwarded: `for=192.0.2.${octet()}` });

test("a random X-Forwarded-For per request does not escape the login limit", async () => {
  const statuses: number[] = [];
  for (let i = 0; i < 12; i++) statuses.push(await post("/auth/login", { email: "victim@example.com", password: `guess ${i}` }, forged()));
  expect(statuses).toEqual([...Array(10).fill(401), 429, 429]);
});

test("nor the password reset limit", async () => {
  const statuses: number[] = [];
  for (let i = 0; i < 5; i++) statuses.push(await post("/auth/password-reset", { email: `someone${i}@example.com` }, forged(), "127.0.0.3"));
  expect(statuses).toEqual([202, 202, 202, 429, 429]);
});

test("the audit log records the address that connected to the dashboard", async () => {
  // From 127.0.0.2: the dashboard itself reaches the API from 127.0.0.1, so this address
  // can only come from the forwarded header the dashboard set.
  expect(await post("/auth/login", { email: "audited@example.com", password: "wrong password" }, forged(), "127.0.0.2")).toBe(401);
  const entry = await api.server.deps.db.auditLog.findFirstOrThrow({
    where: { action: "auth.login_failed", details: { path: ["email"], equals: "audited@example.com" } },
  });
  expect(entry.ip).toBe("127.0.0.2");
});

test("the dashboard's server listens on loopback unless told otherwise: it relays to the API, so it is exposed only on purpose", async () => {
  const external = Object.values(os.networkInterfaces())
    .flat()
    .find((address) => address?.family === "IPv4" && !address.internal)?.address;
  // Every CI machine has one (eth0); without it, the refusal below cannot be observed.
  expect(external).toBeDefined();
  const answers = (host: string, port: number) =>
    fetch(`http://${host}:${port}/sign-in`, { signal: AbortSignal.timeout(5000) }).then(
      (response) => response.status,
      (error: Error) => (error.cause as NodeJS.ErrnoException | undefined)?.code ?? error.message,
    );

  const defaultPort = await freePort();
  const byDefault = await startWeb(defaultPort, api.url, { hostname: null, env: { DASHBOARD_HOST: "" } });
  try {
    expect(await answers("127.0.0.1", defaultPort)).toBe(200);
    expect(await answers(external!, defaultPort)).toBe("ECONNREFUSED");
  } finally {
    await byDefault.stop();
  }

  const exposedPort = await freePort();
  const exposed = await startWeb(exposedPort, api.url, { hostname: null, env: { DASHBOARD_HOST: "0.0.0.0" } });
  try {
    expect(await answers(external!, exposedPort)).toBe(200);
  } finally {
    await exposed.stop();
  }
});
