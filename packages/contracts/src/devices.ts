import { z } from "zod";
import { DeviceCommand } from "./commands";
import { Bytes, DateTime, GroupName, Uuid, nonEmptyText, text } from "./primitives";
import { DevicePolicy, IgnoredPolicyFailures, PolicyReport } from "./policies";

// Device-facing bodies accept and ignore unknown fields, so a newer agent can talk to an
// older server. Admin-facing bodies are strict.

export const DeviceFacts = z.object({
  model: text(128).optional(),
  manufacturer: text(128).optional(),
  osVersion: text(64).optional(),
  sdkInt: z.int().min(1).max(1000).optional(),
  appVersion: text(64).optional().describe("Version of the MDM agent app."),
  serialNumber: text(128).optional(),
  fcmToken: text(4096).optional().describe("Firebase Cloud Messaging registration token, if the device has one."),
});
export type DeviceFacts = z.infer<typeof DeviceFacts>;

export const RegisterRequest = z.object({
  enrollmentToken: nonEmptyText(256),
  device: DeviceFacts.default({}),
});
export type RegisterRequest = z.infer<typeof RegisterRequest>;

export const RegisterResponse = z.object({
  deviceId: Uuid,
  deviceToken: z.string().describe("Send as `Authorization: Bearer <deviceToken>`. Shown only this once."),
  commandKey: z.string().describe("Hex key with which the device verifies the signature of every command it receives. Shown only this once."),
  commandKeyId: z.string().describe("The id of that key: commands signed with it carry it as `keyId`."),
  heartbeatIntervalSeconds: z.int(),
});
export type RegisterResponse = z.infer<typeof RegisterResponse>;

export const NetworkType = z.enum(["wifi", "cellular", "ethernet", "none", "other"]);
export type NetworkType = z.infer<typeof NetworkType>;

export const AppStatus = z.object({
  packageName: nonEmptyText(255),
  versionName: text(64).optional(),
  versionCode: z.int().min(0).optional(),
  running: z.boolean(),
  foreground: z.boolean().optional(),
});
export type AppStatus = z.infer<typeof AppStatus>;

export const Telemetry = z.object({
  deviceTime: DateTime.describe("The device's clock when it took these readings."),
  battery: z.object({ level: z.int().min(0).max(100), charging: z.boolean() }).optional(),
  memory: z.object({ total: Bytes, available: Bytes }).optional(),
  storage: z.object({ total: Bytes, available: Bytes }).optional(),
  network: z
    .object({
      type: NetworkType,
      signal: z.int().min(-200).max(100).optional().describe("Signal strength in dBm (or a 0-4 level)."),
      ip: text(64).optional(),
    })
    .optional(),
  apps: z.array(AppStatus).max(50).optional(),
  uptimeSeconds: z.int().min(0).optional(),
});
export type Telemetry = z.infer<typeof Telemetry>;

export const HeartbeatRequest = Telemetry.extend({
  appVersion: text(64).optional(),
  fcmToken: text(4096).optional().describe("Send when the FCM registration token changed; it clears an `invalid` push state."),
  policy: PolicyReport.optional().describe("The effective policy the device applied, and the settings it could not apply."),
});
export type HeartbeatRequest = z.infer<typeof HeartbeatRequest>;

export const HeartbeatResponse = z.object({
  serverTime: DateTime,
  heartbeatIntervalSeconds: z.int(),
  commands: z.array(DeviceCommand).describe("Commands still pending for this device, oldest first."),
  policy: DevicePolicy.optional().describe("Present when the device has not reported applying its current effective policy: apply it, then report its `hash`."),
  ignoredPolicyFailures: IgnoredPolicyFailures.optional(),
});
export type HeartbeatResponse = z.infer<typeof HeartbeatResponse>;

export const LegacyHeartbeatRequest = HeartbeatRequest.extend({
  deviceId: nonEmptyText(128).describe("The device's own stable identifier."),
  device: DeviceFacts.optional(),
});
export type LegacyHeartbeatRequest = z.infer<typeof LegacyHeartbeatRequest>;

export const LegacyHeartbeatResponse = HeartbeatResponse.extend({
  deviceId: Uuid,
  deviceToken: z
    .string()
    .optional()
    .describe(
      "Only in the answer to the device's first contact: store it, and send it as `Authorization: Bearer <deviceToken>` on every later call (also valid for `/v1/*` and `/ws/devices`).",
    ),
  commandKey: z.string().optional().describe("Only with `deviceToken`: the key to verify command signatures with, as in `/v1/register`."),
  commandKeyId: z.string().optional().describe("Only with `commandKey`: its id, as in `/v1/register`."),
});
export type LegacyHeartbeatResponse = z.infer<typeof LegacyHeartbeatResponse>;

export const DeviceView = z.object({
  id: Uuid,
  legacyId: z.string().nullable(),
  alias: z.string().nullable(),
  notes: z.string().nullable(),
  groups: z.array(z.string()),
  online: z.boolean().describe("Heartbeat seen within the offline threshold."),
  offlineSince: DateTime.nullable(),
  connected: z.boolean().describe("Holds an open WebSocket to the server."),
  connectedSince: DateTime.nullable().describe("When its current socket opened; null while disconnected."),
  disconnectedSince: DateTime.nullable().describe("When its last socket closed; null while connected or if it never held one."),
  model: z.string().nullable(),
  manufacturer: z.string().nullable(),
  osVersion: z.string().nullable(),
  sdkInt: z.int().nullable(),
  appVersion: z.string().nullable(),
  serialNumber: z.string().nullable(),
  enrolledAt: DateTime,
  lastSeenAt: DateTime.nullable(),
  retiredAt: DateTime.nullable().optional().describe("When the device was retired (its token refused); null while in service. Always sent by this server."),
  push: z.object({ registered: z.boolean(), invalidSince: DateTime.nullable() }),
  state: z.object({
    battery: z.object({ level: z.int(), charging: z.boolean().nullable() }).nullable(),
    memory: z.object({ total: z.number(), available: z.number() }).nullable(),
    storage: z.object({ total: z.number(), available: z.number() }).nullable(),
    network: z.object({ type: z.string(), signal: z.int().nullable(), ip: z.string().nullable() }).nullable(),
    apps: z.array(AppStatus),
    uptimeSeconds: z.number().nullable(),
    deviceTime: DateTime.nullable(),
  }),
});
export type DeviceView = z.infer<typeof DeviceView>;

export const DeviceSort = z.enum(["enrolledAt", "lastSeenAt", "batteryLevel", "alias", "model", "appVersion"]);
export type DeviceSort = z.infer<typeof DeviceSort>;

export const ListDevicesQuery = z
  .strictObject({
    limit: z.coerce.number().int().min(1).max(500).default(50),
    offset: z.coerce
      .number()
      .int()
      .min(0)
      .max(1_000_000)
      .default(0)
      .describe("Kept for compatibility: prefer `cursor`, which stays exact while devices enroll and costs the same on every page."),
    cursor: z
      .string()
      .regex(/^[A-Za-z0-9_-]{1,512}$/, { message: "Must be the nextCursor of a previous page" })
      .optional()
      .describe("`nextCursor` of the previous page, with the same `sort` and `order` (not with `offset`)."),
    sort: DeviceSort.default("enrolledAt"),
    order: z.enum(["asc", "desc"]).default("desc"),
    search: text(100)
      .optional()
      .describe("Substring of the alias, model, serial number or legacy id (case-insensitive; `%` and `_` are literal characters), or a whole device id."),
    status: z.enum(["online", "offline", "retired"]).optional().describe("Retired devices are left out unless `status=retired`, which lists only them."),
    group: GroupName.optional(),
    batteryBelow: z.coerce.number().int().min(1).max(101).optional().describe("Only devices whose battery level is below this."),
    appVersion: text(64).optional(),
    compliance: z
      .enum(["noncompliant", "pending", "failed", "compliant", "none"])
      .optional()
      .describe("Policy compliance; `noncompliant` is `pending` or `failed`."),
  })
  .refine((query) => !(query.cursor && query.offset > 0), { message: "Send either cursor or offset, not both", path: ["cursor"] });
export type ListDevicesQuery = z.infer<typeof ListDevicesQuery>;

export const ListDevicesResponse = z.object({
  devices: z.array(DeviceView),
  total: z.int().describe("Devices matching the filters, over all pages."),
  limit: z.int(),
  offset: z.int(),
  nextCursor: z.string().nullable().optional().describe("Pass as `cursor` for the next page; null on the last page. Always sent by this server."),
});
export type ListDevicesResponse = z.infer<typeof ListDevicesResponse>;

export const DeviceIdParams = z.object({ deviceId: Uuid });
export type DeviceIdParams = z.infer<typeof DeviceIdParams>;
