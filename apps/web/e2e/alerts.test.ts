import { randomUUID } from "node:crypto";
import type { Browser, BrowserContext, Page } from "playwright-core";
import { createPasswordToken } from "../../api/src/modules/auth/password-reset.service";
import { sweepOffline } from "../../api/src/modules/fleet/fleet-monitor";
import { retireDevice } from "../../api/src/modules/lifecycle/lifecycle.service";
import { getAlertSettings } from "../../api/src/modules/fleet/fleet.service";
import { type Api, type Web, buildWeb, createFirstAdmin, freePort, launchBrowser, startApi, startWeb } from "./harness";

// Alert incidents on the Alerts page, as an admin sees them: devices that went offline
// together in one incident, their names, and the acknowledge button.

jest.setTimeout(10 * 60_000);

const ADMIN = { name: "Ada Admin", email: "ada@example.com", password: "correct horse battery staple" };

let api: Api;
let web: Web;
let browser: Browser;
let admin: BrowserContext;
let page: Page;

beforeAll(async () => {
  const webPort = await freePort();
  api = await startApi(`http://127.0.0.1:${webPort}`);
  await buildWeb(api.url);
  web = await startWeb(webPort, api.url);
  browser = await launchBrowser();
  admin = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  page = await admin.newPage();
  page.setDefaultTimeout(20_000);

  await createFirstAdmin(page, web.url, ADMIN);
});

afterAll(async () => {
  await browser?.close();
  await web?.stop();
  await api?.close();
});

/** A device that heartbeated `secondsAgo` seconds ago and still counts as online. */
async function deviceLastSeen(alias: string, secondsAgo: number): Promise<string> {
  const { db, clock } = api.server.deps;
  const id = randomUUID();
  await db.device.create({
    data: { id, tokenHash: "0".repeat(64), alias, model: "Pixel 8", online: true, lastSeenAt: new Date(clock.now().getTime() - secondsAgo * 1000) },
  });
  return id;
}

test("the alerts page shows an incident with its devices, and the admin acknowledges it", async () => {
  const till1 = await deviceLastSeen("Till 1", 3600);
  const till2 = await deviceLastSeen("Till 2", 3600);
  await sweepOffline(api.server.deps);

  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Alerts", exact: true }).click();
  await page.getByRole("heading", { name: "Incidents" }).waitFor();
  const incident = page.getByTestId("incident").filter({ hasText: "2 devices went offline" });
  await incident.getByText("open", { exact: true }).waitFor();
  await incident.getByText("0 of 2 back").waitFor();
  await incident.getByRole("button", { name: "Show devices" }).click();
  await incident.getByTestId("incident-device").filter({ hasText: "Till 1" }).getByText("still away").waitFor();
  await incident.getByTestId("incident-device").filter({ hasText: "Till 2" }).waitFor();

  await incident.getByRole("button", { name: "Acknowledge" }).click();
  await incident.getByText(`Acknowledged by ${ADMIN.email}`).waitFor();
  expect(await incident.getByRole("button", { name: "Acknowledge" }).count()).toBe(0);
  expect(await api.server.deps.db.auditLog.count({ where: { action: "alert_incident.acknowledge", actor: ADMIN.email } })).toBe(1);

  await page.getByRole("button", { name: "Resolved", exact: true }).click();
  await page.getByText("No incident").waitFor();

  // Till 2 is retired while away and Till 1 comes back: the incident resolves, and says
  // one came back and one left the fleet (not "2 of 2 back").
  await retireDevice(api.server.deps, till2, { name: ADMIN.email });
  await api.server.deps.db.device.update({ where: { id: till1 }, data: { online: true, lastSeenAt: api.server.deps.clock.now() } });
  await sweepOffline(api.server.deps);
  await page.reload();
  await page.getByRole("button", { name: "Resolved", exact: true }).click();
  const resolved = page.getByTestId("incident").filter({ hasText: "2 devices went offline" });
  await resolved.getByText("resolved", { exact: true }).waitFor();
  await resolved.getByText(/1 of 2 back, 1 retired$/).waitFor();
  await resolved.getByRole("button", { name: "Show devices" }).click();
  await resolved
    .getByTestId("incident-device")
    .filter({ hasText: "Till 1" })
    .getByText(/ · back /)
    .waitFor();
  await resolved
    .getByTestId("incident-device")
    .filter({ hasText: "Till 2" })
    .getByText(/ · retired /)
    .waitFor();
});

test("saving the alert settings unchanged keeps the offline threshold the API has", async () => {
  const { offlineAfterSeconds: threshold } = await getAlertSettings(api.server.deps);
  expect(threshold % 60).not.toBe(0); // the default (two missed heartbeats and a grace) is no whole number of minutes
  await page.goto(`${web.url}/alerts`);
  const field = page.getByLabel(/offline after/i);
  await field.waitFor();
  expect(await field.inputValue()).toBe(String(threshold));
  await page.getByRole("button", { name: "Save settings" }).click();
  await page.getByText("Alert settings saved").waitFor();
  expect((await getAlertSettings(api.server.deps)).offlineAfterSeconds).toBe(threshold);
});

test("an expired reset link is refused as the page opens, with a link to ask for a new one", async () => {
  const { db } = api.server.deps;
  const user = await db.user.findUniqueOrThrow({ where: { email: ADMIN.email } });
  const { link } = await createPasswordToken(api.server.deps, db, user.id, -60);
  const context = await browser.newContext();
  const target = await context.newPage();
  await target.goto(link);
  await target.getByRole("alert").getByText("invalid, expired or already used").waitFor();
  expect(await target.getByLabel("New password").count()).toBe(0);
  await target.getByRole("link", { name: "Ask for a new link" }).click();
  await target.getByRole("button", { name: "Send the link" }).waitFor();
  await context.close();
});

test("at 390 px the users, alerts, enrollment and mail tables keep their actions on screen", async () => {
  const { db, clock } = api.server.deps;
  const width = 390;
  await db.user.create({
    data: {
      id: randomUUID(),
      email: "olga.operator.with.a.long.address@example.com",
      name: "Olga",
      role: "operator",
      passwordHash: "$2a$10$notarealhashnotarealhashnotarealhashnotarealhashnotar",
    },
  });
  const link = `${web.url}/reset-password?token=${randomUUID()}.${"a".repeat(43)}`;
  await db.outboxMail.create({
    data: {
      kind: "invite",
      to: ["olga.operator.with.a.long.address@example.com"],
      subject: "You are invited",
      text: `Choose a password: ${link}\n`,
      status: "recorded",
      nextAttemptAt: null,
      createdAt: clock.now(),
    },
  });
  await page.setViewportSize({ width, height: 844 });

  /** The element is inside the 390 px viewport, not pushed off to the right by a wide table. */
  const withinViewport = async (what: string, locator: ReturnType<Page["locator"]>) => {
    await locator.waitFor();
    const box = await locator.boundingBox();
    if (!box) throw new Error(`${what}: not rendered`);
    expect({ what, left: box.x >= 0, right: box.x + box.width <= width }).toEqual({ what, left: true, right: true });
  };

  await page.goto(`${web.url}/users`);
  const olga = page.getByTestId("user-row").filter({ hasText: "Olga" });
  await withinViewport("the Disable button", olga.getByRole("button", { name: "Disable" }));
  await withinViewport("the role menu", olga.getByLabel(/^Role of olga/));

  await page.goto(`${web.url}/enrollment`);
  await page.getByLabel("Devices it may enroll").fill("5");
  await page.getByRole("button", { name: "Create token" }).click();
  await withinViewport("the Revoke button", page.getByRole("button", { name: "Revoke", exact: true }).first());

  await page.goto(`${web.url}/mail`);
  const mail = page.getByTestId("mail-row").filter({ hasText: "You are invited" });
  await withinViewport("the mail's status", mail.getByText("recorded, not sent"));
  await withinViewport("the mail's link", mail.getByRole("link", { name: /reset-password/ }));

  await page.goto(`${web.url}/alerts`);
  await page.getByRole("button", { name: "All", exact: true }).click();
  await withinViewport("the incident's Show devices button", page.getByTestId("incident").first().getByRole("button", { name: "Show devices" }));
  await page.setViewportSize({ width: 1440, height: 900 });
});
