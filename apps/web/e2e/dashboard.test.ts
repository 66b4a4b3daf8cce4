import fs from "node:fs";
import path from "node:path";
import { SimulatedDevice } from "@mdm/simulator";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { enqueueMail } from "../../api/src/mail/outbox";
import { type Api, type Web, buildWeb, eventually, freePort, launchBrowser, startApi, startWeb } from "./harness";

// The dashboard end to end, as its users see it: first-run setup, sign-in, enrollment with
// simulated devices that appear live, commands to one and to two devices, a viewer invited
// through the development mail outbox (the API runs without a mail provider, as `npm start`
// does) who cannot send commands, a password reset whose link works once, and alerts that
// say whether their mail went out.

jest.setTimeout(10 * 60_000);

const SCREENSHOTS = path.join(__dirname, "screenshots");
const ADMIN = { name: "Ada Admin", email: "ada@example.com", password: "correct horse battery staple" };
const VIEWER = { email: "victor@example.com", password: "viewer password one", newPassword: "viewer password two" };
const RESET_LINK = /https?:\/\/[^\s"'<>]+\/reset-password\?token=[^\s"'<>]+/;

let api: Api;
let web: Web;
let browser: Browser;
let admin: BrowserContext;
let page: Page;
const devices: SimulatedDevice[] = [];
/** Every Content-Security-Policy violation any page reported: the policy must break nothing. */
const cspViolations: string[] = [];

/** The dashboard link in the latest `kind` mail to `email` in the outbox, once the mail worker has recorded it. */
async function linkInLatestMail(email: string, kind: "invite" | "password_reset"): Promise<string> {
  let text = "";
  await eventually(`a recorded ${kind} mail to ${email}`, async () => {
    const mail = await api.server.deps.db.outboxMail.findFirst({ where: { to: { has: email }, kind, status: "recorded" }, orderBy: { id: "desc" } });
    text = mail?.text ?? "";
    return mail !== null;
  });
  const link = RESET_LINK.exec(text)?.[0];
  if (!link) throw new Error(`No reset link in the mail to ${email}:\n${text}`);
  return link;
}

async function newPage(context: BrowserContext): Promise<Page> {
  const created = await context.newPage();
  created.setDefaultTimeout(20_000);
  created.on("console", (message) => {
    if (/content security policy/i.test(message.text())) cspViolations.push(`${created.url()}: ${message.text()}`);
  });
  return created;
}

/** The page as it stands, in both themes; toasts hidden, `height` pixels tall. */
async function screenshot(target: Page, name: string, height = 900): Promise<void> {
  const toastsHidden = await target.addStyleTag({ content: "[data-sonner-toaster] { display: none !important; }" });
  await target.setViewportSize({ width: 1440, height });
  await target.evaluate(() => window.scrollTo(0, 0));
  for (const colorScheme of ["light", "dark"] as const) {
    await target.emulateMedia({ colorScheme });
    await target.waitForTimeout(150);
    await target.screenshot({ path: path.join(SCREENSHOTS, `${name}-${colorScheme}.png`) });
  }
  await target.emulateMedia({ colorScheme: "light" });
  await target.setViewportSize({ width: 1440, height: 900 });
  await toastsHidden.evaluate((element) => (element as HTMLElement).remove());
}

/** A link of the sidebar (pages have other links with the same names). */
function navLink(target: Page, name: string) {
  return target.getByRole("navigation", { name: "Main" }).getByRole("link", { name, exact: true });
}

async function signIn(target: Page, email: string, password: string): Promise<void> {
  await target.goto(`${web.url}/sign-in`);
  await target.getByLabel("Email").fill(email);
  await target.getByLabel("Password").fill(password);
  await target.getByRole("button", { name: "Sign in" }).click();
  await target.getByRole("heading", { name: "Overview" }).waitFor();
}

beforeAll(async () => {
  fs.mkdirSync(SCREENSHOTS, { recursive: true });
  const webPort = await freePort();
  api = await startApi(`http://127.0.0.1:${webPort}`);
  await buildWeb(api.url);
  web = await startWeb(webPort, api.url);
  browser = await launchBrowser();
  admin = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  page = await newPage(admin);
});

afterAll(async () => {
  await Promise.all(devices.map((device) => device.stop()));
  await browser?.close();
  await web?.stop();
  await api?.close();
});

test("a fresh server asks for its first admin, who is then signed in", async () => {
  await page.goto(`${web.url}/`);
  await page.waitForURL("**/setup");
  await page.getByLabel("Your name").fill(ADMIN.name);
  await page.getByLabel("Email").fill(ADMIN.email);
  await page.getByLabel("Password", { exact: true }).fill(ADMIN.password);
  await page.getByLabel("Repeat the password").fill(ADMIN.password);
  await page.getByRole("button", { name: "Create admin account" }).click();
  await page.getByRole("heading", { name: "Overview" }).waitFor();
});

test("the admin signs out and back in", async () => {
  await page.getByRole("button", { name: "Account" }).click();
  await page.getByRole("menuitem", { name: "Sign out" }).click();
  await page.waitForURL("**/sign-in");
  await screenshot(page, "sign-in");
  await signIn(page, ADMIN.email, ADMIN.password);
  await eventually("the live connection", async () => (await page.getByTestId("connection-indicator").getAttribute("data-state")) === "live");
});

let enrollmentToken: string;

test("an enrollment token shows as a QR code and as text for this server", async () => {
  await navLink(page, "Enrollment").click();
  await page.getByLabel("Devices it may enroll").fill("5");
  await page.getByRole("button", { name: "Create token" }).click();
  await page.getByTestId("enrollment-qr").waitFor();
  enrollmentToken = await page.getByTestId("enrollment-token").inputValue();
  expect(enrollmentToken).toMatch(/\S{20,}/);
  const qrContent = JSON.parse(await page.getByLabel("QR code content").inputValue());
  expect(qrContent).toEqual({ server: api.url, enrollmentToken });
  await screenshot(page, "enrollment");
});

test("enrolled devices appear on the overview without a reload", async () => {
  await navLink(page, "Overview").click();
  await page.getByRole("heading", { name: "Overview" }).waitFor();
  await page.evaluate(() => Object.assign(window, { loadedOnce: true }));

  for (const model of ["Kiosk A", "Kiosk B", "Kiosk C"]) {
    const device = await SimulatedDevice.enroll(api.url, enrollmentToken, { intervalMs: 2_000, facts: { model } });
    devices.push(device);
    await device.connect();
    device.start();
  }

  const rows = page.getByTestId("device-row");
  await eventually("three device rows", async () => (await rows.count()) === 3);
  await eventually("all three online", async () => (await page.getByTestId("device-row").getByText("Online").count()) === 3);
  await eventually("the online count", async () => (await page.getByTestId("summary-online").textContent()) === "3");
  expect(await page.evaluate(() => (window as unknown as { loadedOnce?: boolean }).loadedOnce)).toBe(true);
});

let deviceUrl: string;

test("a command to one device is shown succeeding in its history", async () => {
  await page.getByRole("link", { name: "Kiosk A" }).click();
  await page.getByRole("heading", { name: "Kiosk A" }).waitFor();
  deviceUrl = page.url();
  await page.getByRole("button", { name: "Send command", exact: true }).click();
  const dialog = page.getByRole("dialog", { name: "Send command" });
  await dialog.getByRole("button", { name: "Send", exact: true }).click();
  await dialog.waitFor({ state: "hidden" });
  const history = page.getByTestId("command-row");
  await eventually("one command in the history", async () => (await history.count()) === 1);
  await eventually("the command succeeded", async () => (await history.first().getByTestId("command-status").textContent()) === "succeeded");
  await history.first().getByRole("button", { name: "Show status history" }).click();
  await page.getByRole("list", { name: "Status history" }).getByText("succeeded").waitFor();
  await eventually("battery history drawn", async () => (await page.getByRole("img", { name: /Battery over time/ }).count()) === 1);
  await screenshot(page, "device", 1500);
});

test("a command to a selection of two devices is shown succeeding on both", async () => {
  await navLink(page, "Overview").click();
  await page.getByRole("checkbox", { name: "Select Kiosk B" }).click();
  await page.getByRole("checkbox", { name: "Select Kiosk C" }).click();
  await page.getByRole("region", { name: "Selection" }).getByRole("button", { name: "Send command", exact: true }).click();
  const dialog = page.getByRole("dialog", { name: "Send command" });
  await dialog.getByText("To 2 devices").waitFor();
  await dialog.getByRole("button", { name: "Send", exact: true }).click();
  await page.waitForURL("**/commands?batch=*");
  await eventually("both commands succeeded", async () => (await page.getByTestId("batch-succeeded").textContent()) === "succeeded: 2");
  await eventually("the batch is finished", async () => (await page.getByTestId("batch-progress").getByText("Finished").count()) === 1);
  await screenshot(page, "commands");

  await navLink(page, "Overview").click();
  await eventually("nothing in flight", async () => (await page.getByTestId("summary-commands-in-flight").textContent()) === "0");
  await screenshot(page, "overview");
  for (const name of ["Alerts", "Users", "Audit log"]) {
    await navLink(page, name).click();
    await page.getByRole("heading", { name, exact: true }).waitFor();
    await page.waitForLoadState("networkidle");
    await screenshot(page, name.toLowerCase().replace(" ", "-"));
  }
});

let viewerPage: Page;

test("an invited viewer sets a password from the link in the development outbox and cannot send commands", async () => {
  await navLink(page, "Users").click();
  await page.getByRole("button", { name: "Invite user" }).click();
  const dialog = page.getByRole("dialog", { name: "Invite a user" });
  await dialog.getByLabel("Email").fill(VIEWER.email);
  await dialog.getByRole("button", { name: "Send invitation" }).click();
  await dialog.waitFor({ state: "hidden" });
  await page.getByText(`Invitation for ${VIEWER.email} recorded, not sent`).waitFor();
  expect(await page.getByText("Invitation mailed").count()).toBe(0);
  await page.getByTestId("user-row").filter({ hasText: VIEWER.email }).getByText("invited").waitFor();

  // Without a mail provider, the Mail page is where the invitation goes: the admin opens its link.
  await navLink(page, "Mail").click();
  await page.getByRole("heading", { name: "Mail", exact: true }).waitFor();
  await page.getByRole("alert").getByText("Mail is not being sent: no provider configured (set RESEND_API_KEY or SMTP_URL).").waitFor();
  const row = page.getByTestId("mail-row").filter({ hasText: VIEWER.email });
  await row.getByText("recorded, not sent").waitFor();
  await row.getByText("You are invited to MDM").waitFor();
  await screenshot(page, "mail-outbox");
  const link = row.getByRole("link", { name: /\/reset-password\?token=/ });
  const invitation = await link.getAttribute("href");
  expect(invitation?.startsWith(`${web.url}/reset-password?token=`)).toBe(true);
  expect(invitation).toBe(await linkInLatestMail(VIEWER.email, "invite"));
  const [opened] = await Promise.all([admin.waitForEvent("page"), link.click()]);
  await opened.waitForLoadState();
  expect(opened.url()).toBe(invitation);
  await opened.getByLabel("New password").fill(VIEWER.password);
  await opened.getByLabel("Repeat the password").fill(VIEWER.password);
  await opened.getByRole("button", { name: "Set password" }).click();
  await opened.getByRole("heading", { name: "Password set" }).waitFor();
  await opened.close();

  const viewer = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  viewerPage = await newPage(viewer);
  await signIn(viewerPage, VIEWER.email, VIEWER.password);
  await eventually("the devices", async () => (await viewerPage.getByTestId("device-row").count()) === 3);
  expect(await viewerPage.getByRole("button", { name: "Send command", exact: true }).count()).toBe(0);
  expect(await viewerPage.getByRole("checkbox").count()).toBe(0);
  expect(await navLink(viewerPage, "Users").count()).toBe(0);
  expect(await navLink(viewerPage, "Mail").count()).toBe(0);

  await viewerPage.goto(deviceUrl);
  await viewerPage.getByRole("heading", { name: "Kiosk A" }).waitFor();
  expect(await viewerPage.getByRole("button", { name: "Send command", exact: true }).count()).toBe(0);

  const deviceId = devices[0]!.deviceId;
  const forced = await viewerPage.evaluate(async (id) => {
    const csrf = document.cookie.split("; ").find((cookie) => cookie.startsWith("mdm_csrf="))?.slice("mdm_csrf=".length) ?? "";
    const response = await fetch("/admin/command", {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": decodeURIComponent(csrf) },
      body: JSON.stringify({ deviceId: id, type: "reboot", payload: {} }),
    });
    return response.status;
  }, deviceId);
  expect(forced).toBe(403);
});

test("a password reset link works once", async () => {
  const context = await browser.newContext();
  const reset = await newPage(context);
  await reset.goto(`${web.url}/sign-in`);
  await reset.getByRole("link", { name: "Forgot your password?" }).click();
  // Pages render per request (for their CSP nonce), so the sign-in form, with its own
  // Email field, stays on screen until the navigation completes.
  await reset.getByText("We will mail you a link to choose a new one.").waitFor();
  await reset.getByLabel("Email").fill(VIEWER.email);
  await reset.getByRole("button", { name: "Send the link" }).click();
  await reset.getByRole("heading", { name: "Link recorded, not sent" }).waitFor();
  await reset.getByText("An admin can find it on the Mail page").waitFor();

  const link = await linkInLatestMail(VIEWER.email, "password_reset");
  await reset.goto(link);
  await reset.getByLabel("New password").fill(VIEWER.newPassword);
  await reset.getByLabel("Repeat the password").fill(VIEWER.newPassword);
  await reset.getByRole("button", { name: "Set password" }).click();
  await reset.getByRole("heading", { name: "Password set" }).waitFor();
  await signIn(reset, VIEWER.email, VIEWER.newPassword);

  const again = await newPage(await browser.newContext());
  await again.goto(link);
  await again.getByLabel("New password").fill("yet another password");
  await again.getByLabel("Repeat the password").fill("yet another password");
  await again.getByRole("button", { name: "Set password" }).click();
  await again.getByRole("alert").getByText("invalid, expired or already used").waitFor();
  await context.close();
});

test("the alerts page shows whether each alert's mail went out, from the outbox", async () => {
  // An alert as the offline sweep raises it: its mail in the outbox, the alert pointing at it.
  const { db, clock } = api.server.deps;
  const subject = "Group lobby: 2 of 3 devices offline";
  await db.$transaction(async (tx) => {
    const mail = await enqueueMail(tx, "alert", { to: [ADMIN.email], subject, text: `${subject} (threshold 50%).\n` }, clock.now());
    await tx.alert.create({ data: { kind: "group_offline", group: "lobby", subject, recipients: [ADMIN.email], outboxMailId: mail.id } });
  });
  await eventually("the alert mail recorded", async () => (await db.outboxMail.count({ where: { kind: "alert", status: "recorded" } })) === 1);

  await navLink(page, "Alerts").click();
  await page.getByRole("heading", { name: "Alerts raised" }).waitFor();
  const row = page.getByTestId("alert-row").filter({ hasText: subject });
  await row.getByText("recorded, not sent").waitFor();
  expect(await page.getByRole("columnheader", { name: "Sent", exact: true }).count()).toBe(0);
  await screenshot(page, "alerts-mail");
});

test("the dashboard's own pages run under a nonce-based CSP that blocked nothing on the way", async () => {
  const response = await fetch(`${web.url}/sign-in`);
  const policy = response.headers.get("content-security-policy") ?? "";
  expect(policy).toMatch(/script-src 'self' 'nonce-[A-Za-z0-9+/=]+' 'strict-dynamic'/);
  expect(policy).not.toContain("unsafe-eval");
  const nonce = /'nonce-([^']+)'/.exec(policy)![1];
  // Every script tag of the page carries this request's nonce.
  const html = await response.text();
  const scripts = html.match(/<script\b[^>]*>/g) ?? [];
  expect(scripts.length).toBeGreaterThan(0);
  for (const tag of scripts) expect(tag).toContain(`nonce="${nonce}"`);
  expect(cspViolations).toEqual([]);
});

test("the dashboard's origin does not forward the API's metrics", async () => {
  for (const path of ["/api/metrics", "/API/Metrics", "/api/metrics/"]) {
    const response = await fetch(`${web.url}${path}`);
    expect({ path, status: response.status }).toEqual({ path, status: 404 });
    expect(await response.text()).not.toContain("mdm_http_request_duration_seconds");
  }
  // Health still goes through, as the other API routes do.
  expect((await fetch(`${web.url}/api/health`)).status).toBe(200);
});

test("sign-in does not redirect to another site through next", async () => {
  const context = await browser.newContext();
  const target = await newPage(context);
  await target.goto(`${web.url}/sign-in?next=/%5Cevil.example`);
  await target.getByLabel("Email").fill(ADMIN.email);
  await target.getByLabel("Password").fill(ADMIN.password);
  await target.getByRole("button", { name: "Sign in" }).click();
  await target.getByRole("heading", { name: "Overview" }).waitFor();
  expect(new URL(target.url()).origin).toBe(web.url);
  await context.close();
});
