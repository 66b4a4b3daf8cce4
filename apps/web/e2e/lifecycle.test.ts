import { WsCloseCode } from "@mdm/contracts";
import { SimulatedDevice } from "@mdm/simulator";
import type { Browser, Page } from "playwright-core";
import { type Api, type Web, buildWeb, createFirstAdmin, eventually, freePort, launchBrowser, startApi, startWeb } from "./harness";

// The device lifecycle in the dashboard, against simulated devices: bulk edit of a
// selection, locate (the position drawn without map tiles, with an OpenStreetMap link),
// lost mode, token rotation, a wipe that needs the device's id typed, retire (its socket
// closed with 4004) and delete, and a whole batch cancelled.

jest.setTimeout(10 * 60_000);

const ADMIN = { name: "Lena Lifecycle", email: "lena@example.com", password: "lifecycle password one" };
const POSITION = { latitude: 54.3233, longitude: 10.1228, accuracyMeters: 12 };

let api: Api;
let web: Web;
let browser: Browser;
let page: Page;
const devices: SimulatedDevice[] = [];
const byModel = new Map<string, SimulatedDevice>();

function navLink(target: Page, name: string) {
  return target.getByRole("navigation", { name: "Main" }).getByRole("link", { name, exact: true });
}

const dialog = () => page.getByRole("alertdialog");

beforeAll(async () => {
  const webPort = await freePort();
  api = await startApi(`http://127.0.0.1:${webPort}`);
  await buildWeb(api.url);
  web = await startWeb(webPort, api.url);
  browser = await launchBrowser();
  const context = await browser.newContext({ viewport: { width: 1440, height: 900 } });
  page = await context.newPage();
  page.setDefaultTimeout(20_000);
  // `next build` alone took over ten minutes on a machine shared with other builds.
}, 20 * 60_000);

afterAll(async () => {
  await Promise.all(devices.map((device) => device.stop()));
  await browser?.close();
  await web?.stop();
  await api?.close();
});

test("the first admin enrolls three simulated devices", async () => {
  await createFirstAdmin(page, web.url, ADMIN);

  await navLink(page, "Enrollment").click();
  await page.getByLabel("Devices it may enroll").fill("5");
  await page.getByRole("button", { name: "Create token" }).click();
  await page.getByTestId("enrollment-qr").waitFor();
  const token = await page.getByTestId("enrollment-token").inputValue();
  for (const model of ["Kiosk A", "Kiosk B", "Kiosk C"]) {
    const device = await SimulatedDevice.enroll(api.url, token, { intervalMs: 2_000, facts: { model }, position: POSITION });
    devices.push(device);
    byModel.set(model, device);
    await device.connect();
    device.start();
  }
  await navLink(page, "Overview").click();
  await eventually("three device rows", async () => (await page.getByTestId("device-row").count()) === 3);
});

test("bulk edit names and groups a selection", async () => {
  await page.getByRole("checkbox", { name: /Select Kiosk B/ }).click();
  await page.getByRole("checkbox", { name: /Select Kiosk C/ }).click();
  await page.getByRole("region", { name: "Selection" }).getByRole("button", { name: "Edit selected" }).click();
  const edit = page.getByRole("dialog", { name: /Edit 2 selected devices/ });
  await edit.getByLabel("Add to groups").fill("lobby");
  await edit.getByLabel("Alias prefix").fill("Till-");
  await edit.getByRole("button", { name: "Apply" }).click();
  await eventually(
    "the new aliases in the list",
    async () =>
      (await page
        .getByTestId("device-row")
        .getByText(/^Till-00[12]$/)
        .count()) === 2,
  );
  const b = await api.server.deps.db.device.findUniqueOrThrow({ where: { id: byModel.get("Kiosk B")!.deviceId } });
  expect(b.groups).toEqual(["lobby"]);
});

test("locate shows the reported position as coordinates, an OpenStreetMap link and a tile-free drawing", async () => {
  const device = byModel.get("Kiosk A")!;
  await page.goto(`${web.url}/devices/${device.deviceId}`);
  await page.getByText("No position reported yet.").waitFor();
  await page.getByRole("button", { name: "Locate", exact: true }).click();
  await dialog().getByRole("button", { name: "Locate", exact: true }).click();
  await page.getByTestId("device-coordinates").getByText("54.32330, 10.12280").waitFor({ timeout: 30_000 });
  const link = page.getByRole("link", { name: "Open in OpenStreetMap" });
  expect(await link.getAttribute("href")).toBe("https://www.openstreetmap.org/?mlat=54.3233&mlon=10.1228#map=16/54.3233/10.1228");
  expect(await page.getByTestId("device-position").locator("svg circle").count()).toBe(2);
  expect(await page.locator("img[src*='tile'], img[src*='openstreetmap']").count()).toBe(0);
});

test("lost mode puts the message and phone number on the device; rotation swaps its keys", async () => {
  const device = byModel.get("Kiosk A")!;
  await page.getByRole("button", { name: "Lost mode", exact: true }).click();
  await dialog().getByRole("button", { name: "Lost mode", exact: true }).isDisabled();
  await dialog().getByLabel("Message on the lock screen").fill("Found me? Please call");
  await dialog().getByLabel("Phone number").fill("+49 431 123456");
  await dialog().getByRole("button", { name: "Lost mode", exact: true }).click();
  await eventually("the lock screen", async () => device.lostMode?.phoneNumber === "+49 431 123456");
  expect(device.lostMode?.message).toBe("Found me? Please call");

  const keyId = device.registration.commandKeyId;
  await page.getByRole("button", { name: "Rotate token", exact: true }).click();
  await dialog().getByRole("button", { name: "Rotate token", exact: true }).click();
  await eventually("the device's new key", async () => device.registration.commandKeyId !== keyId, 30_000);
  await eventually(
    "the rotation done",
    async () => (await api.server.deps.db.device.findUniqueOrThrow({ where: { id: device.deviceId } })).pendingTokenHash === null,
  );
});

test("a wipe is sent only once the device's id is typed; the wiped device is retired", async () => {
  const device = byModel.get("Kiosk A")!;
  await page.getByRole("button", { name: "Wipe", exact: true }).click();
  const confirm = dialog().getByRole("button", { name: "Wipe", exact: true });
  expect(await confirm.isDisabled()).toBe(true);
  await dialog()
    .getByLabel(/to confirm/)
    .fill("not the id");
  expect(await confirm.isDisabled()).toBe(true);
  await dialog()
    .getByLabel(/to confirm/)
    .fill(device.deviceId);
  expect(await confirm.isDisabled()).toBe(false);
  await confirm.click();
  await eventually("the device wiped", async () => device.wiped, 30_000);
  await page.reload();
  await page.getByText(/Retired .*: its token no longer works\./).waitFor();
});

test("a batch waiting for an offline device is cancelled as a whole", async () => {
  await byModel.get("Kiosk C")!.stop();
  await navLink(page, "Overview").click();
  await page.getByRole("checkbox", { name: /Select Till-001/ }).click();
  await page.getByRole("checkbox", { name: /Select Till-002/ }).click();
  await page.getByRole("region", { name: "Selection" }).getByRole("button", { name: "Send command", exact: true }).click();
  await page.getByRole("dialog", { name: "Send command" }).getByRole("button", { name: "Send", exact: true }).click();
  await page.waitForURL("**/commands?batch=*");
  // Kiosk B answers at once; Kiosk C is offline, so its command waits.
  await eventually(
    "the connected device's result",
    async () =>
      (await page
        .getByTestId("batch-succeeded")
        .textContent()
        .catch(() => "")) === "succeeded: 1",
  );
  await page.getByRole("button", { name: "Cancel batch" }).click();
  await eventually(
    "the waiting command cancelled",
    async () =>
      (await page
        .getByTestId("batch-cancelled")
        .textContent()
        .catch(() => "")) === "cancelled: 1",
  );
  await page.getByTestId("batch-progress").getByText("Finished").waitFor();
});

test("retire closes the device's socket with 4004, then the retired device can be deleted", async () => {
  const device = byModel.get("Kiosk B")!;
  const closed = new Promise<number>((resolve) => device.once("disconnected", ({ code }) => resolve(code)));
  await page.goto(`${web.url}/devices/${device.deviceId}`);
  await page.getByRole("button", { name: "Retire", exact: true }).click();
  await dialog().getByRole("button", { name: "Retire", exact: true }).click();
  expect(await closed).toBe(WsCloseCode.retired);
  await page.reload();
  await page.getByText(/Retired .*: its token no longer works\./).waitFor();

  await page.getByRole("button", { name: "Delete device" }).click();
  await dialog().getByRole("button", { name: "Delete", exact: true }).click();
  await page.getByRole("heading", { name: "Overview" }).waitFor();
  expect(await api.server.deps.db.device.count({ where: { id: device.deviceId } })).toBe(0);
  // Only Kiosk C is left in service.
  await eventually("one device left in the list", async () => (await page.getByTestId("device-row").count()) === 1);
});
