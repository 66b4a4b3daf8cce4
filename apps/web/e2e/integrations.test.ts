import http from "node:http";
import type { AddressInfo } from "node:net";
import { signAdminRequest } from "@mdm/contracts";
import type { Browser, Page } from "playwright-core";
import { type Api, type Web, buildWeb, createFirstAdmin, eventually, freePort, launchBrowser, startApi, startWeb } from "./harness";

// Integrations end to end, as an admin sees them: an API key created on its page (the
// secret shown once) signs a request, shows its last use and, revoked, is refused; a
// webhook registered on its page gets the test ping on a receiver on loopback (the API runs
// in development, where loopback is allowed) and the delivery log says so; the export
// buttons download CSV.

jest.setTimeout(10 * 60_000);

const ADMIN = { name: "Ida Integrator", email: "ida@example.com", password: "correct horse battery staple" };

let api: Api;
let web: Web;
let browser: Browser;
let page: Page;
const received: string[] = [];
const receiver = http.createServer((req, res) => {
  let body = "";
  req.on("data", (chunk: Buffer) => (body += chunk.toString()));
  req.on("end", () => {
    received.push(body);
    res.writeHead(200).end();
  });
});

beforeAll(async () => {
  await new Promise<void>((resolve) => receiver.listen(0, "127.0.0.1", resolve));
  const webPort = await freePort();
  // Development: webhooks may reach the receiver on loopback (and bcrypt's test-only cost is refused).
  api = await startApi(`http://127.0.0.1:${webPort}`, { NODE_ENV: "development", BCRYPT_COST: "10" });
  await buildWeb(api.url);
  web = await startWeb(webPort, api.url);
  browser = await launchBrowser();
  page = await (await browser.newContext()).newPage();
});

afterAll(async () => {
  await browser?.close();
  await web?.stop();
  await api?.close();
  await new Promise<void>((resolve) => receiver.close(() => resolve()));
});

/** A request to the API signed with an API key, as an integration would send it. */
async function signedGet(key: { id: string; secret: string }, path: string): Promise<number> {
  const url = new URL(path, api.url);
  const headers = await signAdminRequest({ adminKey: key.id, hmacSecret: key.secret, method: "GET", host: url.host, pathWithQuery: path });
  return (await fetch(url, { headers })).status;
}

const nav = (name: string) => page.getByRole("navigation", { name: "Main" }).getByRole("link", { name, exact: true });

test("the first admin signs up", async () => {
  await createFirstAdmin(page, web.url, ADMIN);
});

test("an API key is created with its secret shown once, signs requests, shows its last use and is refused once revoked", async () => {
  await nav("API keys").click();
  await page.getByRole("heading", { name: "API keys" }).waitFor();
  await page.getByLabel("Name").fill("ticketing-sync");
  await page.getByLabel("Role").selectOption("operator");
  await page.getByRole("button", { name: "Create key" }).click();
  const id = (await page.getByTestId("api-key-id").innerText()).trim();
  const secret = (await page.getByTestId("api-key-secret").innerText()).trim();
  expect(id).toMatch(/^mdmk_/);

  expect(await signedGet({ id, secret }, "/admin/devices")).toBe(200);
  await page.reload();
  await page.getByTestId("api-key-row").waitFor();
  // The secret is gone after a reload: it was shown once.
  expect(await page.getByTestId("api-key-secret").count()).toBe(0);
  expect(await page.content()).not.toContain(secret);
  await eventually("last use shown", async () => {
    await page.reload();
    return (await page.getByTestId("api-key-last-used").innerText()) !== "never";
  });

  await page.getByRole("button", { name: "Revoke" }).click();
  await page.getByTestId("api-key-revoked").waitFor();
  expect(await signedGet({ id, secret }, "/admin/devices")).toBe(401);
});

test("a webhook gets the test ping, and its delivery log says so", async () => {
  await nav("Webhooks").click();
  await page.getByRole("heading", { name: "Webhooks" }).waitFor();
  const port = (receiver.address() as AddressInfo).port;
  await page.getByLabel("URL").fill(`http://127.0.0.1:${port}/hooks`);
  await page.getByRole("button", { name: "Register webhook" }).click();
  expect(await page.getByTestId("webhook-secret").innerText()).toMatch(/^whsec_/);
  await page.getByRole("button", { name: "Send test ping" }).click();
  await eventually("ping received", async () => received.some((body) => JSON.parse(body).type === "ping"));
  await eventually("delivery shown as succeeded", async () => (await page.getByTestId("webhook-delivery-status").first().innerText()) === "succeeded");
});

test("the export buttons download CSV of the devices, the commands and the audit log", async () => {
  for (const [link, pageName, header] of [
    ["Overview", "Overview", "id,alias,model"],
    ["Commands", "Commands", "requestId,deviceId,type"],
    ["Audit log", "Audit log", "id,at,actor,action"],
  ] as const) {
    await nav(link).click();
    await page.getByRole("heading", { name: pageName }).waitFor();
    const href = await page.getByTestId("export-csv").getAttribute("href");
    expect(href).toContain("format=csv");
    // Fetched as the browser's download would be: same origin, the session cookie.
    const text = await page.evaluate(async (url) => (await fetch(url!)).text(), href);
    expect(text.startsWith(header)).toBe(true);
  }
});
