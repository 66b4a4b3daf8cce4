import { z } from "zod";
import { DateTime, Uuid, nonEmptyText, text } from "./primitives";

export const CreateEnrollmentTokenRequest = z.strictObject({
  label: text(200).optional(),
  maxUses: z.int().min(1).max(1_000_000).default(1),
  expiresInSeconds: z
    .int()
    .min(60)
    .max(365 * 24 * 3600)
    .default(7 * 24 * 3600),
});
export type CreateEnrollmentTokenRequest = z.infer<typeof CreateEnrollmentTokenRequest>;

export const EnrollmentToken = z.object({
  id: Uuid,
  label: z.string().nullable(),
  maxUses: z.int(),
  usedCount: z.int(),
  expiresAt: DateTime,
  revokedAt: DateTime.nullable(),
  createdAt: DateTime,
  createdBy: z.string().nullable(),
});
export type EnrollmentToken = z.infer<typeof EnrollmentToken>;

const PublicApiUrl = z
  .string()
  .nullable()
  .describe("The server URL devices are told to use (the API's `PUBLIC_API_URL`); null when unset, and the dashboard uses its own API URL.");

export const CreateEnrollmentTokenResponse = EnrollmentToken.extend({
  token: z.string().describe("The secret a device presents to `POST /v1/register`. Shown only this once."),
  publicApiUrl: PublicApiUrl,
});
export type CreateEnrollmentTokenResponse = z.infer<typeof CreateEnrollmentTokenResponse>;

export const ListEnrollmentTokensResponse = z.object({
  tokens: z.array(EnrollmentToken).describe("Newest first; the secrets are never shown again."),
  publicApiUrl: PublicApiUrl,
});
export type ListEnrollmentTokensResponse = z.infer<typeof ListEnrollmentTokensResponse>;

export const EnrollmentTokenIdParams = z.object({ tokenId: Uuid });
export type EnrollmentTokenIdParams = z.infer<typeof EnrollmentTokenIdParams>;

// ---- Android Enterprise device-owner provisioning -------------------------------------
// The keys a factory-reset device's setup wizard reads from a provisioning QR code: the
// EXTRA_PROVISIONING_* constants of android.app.admin.DevicePolicyManager.

export const PROVISIONING_EXTRA = {
  componentName: "android.app.extra.PROVISIONING_DEVICE_ADMIN_COMPONENT_NAME",
  packageDownloadLocation: "android.app.extra.PROVISIONING_DEVICE_ADMIN_PACKAGE_DOWNLOAD_LOCATION",
  signatureChecksum: "android.app.extra.PROVISIONING_DEVICE_ADMIN_SIGNATURE_CHECKSUM",
  wifiSsid: "android.app.extra.PROVISIONING_WIFI_SSID",
  wifiSecurityType: "android.app.extra.PROVISIONING_WIFI_SECURITY_TYPE",
  wifiPassword: "android.app.extra.PROVISIONING_WIFI_PASSWORD",
  wifiHidden: "android.app.extra.PROVISIONING_WIFI_HIDDEN",
  leaveAllSystemAppsEnabled: "android.app.extra.PROVISIONING_LEAVE_ALL_SYSTEM_APPS_ENABLED",
  adminExtrasBundle: "android.app.extra.PROVISIONING_ADMIN_EXTRAS_BUNDLE",
} as const;

/** The keys of the admin extras bundle our agent reads once it is device owner. */
export const PROVISIONING_ADMIN_EXTRAS = { serverUrl: "com.keelson.mdm.SERVER_URL", enrollmentToken: "com.keelson.mdm.ENROLLMENT_TOKEN" } as const;

/** URL-safe base64 of a SHA-256 digest, without padding: 43 characters. */
export const UrlSafeSha256 = z.string().regex(/^[A-Za-z0-9_-]{43}$/, "Must be the URL-safe base64 of a SHA-256 digest, without padding");

export const ProvisioningWifi = z
  .strictObject({
    ssid: nonEmptyText(32),
    securityType: z.enum(["NONE", "WPA", "WEP", "EAP"]).default("WPA").describe("As Android's setup wizard names them."),
    password: text(63).optional().describe("WPA: 8 to 63 characters; WEP: 5 or 13 characters, or 10 or 26 hexadecimal digits; none for NONE."),
    hidden: z.boolean().default(false),
  })
  // What the setup wizard would refuse on the factory-reset device, refused here instead.
  .superRefine((wifi, ctx) => {
    const password = wifi.password ?? "";
    const problem =
      wifi.securityType === "NONE" && password
        ? "An open network (securityType NONE) takes no password"
        : wifi.securityType === "WPA" && (password.length < 8 || password.length > 63)
          ? "A WPA password has 8 to 63 characters"
          : wifi.securityType === "WEP" && !(/^(.{5}|.{13})$/.test(password) || /^([0-9A-Fa-f]{10}|[0-9A-Fa-f]{26})$/.test(password))
            ? "A WEP key has 5 or 13 characters, or 10 or 26 hexadecimal digits"
            : undefined;
    if (problem) ctx.addIssue({ code: "custom", path: ["password"], message: problem });
  });
export type ProvisioningWifi = z.infer<typeof ProvisioningWifi>;

export const ProvisioningRequest = z.strictObject({
  enrollmentToken: nonEmptyText(200).describe(
    "The token's secret, as returned once by `POST /admin/enrollment-tokens` (the server keeps only its hash, so it cannot put it in the payload by itself). Must belong to the token in the path.",
  ),
  wifi: ProvisioningWifi.optional().describe("The network the device joins to download the agent."),
  leaveAllSystemAppsEnabled: z.boolean().default(true).describe("Whether the setup wizard keeps the system apps a device-owner setup would disable."),
  serverUrl: z
    .url({ protocol: /^https?$/ })
    .max(2048)
    .optional()
    .describe("The server URL the agent is given; unset: the server's `PUBLIC_API_URL` (409 when that is unset too)."),
});
export type ProvisioningRequest = z.infer<typeof ProvisioningRequest>;

export const ProvisioningPayload = z
  .object({
    [PROVISIONING_EXTRA.componentName]: z.string(),
    [PROVISIONING_EXTRA.packageDownloadLocation]: z.url(),
    [PROVISIONING_EXTRA.signatureChecksum]: UrlSafeSha256,
    [PROVISIONING_EXTRA.wifiSsid]: z.string().optional(),
    [PROVISIONING_EXTRA.wifiSecurityType]: z.enum(["NONE", "WPA", "WEP", "EAP"]).optional(),
    [PROVISIONING_EXTRA.wifiPassword]: z.string().optional(),
    [PROVISIONING_EXTRA.wifiHidden]: z.boolean().optional(),
    [PROVISIONING_EXTRA.leaveAllSystemAppsEnabled]: z.boolean(),
    [PROVISIONING_EXTRA.adminExtrasBundle]: z.object({
      [PROVISIONING_ADMIN_EXTRAS.serverUrl]: z.string(),
      [PROVISIONING_ADMIN_EXTRAS.enrollmentToken]: z.string(),
    }),
  })
  .describe("The JSON to encode, as is, in the provisioning QR code.");
export type ProvisioningPayload = z.infer<typeof ProvisioningPayload>;

export const ProvisioningResponse = z.object({
  payload: ProvisioningPayload,
  qrText: z.string().describe("`payload` serialized: the exact text of the QR code."),
});
export type ProvisioningResponse = z.infer<typeof ProvisioningResponse>;
