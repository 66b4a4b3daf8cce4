import { randomUUID } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { SESSION_COOKIE } from "@mdm/contracts";
import { SimulatedDevice } from "@mdm/simulator";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { enqueueMail } from "../../api/src/mail/outbox";
import { createPasswordToken } from "../../api/src/modules/auth/password-reset.service";
import { type Api, type Web, buildWeb, createFirstAdmin, eventually, freePort, launchBrowser, overflowing, startApi, startWeb } from "./harness";

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
  // An empty form: every problem at once, the setup token's included.
  await page.goto(`${web.url}/`);
  await page.waitForURL("**/setup");
  await page.getByRole("button", { name: "Create admin account" }).click();
  await page.getByText("Enter the setup token from the API's log").waitFor();
  expect(await page.locator("[aria-invalid=true]").count()).toBeGreaterThanOrEqual(3);
  await createFirstAdmin(page, web.url, ADMIN);
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
  // The API listens on loopback without PUBLIC_API_URL: phones could not reach what the QR code says.
  const notice = page.getByTestId("enrollment-server");
  expect(await notice.getAttribute("role")).toBe("alert");
  await notice.getByText(`Phones cannot reach ${api.url}`).waitFor();
  await notice.getByText("PUBLIC_API_URL").waitFor();
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

test("devices are told apart, and what already happened never reads as the future", async () => {
  // Same-model devices differ by serial number in their names.
  const names = await page.getByTestId("device-row").getByRole("link").allTextContents();
  expect(new Set(names).size).toBe(3);
  for (const name of names) expect(name).toMatch(/^Kiosk [ABC] · SIM-[0-9A-Z]{8}$/);
  // Heartbeats every 2 s patch "last seen" between clock ticks: for 16 s none may read "in N seconds".
  const deadline = Date.now() + 16_000;
  while (Date.now() < deadline) {
    const text = await page.getByRole("table").first().innerText();
    expect(text).not.toMatch(/\bin \d+ (second|minute)s?\b/);
    await page.waitForTimeout(250);
  }
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
  // Status changes seconds apart show their seconds.
  expect(await page.getByRole("list", { name: "Status history" }).locator("li").first().innerText()).toMatch(/\d{2}:\d{2}:\d{2}/);
  await eventually("battery history drawn", async () => (await page.getByRole("img", { name: /Battery over time/ }).count()) === 1);
  // The chart starts at the first heartbeat, not at the start of its time bucket before the device enrolled.
  const enrolledAt = (await api.server.deps.db.device.findUniqueOrThrow({ where: { id: devices[0]!.deviceId } })).enrolledAt;
  const chartFrom = await page.getByRole("img", { name: /Battery over time/ }).getAttribute("data-from");
  expect(Date.parse(chartFrom!)).toBeGreaterThanOrEqual(enrolledAt.getTime());
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
  await page.getByTestId("user-row").filter({ hasText: VIEWER.email }).getByText("invited").filter({ visible: true }).waitFor();

  // Without a mail provider, the Mail page is where the invitation goes: the admin opens its link.
  await navLink(page, "Mail").click();
  await page.getByRole("heading", { name: "Mail", exact: true }).waitFor();
  await page.getByRole("alert").getByText("Mail is not being sent: no provider configured (set RESEND_API_KEY or SMTP_URL).").waitFor();
  const row = page.getByTestId("mail-row").filter({ hasText: VIEWER.email });
  await row.getByText("recorded, not sent").waitFor();
  await row.getByText("You are invited to Keelson").waitFor();
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
  // Typed in by hand, the admin-only pages say so, and ask the API for nothing it would refuse.
  const refused = await consoleTrouble(viewerPage, async () => {
    for (const [path, says] of [
      ["/users", "Only admins manage users"],
      ["/mail", "Only admins see the mail outbox"],
      ["/api-keys", "Only admins manage API keys"],
      ["/webhooks", "Only admins manage webhooks"],
      ["/audit-log", "Only admins can read the audit log"],
    ]) {
      await viewerPage.goto(`${web.url}${path}`);
      await viewerPage.getByText(says!).waitFor();
      await viewerPage.waitForLoadState("networkidle");
    }
  });
  expect(refused.filter((line) => /\b403\b|\/admin\/(users|mail)/.test(line))).toEqual([]);

  await viewerPage.goto(deviceUrl);
  await viewerPage.getByRole("heading", { name: "Kiosk A" }).waitFor();
  expect(await viewerPage.getByRole("button", { name: "Send command", exact: true }).count()).toBe(0);

  const deviceId = devices[0]!.deviceId;
  const forced = await viewerPage.evaluate(async (id) => {
    const csrf =
      document.cookie
        .split("; ")
        .find((cookie) => cookie.startsWith("mdm_csrf="))
        ?.slice("mdm_csrf=".length) ?? "";
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
  // The used link is refused as the page opens, before any password is typed.
  await again.goto(link);
  await again.getByRole("alert").getByText("invalid, expired or already used").waitFor();
  await again.getByRole("link", { name: "Ask for a new link" }).waitFor();
  expect(await again.getByLabel("New password").count()).toBe(0);
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

// ---- Issue 7: a dashboard that never lies, and polish ----------------------------------

/** Console errors, error responses and failed requests a page reports while `action` runs. */
async function consoleTrouble(target: Page, action: () => Promise<void>): Promise<string[]> {
  const trouble: string[] = [];
  const onResponse = (response: { status: () => number; url: () => string }) => {
    if (response.status() >= 400) trouble.push(`http ${response.status()}: ${response.url()}`);
  };
  target.on("response", onResponse);
  const onConsole = (message: { type: () => string; text: () => string }) => {
    if (message.type() === "error") trouble.push(`console: ${message.text()}`);
  };
  const onFailed = (request: { url: () => string; failure: () => { errorText: string } | null }) =>
    trouble.push(`failed: ${request.url()} ${request.failure()?.errorText}`);
  target.on("console", onConsole);
  target.on("requestfailed", onFailed);
  try {
    await action();
  } catch (error) {
    // What the page ran into, and what it shows, explain a wait that ran out.
    const shown = await target
      .locator("main")
      .innerText({ timeout: 1_000 })
      .catch(() => "(no main element)");
    throw new Error(`${(error as Error).message}\nat ${target.url()} the page met: ${JSON.stringify(trouble)}\nand shows: ${shown.slice(0, 1_500)}`, {
      cause: error,
    });
  } finally {
    target.off("console", onConsole);
    target.off("requestfailed", onFailed);
    target.off("response", onResponse);
  }
  return trouble;
}

/** Answers the first request to `url` 429 with `Retry-After: 1`, as a rate limit would, and lets the rest through; returns the statuses, as they are given. */
async function refusedOnceForItsRate(target: Page, url: string): Promise<number[]> {
  const answered: number[] = [];
  await target.route(url, async (route) => {
    answered.push(answered.length === 0 ? 429 : 200);
    if (answered.length > 1) return route.continue();
    const body = { error: { code: "rate_limited", message: "Too many requests, retry later", requestId: "e2e" } };
    return route.fulfill({ status: 429, contentType: "application/json", headers: { "Retry-After": "1" }, body: JSON.stringify(body) });
  });
  return answered;
}

test("a failed session read is retried once, and a lasting failure keeps the frame with an inline retry", async () => {
  const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  const target = await newPage(context);
  await signIn(target, ADMIN.email, ADMIN.password);

  // One 500 (a proxy's dropped keep-alive socket): the read is tried again and the page loads.
  let failures = 0;
  await target.route("**/auth/me", async (route) => {
    if (failures++ === 0) return route.fulfill({ status: 500, contentType: "application/json", body: "{}" });
    return route.continue();
  });
  await target.reload();
  await target.getByRole("heading", { name: "Overview" }).waitFor();
  expect(failures).toBeGreaterThanOrEqual(2);
  await target.unroute("**/auth/me");

  // The API keeps failing: the navigation stays, the error shows where the page would be.
  await target.route("**/auth/me", (route) => route.fulfill({ status: 500, contentType: "application/json", body: "{}" }));
  await target.reload();
  const alert = target.getByRole("alert").filter({ hasText: "Could not load this" });
  await alert.waitFor();
  await target.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Commands" }).waitFor();
  await target.unroute("**/auth/me");
  await alert.getByRole("button", { name: "Try again" }).click();
  await target.getByRole("heading", { name: "Overview" }).waitFor();

  // Refused for its rate: read again after its Retry-After, with no click.
  const sessionAnswers = await refusedOnceForItsRate(target, "**/auth/me");
  await target.reload();
  await target.getByRole("heading", { name: "Overview" }).waitFor();
  expect(sessionAnswers).toEqual([429, 200]);
  await target.unroute("**/auth/me");

  // The device list fails: its error shows, and nothing beside it claims "No devices" or a page count.
  await target.route("**/admin/devices?*", (route) => route.fulfill({ status: 500, contentType: "application/json", body: "{}" }));
  await target.reload();
  await target.getByRole("alert").filter({ hasText: "Could not load this" }).waitFor();
  expect(await target.getByTestId("device-count").innerText()).toBe("");
  expect(await target.getByText("No devices", { exact: true }).count()).toBe(0);
  expect(await target.getByText("1 / 1", { exact: true }).count()).toBe(0);
  await target.unroute("**/admin/devices?*");
  await context.close();
});

test("reset links and forms speak to people: rule shown first, every error at once, a bad link refused on load", async () => {
  const context = await browser.newContext();
  const target = await newPage(context);
  await target.goto(`${web.url}/reset-password?token=not-a-token`);
  await target.getByRole("heading", { name: "This link is not valid" }).waitFor();
  expect(await target.getByLabel("New password").count()).toBe(0);

  // Well formed, but no such token: refused as the page opens, with a way to a new link.
  await target.goto(`${web.url}/reset-password?token=00000000-0000-4000-8000-000000000000.${"a".repeat(43)}`);
  await target.getByRole("alert").getByText("invalid, expired or already used").waitFor();
  await target.getByRole("link", { name: "Ask for a new link" }).waitFor();
  expect(await target.getByLabel("New password").count()).toBe(0);

  const viewer = await api.server.deps.db.user.findUniqueOrThrow({ where: { email: VIEWER.email } });
  const { link } = await createPasswordToken(api.server.deps, api.server.deps.db, viewer.id, 600);
  await target.goto(link);
  await target.getByText("At least 12 characters").waitFor();
  await target.getByLabel("New password").fill("short");
  await target.getByLabel("Repeat the password").fill("different");
  await target.getByRole("button", { name: "Set password" }).click();
  await target.getByText("Must be at least 12 characters.").waitFor();
  await target.getByText("The passwords differ.").waitFor();
  expect(await target.locator("body").innerText()).not.toMatch(/Too small|expected string|Invalid input/);
  await context.close();
});

test("anonymous pages make no failing requests, every page behind sign-in sends there first, and every page has an icon", async () => {
  const context = await browser.newContext();
  const target = await newPage(context);
  const protectedPages = [
    "/",
    "/commands",
    "/enrollment",
    "/policies",
    "/catalogue",
    "/alerts",
    "/users",
    "/api-keys",
    "/webhooks",
    "/audit-log",
    "/mail",
    "/no-such-page",
  ];
  const trouble = await consoleTrouble(target, async () => {
    for (const address of protectedPages) {
      await target.goto(`${web.url}${address}`);
      await target.waitForURL((url) => url.pathname === "/sign-in");
      expect({ address, next: new URL(target.url()).searchParams.get("next") }).toEqual({ address, next: address === "/" ? null : address });
      await target.getByRole("button", { name: "Sign in" }).waitFor();
      // Settled before leaving: the next navigation would abort this page's own requests
      // (its icon, once), which is the test's doing, not the page's.
      await target.waitForLoadState("networkidle");
    }
    await target.goto(`${web.url}/forgot-password`);
    await target.getByRole("button", { name: "Send the link" }).waitFor();
    await target.waitForLoadState("networkidle");
  });
  expect(trouble).toEqual([]);
  const icon = await target.locator('link[rel="icon"]').first().getAttribute("href");
  expect(icon).toBeTruthy();
  expect((await fetch(new URL(icon!, web.url))).status).toBe(200);
  await context.close();
});

test("the overview: even stat cards, labelled sorting, a steady search box, no aborted prefetches; 404s inside the app", async () => {
  await navLink(page, "Commands").click();
  await page.getByRole("heading", { name: "Commands", exact: true }).waitFor();
  const trouble = await consoleTrouble(page, async () => {
    await navLink(page, "Overview").click();
    await page.getByRole("heading", { name: "Overview" }).waitFor();
    await eventually("the device rows", async () => (await page.getByTestId("device-row").count()) > 0);
    await page.waitForLoadState("networkidle");
    await page.waitForTimeout(500);
  });
  // No page fetch was cut short but those of this very navigation: no prefetch of the
  // sidebar's pages, nor of the device pages the table links to.
  const otherPages = trouble.filter((line) => {
    const aborted = /^failed: (\S+) net::ERR_ABORTED$/.exec(line);
    const url = aborted ? new URL(aborted[1]!) : undefined;
    return !(url?.searchParams.has("_rsc") && ["/", "/commands"].includes(url.pathname));
  });
  expect(otherPages).toEqual([]);

  const heights = await page.getByTestId("summary-card").evaluateAll((cards) => cards.map((card) => Math.round(card.getBoundingClientRect().height)));
  expect(heights).toHaveLength(4);
  expect(new Set(heights).size).toBe(1);

  await page.getByRole("button", { name: /^Battery: sort/ }).waitFor();
  await page.getByRole("button", { name: /^Last seen: sort/ }).waitFor();

  const search = page.getByLabel("Search devices");
  const before = (await search.boundingBox())!.width;
  await search.fill("Kiosk");
  await page.getByRole("button", { name: "Clear filters" }).waitFor();
  expect((await search.boundingBox())!.width).toBe(before);
  await page.getByRole("button", { name: "Clear filters" }).click();

  const missing = await page.goto(`${web.url}/no-such-page`);
  expect(missing?.status()).toBe(404);
  await page.getByRole("heading", { name: "Page not found" }).waitFor();
  expect(await page.title()).toBe("Page not found · Keelson");

  // An unknown device, or an id that is none, is a 404 too, and no page of the sidebar's is "current".
  for (const id of ["00000000-0000-4000-8000-000000000000", "not-a-device"]) {
    const unknownDevice = await page.goto(`${web.url}/devices/${id}`);
    expect({ id, status: unknownDevice?.status() }).toEqual({ id, status: 404 });
    await page.getByRole("heading", { name: "Page not found" }).waitFor();
    expect(await page.getByRole("navigation", { name: "Main" }).locator('[aria-current="page"]').count()).toBe(0);
  }
  // An address whose escapes do not decode names no device either.
  expect((await page.goto(`${web.url}/devices/%E0%A4%A`))?.status()).toBe(404);
  const known = await page.goto(`${web.url}/`);
  expect(known?.status()).toBe(200);
  const firstDevice = await page.getByTestId("device-row").first().getByRole("link").first();
  const [firstDeviceName, firstDevicePath] = [await firstDevice.innerText(), (await firstDevice.getAttribute("href"))!];
  // The device's page, named in the tab; an uppercase id leads to the same page's lowercase address.
  expect((await page.goto(`${web.url}${firstDevicePath.toUpperCase().replace("/DEVICES/", "/devices/")}`))?.status()).toBe(200);
  expect(new URL(page.url()).pathname).toBe(firstDevicePath);
  await navLink(page, "Overview").and(page.locator('[aria-current="page"]')).waitFor();
  await eventually("the tab named after the device", async () => (await page.title()) === `${firstDeviceName} · Keelson`);

  // The access cookie expired: the server cannot ask the API, and the browser, once it has
  // renewed the session, shows the same not-found page (title and sidebar too).
  await admin.clearCookies({ name: SESSION_COOKIE });
  await page.goto(`${web.url}/devices/00000000-0000-4000-8000-000000000000`);
  await page.getByRole("heading", { name: "Page not found" }).waitFor();
  await eventually("the not-found title", async () => (await page.title()) === "Page not found · Keelson");
  expect(await page.getByRole("navigation", { name: "Main" }).locator('[aria-current="page"]').count()).toBe(0);
  await navLink(page, "Overview").waitFor();
  await navLink(page, "Overview").click();
  await page.getByRole("heading", { name: "Overview" }).waitFor();
});

test("a page whose read was refused for its rate comes back by itself once Retry-After has passed", async () => {
  // An admin's tabs together can pass the per-address budget (RATE_LIMIT_ADMIN_PER_MINUTE).
  const answered = await refusedOnceForItsRate(page, "**/admin/audit-log?*");
  try {
    await navLink(page, "Audit log").click();
    await page.getByText("Too many requests. Wait a moment and try again.").waitFor();
    await page.getByRole("table").getByRole("link", { name: /^SIM-/ }).first().waitFor();
    expect(answered).toEqual([429, 200]);
  } finally {
    await page.unroute("**/admin/audit-log?*");
  }
  await navLink(page, "Overview").click();
  await page.getByRole("heading", { name: "Overview" }).waitFor();
});

test("lists of device links prefetch no device page: leaving the audit log aborts nothing", async () => {
  // Every device page fetched for the router (`_rsc`) while the audit log is open and left.
  const devicePages: string[] = [];
  const onRequest = (request: { url: () => string }) => {
    const url = new URL(request.url());
    if (url.searchParams.has("_rsc") && url.pathname.startsWith("/devices/")) devicePages.push(url.pathname);
  };
  page.on("request", onRequest);
  try {
    const trouble = await consoleTrouble(page, async () => {
      await navLink(page, "Audit log").click();
      await page.getByRole("heading", { name: "Audit log", exact: true }).waitFor();
      // An entry that names a device links to its page (its serial number).
      await page.getByRole("table").getByRole("link", { name: /^SIM-/ }).first().waitFor();
      // Time for a prefetch of what is in view to start: the navigation away would cut it short.
      await page.waitForTimeout(500);
      await navLink(page, "Overview").click();
      await page.getByRole("heading", { name: "Overview" }).waitFor();
      await page.waitForLoadState("networkidle");
    });
    expect(trouble.filter((line) => /\/devices\//.test(line))).toEqual([]);
  } finally {
    page.off("request", onRequest);
  }
  expect(devicePages).toEqual([]);
});

/** Words no browser may break by itself, as the data of real fleets holds them. */
const LONG_WORDS = {
  label: "warehouse-7-handhelds-north-dock-second-shift-enrollment",
  email: "fleet-operations-automation-account@logistics-example-corporation.com",
  url: "https://apps.logistics-example-corporation.com/releases/com.example.scanner/2026-11-30/scanner-release.apk",
  sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
};

async function seedLongWords(): Promise<void> {
  const { db } = api.server.deps;
  if (await db.enrollmentToken.findFirst({ where: { label: LONG_WORDS.label } })) return;
  await db.enrollmentToken.create({
    data: { id: randomUUID(), secretHash: "0".repeat(64), label: LONG_WORDS.label, maxUses: 5, expiresAt: new Date(Date.now() + 86_400_000) },
  });
  await db.auditLog.create({
    data: {
      actor: LONG_WORDS.email,
      action: "catalogue.upload",
      targetType: "app_version",
      targetId: "com.example.scanner.with.a.long.package.name:120",
      ip: "203.0.113.77",
      details: { url: LONG_WORDS.url, sha256: LONG_WORDS.sha256, note: "uploaded from the warehouse" },
    },
  });
}

test("at 1280 px the audit log fits beside the sidebar, long words and all", async () => {
  await seedLongWords();
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const desktop = await newPage(context);
  await signIn(desktop, ADMIN.email, ADMIN.password);
  await navLink(desktop, "Audit log").click();
  await desktop.getByRole("heading", { name: "Audit log", exact: true }).waitFor();
  await desktop.getByRole("table").getByText(LONG_WORDS.url).waitFor();
  expect(await overflowing(desktop)).toEqual([]);
  // A usual name stays on one line beside the wide Details: the actor column does not shrink
  // to a few letters ("ada@exa / mple.com").
  const actorLines = await desktop
    .getByRole("cell", { name: ADMIN.email })
    .first()
    .evaluate((cell) => {
      const range = document.createRange();
      range.selectNode(cell.firstChild!);
      return new Set(Array.from(range.getClientRects()).map((rect) => Math.round(rect.top))).size;
    });
  expect(actorLines).toBe(1);
  await context.close();
});

test("at 390 px: a pinned header with a menu drawer, and tables that keep their actions on screen", async () => {
  const context = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
  const mobile = await newPage(context);
  // One long name (given back at the end: later steps find the device by its model).
  const longNamed = devices[2]!.deviceId;
  await api.server.deps.db.device.update({ where: { id: longNamed }, data: { alias: "Checkout lane 12 self-service kiosk" } });
  await signIn(mobile, ADMIN.email, ADMIN.password);
  await eventually("the device rows", async () => (await mobile.getByTestId("device-row").count()) === 3);
  await mobile.getByRole("link", { name: "Checkout lane 12 self-service kiosk" }).waitFor();
  expect(await mobile.getByRole("navigation", { name: "Main" }).count()).toBe(0);

  // Nothing wider than the screen; each row's selection box and status are on it.
  expect(await mobile.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);
  for (const row of await mobile.getByTestId("device-row").all()) {
    for (const part of [row.getByRole("checkbox"), row.getByText(/Online|Offline/).first()]) {
      const box = (await part.boundingBox())!;
      expect(box.x + box.width).toBeLessThanOrEqual(390);
    }
    // A long name wraps in its column instead of running under the status badge.
    const name = (await row.getByRole("link").first().boundingBox())!;
    const status = (await row
      .getByText(/Online|Offline/)
      .first()
      .boundingBox())!;
    expect(name.x + name.width).toBeLessThanOrEqual(status.x);
  }
  await mobile.evaluate(() => window.scrollTo(0, 0));
  await mobile.waitForTimeout(200);
  await mobile.screenshot({ path: path.join(SCREENSHOTS, "overview-mobile.png") });

  // The header stays at the top when the page scrolls.
  await mobile.evaluate(() => window.scrollTo(0, document.body.scrollHeight));
  await mobile.waitForTimeout(200);
  expect((await mobile.getByTestId("mobile-header").boundingBox())!.y).toBe(0);

  await mobile.getByRole("button", { name: "Open menu" }).click();
  const drawer = mobile.getByRole("dialog", { name: "Menu" });
  await drawer.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Commands" }).click();
  await mobile.getByRole("heading", { name: "Commands", exact: true }).waitFor();
  await drawer.waitFor({ state: "hidden" });
  expect(await mobile.evaluate(() => document.documentElement.scrollWidth)).toBeLessThanOrEqual(390);

  // The pages with the widest tables, holding the longest words they meet: a token's long
  // label, an audit entry's email, URL and hash.
  await seedLongWords();
  for (const [link, heading] of [
    ["Enrollment", "Enrollment"],
    ["Audit log", "Audit log"],
  ] as const) {
    await mobile.getByRole("button", { name: "Open menu" }).click();
    await drawer.getByRole("navigation", { name: "Main" }).getByRole("link", { name: link, exact: true }).click();
    await mobile.getByRole("heading", { name: heading, exact: true }).waitFor();
    await drawer.waitFor({ state: "hidden" });
    await mobile.getByText(LONG_WORDS.label).or(mobile.getByText(LONG_WORDS.url)).first().waitFor();
    expect({ page: link, overflowing: await overflowing(mobile) }).toEqual({ page: link, overflowing: [] });
  }

  // A batch's commands and the recent bulk commands: device names, statuses and all on screen.
  const batch = await api.server.deps.db.command.findFirstOrThrow({ where: { batchId: { not: null } }, orderBy: { createdAt: "desc" } });
  await mobile.goto(`${web.url}/commands?batch=${batch.batchId}`);
  await mobile.getByRole("heading", { name: "Commands", exact: true }).waitFor();
  await eventually("the batch's rows", async () => (await mobile.getByTestId("command-row").count()) > 0);
  await mobile.getByTestId("batch-row").first().waitFor();
  expect({ page: "Commands", overflowing: await overflowing(mobile) }).toEqual({ page: "Commands", overflowing: [] });
  for (const status of await mobile.getByTestId("command-status").filter({ visible: true }).all()) {
    const box = (await status.boundingBox())!;
    expect(box.x + box.width).toBeLessThanOrEqual(390);
  }
  await mobile.screenshot({ path: path.join(SCREENSHOTS, "commands-mobile.png"), fullPage: true });

  await mobile.goto(`${web.url}/policies`);
  await mobile.getByRole("heading", { name: "Policies", exact: true }).waitFor();
  await mobile.waitForLoadState("networkidle");
  expect({ page: "Policies", overflowing: await overflowing(mobile) }).toEqual({ page: "Policies", overflowing: [] });
  await context.close();
  await api.server.deps.db.device.update({ where: { id: longNamed }, data: { alias: null } });
});

test("a lock to every device: progress, table and recent list agree from the first second to the last", async () => {
  // Nine more devices: twelve in all.
  await navLink(page, "Enrollment").click();
  await page.getByLabel("Devices it may enroll").fill("20");
  await page.getByRole("button", { name: "Create token" }).click();
  await page.getByTestId("enrollment-qr").waitFor();
  const token = await page.getByTestId("enrollment-token").inputValue();
  for (let index = 0; index < 9; index++) {
    const device = await SimulatedDevice.enroll(api.url, token, { intervalMs: 2_000 });
    devices.push(device);
    await device.connect();
    device.start();
  }

  await navLink(page, "Commands").click();
  await page.getByRole("heading", { name: "Commands", exact: true }).waitFor();
  await page.getByRole("button", { name: "Send command", exact: true }).click();
  const dialog = page.getByRole("dialog", { name: "Send command" });
  await dialog.getByRole("combobox", { name: "Target" }).click();
  await page.getByRole("option", { name: "Every device" }).click();
  await dialog.getByRole("combobox", { name: "Command", exact: true }).click();
  await page.getByRole("option", { name: "Lock screen" }).click();
  await dialog.getByRole("button", { name: "Send", exact: true }).click();
  await page.getByRole("alertdialog").getByRole("button", { name: "Lock screen" }).click();
  await page.waitForURL("**/commands?batch=*");
  const batchId = new URL(page.url()).searchParams.get("batch")!;

  // At once: the card (no placeholder) and a table of this batch's commands only.
  await page.getByTestId("batch-state").waitFor({ timeout: 2_000 });
  await eventually("the batch's twelve commands", async () => (await page.getByTestId("command-row").count()) === 12, 5_000).catch(async (error) => {
    throw new Error(
      `${error.message}; rows: ${await page.getByTestId("command-row").count()}; devices in the API: ${await api.server.deps.db.device.count({ where: { retiredAt: null } })}`,
    );
  });
  const batchIds = await page.getByTestId("command-row").evaluateAll((rows) => rows.map((row) => row.getAttribute("data-batch-id")));
  expect(new Set(batchIds)).toEqual(new Set([batchId]));

  // Whenever looked at, the three say the same; until the end.
  const snapshot = () =>
    page.evaluate((id) => {
      const text = (selector: string) => document.querySelector(selector)?.textContent ?? "";
      const statuses = Array.from(document.querySelectorAll('[data-testid="command-row"] [data-testid="command-status"]')).map((badge) => badge.textContent);
      const row = document.querySelector(`[data-testid="batch-row"][data-batch-id="${id}"]`);
      return {
        state: text('[data-testid="batch-state"]'),
        cardSucceeded: Number(/\d+/.exec(text('[data-testid="batch-succeeded"]'))?.[0] ?? 0),
        tableSucceeded: statuses.filter((status) => status === "succeeded").length,
        tableFinal: statuses.every((status) => ["succeeded", "failed", "expired", "cancelled"].includes(status ?? "")),
        listSucceeded: Number(/(\d+) succeeded/.exec(row?.querySelector('[data-testid="batch-row-progress"]')?.textContent ?? "")?.[1] ?? -1),
        listStatus: row?.querySelector('[data-testid="batch-row-status"]')?.textContent ?? "",
      };
    }, batchId);
  for (;;) {
    const seen = await snapshot();
    expect(seen.tableSucceeded).toBe(seen.cardSucceeded);
    if (seen.listSucceeded >= 0) expect(seen.listSucceeded).toBe(seen.cardSucceeded);
    if (seen.state === "Finished") {
      expect(seen.tableFinal).toBe(true);
      expect(seen.cardSucceeded).toBe(12);
      expect(seen.listStatus).toBe("done");
      break;
    }
    await page.waitForTimeout(100);
  }
  await page.getByTestId("batch-finished-count").getByText("12 of 12 done").waitFor();

  // The device column names each device and links to it.
  const link = page.getByTestId("command-device").first();
  expect(await link.textContent()).toMatch(/SIM-[0-9A-Z]{8}|Kiosk/);
  expect(await link.getAttribute("href")).toMatch(/^\/devices\/[0-9a-f-]{36}$/);
});

test("a device that closes its socket shows disconnected at once, while its heartbeat status has not lapsed yet", async () => {
  await navLink(page, "Overview").click();
  const device = devices[1]!;
  const row = page.getByTestId("device-row").filter({ has: page.getByRole("link", { name: /Kiosk B/ }) });
  await eventually("the socket shown connected", async () => (await row.getByTestId("socket-state").getAttribute("data-connected")) === "true");
  await device.stop();
  await eventually("the socket shown disconnected", async () => (await row.getByTestId("socket-state").getAttribute("data-connected")) === "false", 5_000);
  await row.getByText(/Disconnected (just now|\d+ seconds? ago)/).waitFor();
  await row.getByText("Online").waitFor();
});
