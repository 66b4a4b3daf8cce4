import { PROVISIONING_ADMIN_EXTRAS, PROVISIONING_EXTRA, ProvisioningResponse } from "@mdm/contracts";
import { type TestApp, type TestDatabase, adminRequest, createTestApp, createTestDatabase, resetTables } from "../../test";
import { signatureChecksum } from "../../config/env";

// SHA-256 of a signing certificate, as `apksigner verify --print-certs` prints it. Chosen so
// that standard base64 of it holds both '+' and '/' (the URL-safe alphabet must replace them).
const CERT_SHA256_HEX = "fbeffbeffbeffbeffbeffbeffbeffbeffbeffbeffbeffbeffbeffbeffbeffbef";
const AGENT_ENV = {
  AGENT_COMPONENT_NAME: "com.keelson.agent/.AdminReceiver",
  AGENT_APK_URL: "https://downloads.example.com/keelson-agent.apk",
  AGENT_SIGNATURE_CHECKSUM: CERT_SHA256_HEX,
  PUBLIC_API_URL: "https://mdm.example.com",
};
const URL_SAFE_SHA256_NO_PADDING = /^[A-Za-z0-9_-]{43}$/;

let database: TestDatabase;
beforeAll(async () => {
  database = await createTestDatabase();
});
afterAll(() => database.close());
beforeEach(() => resetTables(database.db));

async function newToken(t: TestApp, body: Record<string, unknown> = {}) {
  const res = await adminRequest(t.app, "POST", "/admin/enrollment-tokens", { maxUses: 5, ...body });
  expect(res.status).toBe(201);
  return res.body as { id: string; token: string };
}

describe("POST /admin/enrollment-tokens/{tokenId}/provisioning", () => {
  it("answers the device-owner payload with Android's field names and encodings", async () => {
    const t = createTestApp(database.db, { env: AGENT_ENV });
    const { id, token } = await newToken(t);
    const res = await adminRequest(t.app, "POST", `/admin/enrollment-tokens/${id}/provisioning`, {
      enrollmentToken: token,
      wifi: { ssid: "Store-42", securityType: "WPA", password: "correct horse", hidden: true },
    });
    expect(res.status).toBe(200);
    const body = ProvisioningResponse.parse(res.body);
    expect(body.payload).toEqual({
      "android.app.extra.PROVISIONING_DEVICE_ADMIN_COMPONENT_NAME": "com.keelson.agent/.AdminReceiver",
      "android.app.extra.PROVISIONING_DEVICE_ADMIN_PACKAGE_DOWNLOAD_LOCATION": "https://downloads.example.com/keelson-agent.apk",
      "android.app.extra.PROVISIONING_DEVICE_ADMIN_SIGNATURE_CHECKSUM": Buffer.from(CERT_SHA256_HEX, "hex").toString("base64url"),
      "android.app.extra.PROVISIONING_WIFI_SSID": "Store-42",
      "android.app.extra.PROVISIONING_WIFI_SECURITY_TYPE": "WPA",
      "android.app.extra.PROVISIONING_WIFI_PASSWORD": "correct horse",
      "android.app.extra.PROVISIONING_WIFI_HIDDEN": true,
      "android.app.extra.PROVISIONING_LEAVE_ALL_SYSTEM_APPS_ENABLED": true,
      "android.app.extra.PROVISIONING_ADMIN_EXTRAS_BUNDLE": {
        [PROVISIONING_ADMIN_EXTRAS.serverUrl]: "https://mdm.example.com",
        [PROVISIONING_ADMIN_EXTRAS.enrollmentToken]: token,
      },
    });
    const checksum = body.payload[PROVISIONING_EXTRA.signatureChecksum];
    expect(checksum).toMatch(URL_SAFE_SHA256_NO_PADDING);
    expect(checksum).not.toMatch(/[+/=]/);
    expect(Buffer.from(checksum, "base64url").toString("hex")).toBe(CERT_SHA256_HEX);
    // The QR code's text is the payload itself, booleans as JSON booleans (as the setup wizard reads them).
    expect(JSON.parse(body.qrText)).toEqual(body.payload);
    expect(body.qrText).toContain('"android.app.extra.PROVISIONING_WIFI_HIDDEN":true');
  });

  it("leaves the Wi-Fi fields out when no network is given", async () => {
    const t = createTestApp(database.db, { env: AGENT_ENV });
    const { id, token } = await newToken(t);
    const res = await adminRequest(t.app, "POST", `/admin/enrollment-tokens/${id}/provisioning`, { enrollmentToken: token, leaveAllSystemAppsEnabled: false });
    expect(res.status).toBe(200);
    expect(Object.keys(res.body.payload).filter((key) => key.includes("WIFI"))).toEqual([]);
    expect(res.body.payload[PROVISIONING_EXTRA.leaveAllSystemAppsEnabled]).toBe(false);
  });

  it("accepts the checksum setting as hex with colons or as base64 of either alphabet, and always answers URL-safe without padding", () => {
    const expected = Buffer.from(CERT_SHA256_HEX, "hex").toString("base64url");
    const withColons = CERT_SHA256_HEX.toUpperCase().match(/../g)!.join(":");
    expect(signatureChecksum(withColons)).toBe(expected);
    expect(signatureChecksum(Buffer.from(CERT_SHA256_HEX, "hex").toString("base64"))).toBe(expected);
    expect(signatureChecksum(expected)).toBe(expected);
    expect(signatureChecksum("not a digest")).toBeUndefined();
  });

  it("answers 409 naming the settings that are missing", async () => {
    const t = createTestApp(database.db, { env: { PUBLIC_API_URL: "https://mdm.example.com" } });
    const { id, token } = await newToken(t);
    const res = await adminRequest(t.app, "POST", `/admin/enrollment-tokens/${id}/provisioning`, { enrollmentToken: token });
    expect(res.status).toBe(409);
    expect(res.body.error.code).toBe("conflict");
    expect(res.body.error.message).toContain("AGENT_COMPONENT_NAME, AGENT_APK_URL, AGENT_SIGNATURE_CHECKSUM");
  });

  it("takes the server URL from the request when PUBLIC_API_URL is unset", async () => {
    const { PUBLIC_API_URL: _unset, ...env } = AGENT_ENV;
    const t = createTestApp(database.db, { env });
    const { id, token } = await newToken(t);
    const refused = await adminRequest(t.app, "POST", `/admin/enrollment-tokens/${id}/provisioning`, { enrollmentToken: token });
    expect(refused.status).toBe(409);
    expect(refused.body.error.message).toContain("PUBLIC_API_URL");
    const res = await adminRequest(t.app, "POST", `/admin/enrollment-tokens/${id}/provisioning`, {
      enrollmentToken: token,
      serverUrl: "http://10.0.0.5:8000/",
    });
    expect(res.status).toBe(200);
    expect(res.body.payload[PROVISIONING_EXTRA.adminExtrasBundle][PROVISIONING_ADMIN_EXTRAS.serverUrl]).toBe("http://10.0.0.5:8000");
  });

  it("refuses another token's secret (400 with its path), an unknown token (404) and a revoked one (409)", async () => {
    const t = createTestApp(database.db, { env: AGENT_ENV });
    const first = await newToken(t);
    const second = await newToken(t);
    const wrong = await adminRequest(t.app, "POST", `/admin/enrollment-tokens/${first.id}/provisioning`, { enrollmentToken: second.token });
    expect(wrong.status).toBe(400);
    expect(wrong.body.error.details).toEqual([expect.objectContaining({ path: "enrollmentToken" })]);
    const unknown = await adminRequest(t.app, "POST", "/admin/enrollment-tokens/00000000-0000-4000-8000-000000000000/provisioning", {
      enrollmentToken: first.token,
    });
    expect(unknown.status).toBe(404);
    expect((await adminRequest(t.app, "POST", `/admin/enrollment-tokens/${first.id}/revoke`)).status).toBe(200);
    const revoked = await adminRequest(t.app, "POST", `/admin/enrollment-tokens/${first.id}/provisioning`, { enrollmentToken: first.token });
    expect(revoked.status).toBe(409);
  });

  it("refuses invalid Wi-Fi settings with their paths", async () => {
    const t = createTestApp(database.db, { env: AGENT_ENV });
    const { id, token } = await newToken(t);
    const res = await adminRequest(t.app, "POST", `/admin/enrollment-tokens/${id}/provisioning`, {
      enrollmentToken: token,
      wifi: { ssid: "", securityType: "WPA3" },
    });
    expect(res.status).toBe(400);
    expect(res.body.error.details.map((issue: { path: string }) => issue.path).sort()).toEqual(["wifi.securityType", "wifi.ssid"]);
  });

  it.each([
    [{ securityType: "NONE", password: "secret" }, "An open network (securityType NONE) takes no password"],
    [{ securityType: "WPA" }, "A WPA password has 8 to 63 characters"],
    [{ securityType: "WPA", password: "short" }, "A WPA password has 8 to 63 characters"],
    [{ securityType: "WEP", password: "123456" }, "A WEP key has 5 or 13 characters, or 10 or 26 hexadecimal digits"],
  ])("refuses a password the setup wizard would refuse: %j", async (wifi, message) => {
    const t = createTestApp(database.db, { env: AGENT_ENV });
    const { id, token } = await newToken(t);
    const res = await adminRequest(t.app, "POST", `/admin/enrollment-tokens/${id}/provisioning`, {
      enrollmentToken: token,
      wifi: { ssid: "Store-42", ...wifi },
    });
    expect(res.status).toBe(400);
    expect(res.body.error.details).toEqual([{ path: "wifi.password", message }]);
  });

  it("takes an open network without a password and a WEP key in hex", async () => {
    const t = createTestApp(database.db, { env: AGENT_ENV });
    for (const wifi of [{ securityType: "NONE" }, { securityType: "WEP", password: "0123456789abcdef0123456789" }]) {
      const { id, token } = await newToken(t);
      const res = await adminRequest(t.app, "POST", `/admin/enrollment-tokens/${id}/provisioning`, {
        enrollmentToken: token,
        wifi: { ssid: "Store-42", ...wifi },
      });
      expect(res.status).toBe(200);
    }
  });
});
