import fs from "node:fs";
import path from "node:path";
import { SimulatedDevice } from "@mdm/simulator";
import type { Browser, Page } from "playwright-core";
import {
  type Api,
  type Web,
  buildWeb,
  createFirstAdmin,
  eventually,
  freePort,
  launchBrowser,
  overflowing,
  screenshotWholePage,
  startApi,
  startWeb,
} from "./harness";

// The app catalogue as an operator uses it: upload two real APKs, start a release of the
// newer one at 25% of a group of simulated devices (which download it from the signed URL
// and check its SHA-256), advance it to 100%, then roll it back.

jest.setTimeout(10 * 60_000);

const SCREENSHOTS = path.join(__dirname, "screenshots");
const FIXTURES = path.join(__dirname, "../../api/test-fixtures/apk");
const PACKAGE = "com.keelson.fixture";
const ADMIN = { name: "Cat Operator", email: "cat@example.com", password: "correct horse battery staple" };

let api: Api;
let web: Web;
let browser: Browser;
let page: Page;
const devices: SimulatedDevice[] = [];

beforeAll(async () => {
  fs.mkdirSync(SCREENSHOTS, { recursive: true });
  const webPort = await freePort();
  // Devices are told an https address (a TLS proxy's) and fetch from the API itself.
  api = await startApi(`http://127.0.0.1:${webPort}`, { PUBLIC_API_URL: "https://mdm.example.test", COMMAND_RETRY_BASE_SECONDS: "0.5" });
  await buildWeb(api.url);
  web = await startWeb(webPort, api.url);
  browser = await launchBrowser();
  page = await (await browser.newContext({ viewport: { width: 1440, height: 900 } })).newPage();
  page.setDefaultTimeout(20_000);
});

afterAll(async () => {
  await Promise.all(devices.map((device) => device.stop()));
  await browser?.close();
  await web?.stop();
  await api?.close();
});

function progressOf(row: ReturnType<Page["getByRole"]>) {
  return row.getByTestId("release-progress").innerText();
}

test("the first admin signs in", async () => {
  await createFirstAdmin(page, web.url, ADMIN);
});

test("uploaded APKs show with the package, versions and certificate read from them", async () => {
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Catalogue", exact: true }).click();
  await page.getByRole("heading", { name: "Catalogue" }).waitFor();
  await page.getByText("No app yet").waitFor();
  await page.getByLabel("APK file").setInputFiles(path.join(FIXTURES, "fixture-v1.apk"));
  await page.getByTestId(`app-${PACKAGE}`).waitFor();
  await page.getByLabel("APK file").setInputFiles(path.join(FIXTURES, "fixture-v2.apk"));
  const card = page.getByTestId(`app-${PACKAGE}`);
  const versions = card.getByRole("table", { name: `Versions of ${PACKAGE}` });
  await eventually("both versions listed", async () => (await versions.getByRole("row").count()) === 3);
  await card.getByText("f161faad5dc4cb510dc0dc4ba9ad43163a3e13acfb171e6ed63c5867f3056b50").waitFor();
  expect(await versions.getByRole("row").nth(1).innerText()).toMatch(/1\.1\.0\s+2/);

  // Not an APK: the API's reason, shown to the user.
  const notApk = path.join(SCREENSHOTS, "..", "not-an-apk.apk");
  fs.writeFileSync(notApk, "plain text");
  try {
    await page.getByLabel("APK file").setInputFiles(notApk);
    await page.getByText(/not an APK/).waitFor();
    // Over 10 MB (where Next.js's rewrite stops forwarding a body): the API still gets all of
    // it and says why it is refused, where the upload used to hang.
    fs.writeFileSync(notApk, Buffer.alloc(11 * 1024 * 1024, "x"));
    await page.reload();
    const uploaded = page.waitForResponse((response) => new URL(response.url()).pathname === "/admin/apps" && response.request().method() === "POST");
    await page.getByLabel("APK file").setInputFiles(notApk);
    const answer = await uploaded;
    expect({ status: answer.status(), code: (await answer.json()).error?.code }).toEqual({ status: 400, code: "invalid_apk" });
    await page.getByText(/not an APK/).waitFor();
  } finally {
    fs.rmSync(notApk, { force: true });
  }
});

test("without an https PUBLIC_API_URL the catalogue says so up front and offers no release to start", async () => {
  const { env } = api.server.deps;
  const configured = env.PUBLIC_API_URL;
  Object.assign(env, { PUBLIC_API_URL: "http://10.0.0.5:8000" });
  try {
    await page.reload();
    const notice = page.getByTestId("releases-off");
    await notice.getByText("Releases need the API's public https:// address").waitFor();
    await notice.getByText("http://10.0.0.5:8000").waitFor();
    const start = page.getByTestId(`app-${PACKAGE}`).getByRole("button", { name: "Start release" });
    expect(await start.isDisabled()).toBe(true);
    expect(await start.getAttribute("aria-describedby")).toBe("releases-off");
  } finally {
    Object.assign(env, { PUBLIC_API_URL: configured });
  }
  await page.reload();
  await page.getByTestId(`app-${PACKAGE}`).getByRole("button", { name: "Start release" }).waitFor();
  expect(await page.getByTestId("releases-off").count()).toBe(0);
  expect(await page.getByTestId(`app-${PACKAGE}`).getByRole("button", { name: "Start release" }).isDisabled()).toBe(false);
});

test("a release at 25% of a group installs on a quarter of it, advances to 100%, and rolls back", async () => {
  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Enrollment", exact: true }).click();
  await page.getByLabel("Devices it may enroll").fill("8");
  await page.getByRole("button", { name: "Create token" }).click();
  await page.getByTestId("enrollment-qr").waitFor();
  const enrollmentToken = await page.getByTestId("enrollment-token").inputValue();
  for (let i = 0; i < 8; i++) {
    const device = await SimulatedDevice.enroll(api.url, enrollmentToken, { intervalMs: 1_000, downloadOrigin: api.url });
    // Each runs version 1 already, as a fleet does before an upgrade: a rollback returns it there.
    device.state = { ...device.state, apps: [...device.state.apps, { packageName: PACKAGE, versionName: "1.0.0", versionCode: 1, running: false }] };
    devices.push(device);
    await device.connect();
    device.start();
  }
  await api.server.deps.db.device.updateMany({ data: { groups: ["lobby"] } });
  // A rollback returns each device to the version it reported before its install was sent:
  // wait until every device's report of version 1 is stored.
  await eventually("every device reported version 1", async () =>
    (await api.server.deps.db.device.findMany({ select: { appStatus: true } })).every(
      (device) =>
        Array.isArray(device.appStatus) &&
        device.appStatus.some(
          (app) => (app as { packageName?: string; versionCode?: number }).packageName === PACKAGE && (app as { versionCode?: number }).versionCode === 1,
        ),
    ),
  );

  await page.getByRole("navigation", { name: "Main" }).getByRole("link", { name: "Catalogue", exact: true }).click();
  const card = page.getByTestId(`app-${PACKAGE}`);
  await card.getByLabel("Version", { exact: true }).selectOption("2");
  await card.getByLabel(/^Group/).fill("lobby");
  await card.getByLabel("Start at").selectOption("25");
  await card.getByRole("button", { name: "Start release" }).click();
  const row = card
    .getByRole("table", { name: `Releases of ${PACKAGE}` })
    .getByRole("row")
    .nth(1);
  // Generous: devices download and install, and the page polls every 5 s, on a busy machine.
  await eventually("2 of 8 installed", async () => /^2 installed · 0 pending · 0 failed · 2 of 8 sent$/.test(await progressOf(row)), 90_000);

  await row.getByRole("button", { name: "Advance" }).click();
  await eventually("8 of 8 installed", async () => /^8 installed · 0 pending · 0 failed · 8 of 8 sent$/.test(await progressOf(row)), 90_000);
  await row.getByText("100%").waitFor();
  await page.addStyleTag({ content: "[data-sonner-toaster] { display: none !important; }" });
  await screenshotWholePage(page, path.join(SCREENSHOTS, "catalogue-light.png"));

  await row.getByRole("button", { name: "Roll back" }).click();
  await page.getByRole("alertdialog").getByRole("button", { name: "Roll back" }).click();
  await row.getByText("rolled back").waitFor();
  // Every device ends up on version 1 again.
  await eventually(
    "8 devices back on version 1",
    async () => devices.every((device) => device.state.apps.some((app) => app.packageName === PACKAGE && app.versionCode === 1)),
    90_000,
  );
});

test("at 390 px the versions and releases keep their status and actions on screen", async () => {
  const context = await browser.newContext({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
  const mobile = await context.newPage();
  mobile.setDefaultTimeout(20_000);
  await mobile.goto(`${web.url}/sign-in`);
  await mobile.getByLabel("Email").fill(ADMIN.email);
  await mobile.getByLabel("Password").fill(ADMIN.password);
  await mobile.getByRole("button", { name: "Sign in" }).click();
  await mobile.getByRole("heading", { name: "Overview" }).waitFor();
  await mobile.goto(`${web.url}/catalogue`);
  const card = mobile.getByTestId(`app-${PACKAGE}`);
  await card
    .getByRole("list", { name: `Releases of ${PACKAGE}` })
    .getByText("rolled back")
    .waitFor();
  await screenshotWholePage(mobile, path.join(SCREENSHOTS, "catalogue-mobile.png"));
  expect(await overflowing(mobile)).toEqual([]);
  const deletes = await card.getByRole("button", { name: "Delete", exact: true }).all();
  expect(deletes).toHaveLength(2);
  for (const button of deletes) {
    const box = (await button.boundingBox())!;
    expect(box.x + box.width).toBeLessThanOrEqual(390);
  }
  await context.close();
});
