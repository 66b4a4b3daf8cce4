import fs from "node:fs";
import path from "node:path";
import { SimulatedDevice } from "@mdm/simulator";
import type { Browser, Page } from "playwright-core";
import { type Api, type Web, buildWeb, createFirstAdmin, eventually, freePort, launchBrowser, screenshotWholePage, startApi, startWeb } from "./harness";

// Provisioning and policies end to end: the enrollment page's two QR codes, a policy edited
// in the schema-built form (an invalid setting refused with its field named), assigned to a
// simulated device that applies it over its socket, the device page's compliance and the
// source of each setting, the history's diff and a one-click revert.

// The production build shares a busy machine: it may take many minutes.
jest.setTimeout(25 * 60_000);

const SCREENSHOTS = path.join(__dirname, "screenshots");
const ADMIN = { name: "Pat Policy", email: "pat@example.com", password: "correct horse battery staple" };
const AGENT = {
  AGENT_COMPONENT_NAME: "com.keelson.agent/.AdminReceiver",
  AGENT_APK_URL: "https://downloads.example.com/keelson-agent.apk",
  AGENT_SIGNATURE_CHECKSUM: "fbeffbeffbeffbeffbeffbeffbeffbeffbeffbeffbeffbeffbeffbeffbeffbef",
  PUBLIC_API_URL: "https://mdm.example.com",
};

let api: Api;
let web: Web;
let browser: Browser;
let page: Page;
const devices: SimulatedDevice[] = [];
let enrollmentToken: string;
let device: SimulatedDevice;

function navLink(name: string) {
  return page.getByRole("navigation", { name: "Main" }).getByRole("link", { name, exact: true });
}

beforeAll(async () => {
  fs.mkdirSync(SCREENSHOTS, { recursive: true });
  const webPort = await freePort();
  api = await startApi(`http://127.0.0.1:${webPort}`, AGENT);
  await buildWeb(api.url);
  web = await startWeb(webPort, api.url);
  browser = await launchBrowser();
  page = await (await browser.newContext({ viewport: { width: 1440, height: 1000 } })).newPage();
  page.setDefaultTimeout(20_000);
});

afterAll(async () => {
  await Promise.all(devices.map((each) => each.stop()));
  await browser?.close();
  await web?.stop();
  await api?.close();
});

test("the first admin signs in", async () => {
  await createFirstAdmin(page, web.url, ADMIN);
});

test("the enrollment page shows the simple QR code and, on request, the device-owner provisioning QR code, saying which is which", async () => {
  await navLink("Enrollment").click();
  await page.getByRole("button", { name: "Create token" }).click();
  await page.getByTestId("enrollment-qr").waitFor();
  enrollmentToken = await page.getByTestId("enrollment-token").inputValue();
  await page.getByText("Simple QR code: scan it with the MDM agent already installed").waitFor();

  const section = page.getByTestId("provisioning-qr-section");
  await section.getByText("Device-owner provisioning QR code (factory-reset devices)").waitFor();
  await page.getByLabel("Wi-Fi network (optional)").fill("Store-42");
  await page.getByLabel("Wi-Fi password").fill("correct horse");
  await page.getByRole("button", { name: "Show the provisioning QR code" }).click();
  await page.getByTestId("provisioning-qr").waitFor();
  const payload = JSON.parse(await page.getByLabel("Device-owner payload").inputValue());
  expect(payload).toMatchObject({
    "android.app.extra.PROVISIONING_DEVICE_ADMIN_COMPONENT_NAME": AGENT.AGENT_COMPONENT_NAME,
    "android.app.extra.PROVISIONING_DEVICE_ADMIN_PACKAGE_DOWNLOAD_LOCATION": AGENT.AGENT_APK_URL,
    "android.app.extra.PROVISIONING_WIFI_SSID": "Store-42",
    "android.app.extra.PROVISIONING_WIFI_SECURITY_TYPE": "WPA",
  });
  expect(payload["android.app.extra.PROVISIONING_DEVICE_ADMIN_SIGNATURE_CHECKSUM"]).toMatch(/^[A-Za-z0-9_-]{43}$/);
  expect(Object.values(payload["android.app.extra.PROVISIONING_ADMIN_EXTRAS_BUNDLE"])).toEqual(["https://mdm.example.com", enrollmentToken]);
  await screenshotWholePage(page, path.join(SCREENSHOTS, "provisioning-qr-light.png"));
});

test("a policy edited in the form refuses an invalid setting by name, then saves a new version", async () => {
  device = await SimulatedDevice.enroll(api.url, enrollmentToken, {
    intervalMs: 2_000,
    facts: { model: "Till 7" },
    refuseSettings: ["restrictions.usbFileTransfer"],
  });
  devices.push(device);
  await device.connect();

  await navLink("Policies").click();
  await page.getByRole("heading", { name: "Policies" }).waitFor();
  await page.getByLabel("New policy name").fill("Store kiosk");
  await page.getByRole("button", { name: "Create policy" }).click();
  await page.getByRole("heading", { name: "Store kiosk · version 1" }).waitFor();

  await page.locator("#policy-restrictions-camera").selectOption("false");
  await page.locator("#policy-screen-timeoutSeconds").fill("1");
  await page.getByRole("button", { name: "Save as a new version" }).click();
  await page.getByTestId("error-screen.timeoutSeconds").waitFor();
  // Words for people by the field, and a count by the button, not a list of paths.
  expect(await page.getByTestId("error-screen.timeoutSeconds").innerText()).toBe("Enter a number of at least 5.");
  expect(await page.getByTestId("policy-form-error").innerText()).toBe("One setting needs a change: see the message by its field.");

  await page.locator("#policy-screen-timeoutSeconds").fill("60");
  await page.locator("#policy-kiosk-lockTaskPackages").fill("com.example.till");
  await page.getByRole("button", { name: "Save as a new version" }).click();
  await page.getByRole("heading", { name: "Store kiosk · version 2" }).waitFor();
  await page.getByTestId("policy-version-2").getByText("restrictions.camera").waitFor();
});

test("assigned to the device, it is applied over the socket; the device page shows compliance and each setting's source", async () => {
  // The till app is installed (in the background): lock-task mode brings it to the front.
  device.state = { ...device.state, apps: [...device.state.apps, { packageName: "com.example.till", versionCode: 7, running: false, foreground: false }] };
  await page.getByLabel("Group name or device id").fill(device.deviceId);
  await page.getByRole("button", { name: "Assign", exact: true }).click();
  await page.getByTestId("policy-assignments").getByText(`device ${device.deviceId}`).waitFor();
  await eventually("the device applies the policy", async () => device.appliedPolicy?.policy.settings.screen?.timeoutSeconds === 60);
  expect(device.state.apps.find((app) => app.foreground)?.packageName).toBe("com.example.till");

  await page.goto(`${web.url}/devices/${device.deviceId}`);
  await page.getByTestId("device-effective-policy").waitFor();
  await eventually("compliant on the device page", async () => (await page.getByTestId("device-compliance").textContent()) === "Compliant");
  await page.getByTestId("source-restrictions.camera").getByText("Store kiosk v2").waitFor();
  await page.getByTestId("source-screen.timeoutSeconds").getByText("this device").waitFor();
  await screenshotWholePage(page, path.join(SCREENSHOTS, "device-policy-light.png"));
});

test("a setting the device refuses shows it failed with the reason, and the non-compliant filter lists it", async () => {
  await navLink("Policies").click();
  await page.locator("#policy-restrictions-usbFileTransfer").selectOption("false");
  await page.getByRole("button", { name: "Save as a new version" }).click();
  await page.getByRole("heading", { name: "Store kiosk · version 3" }).waitFor();
  await eventually("one failed device in the counts", async () => (await page.getByTestId("compliance-failed").textContent()) === "Failed: 1");

  await page.getByRole("link", { name: "List the non-compliant devices" }).click();
  await page.getByRole("heading", { name: "Overview" }).waitFor();
  await page.getByRole("link", { name: "Till 7" }).first().waitFor();

  await page.goto(`${web.url}/devices/${device.deviceId}`);
  await eventually("failed on the device page", async () => (await page.getByTestId("device-compliance").textContent()) === "Failed");
  await page.getByTestId("device-policy-failures").getByText("restrictions.usbFileTransfer").waitFor();
});

test("the history shows the diff, and a revert restores version 1's settings as version 4", async () => {
  await navLink("Policies").click();
  const history = page.getByTestId("policy-history");
  await history.getByTestId("policy-version-3").getByText("restrictions.usbFileTransfer").waitFor();
  await history.getByTestId("policy-version-1").getByRole("button", { name: "Revert to this version" }).click();
  await page.getByRole("heading", { name: "Store kiosk · version 4" }).waitFor();
  await history.getByTestId("policy-version-4").getByText("restores version 1").waitFor();
  expect(await page.locator("#policy-restrictions-camera").inputValue()).toBe("");
  await eventually("the device applies the reverted policy", async () => device.appliedPolicy?.policy.settings.restrictions === undefined);
  await screenshotWholePage(page, path.join(SCREENSHOTS, "policies-light.png"));
});
