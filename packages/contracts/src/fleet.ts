import { z } from "zod";
import { CommandStatus, CommandType } from "./commands";
import { AppStatus } from "./devices";
import { MailStatus } from "./mail";
import { DateTime, GroupName, Uuid, text } from "./primitives";

export const UpdateDeviceRequest = z
  .strictObject({
    alias: text(100).nullable().optional(),
    notes: text(2000).nullable().optional(),
    groups: z.array(GroupName).max(20).optional(),
  })
  .refine((value) => Object.keys(value).length > 0, { message: "Send at least one of alias, notes, groups" });
export type UpdateDeviceRequest = z.infer<typeof UpdateDeviceRequest>;

export const FleetSummary = z.object({
  total: z.int(),
  online: z.int(),
  offline: z.int(),
  lowBattery: z.int().describe("Devices whose last reported battery is below 20%."),
  commandsInFlight: z.int().describe("Commands queued, sent or acknowledged and not expired."),
});
export type FleetSummary = z.infer<typeof FleetSummary>;

export const GroupSummary = z.object({ name: z.string(), devices: z.int(), online: z.int() });
export const ListGroupsResponse = z.object({ groups: z.array(GroupSummary) });
export type ListGroupsResponse = z.infer<typeof ListGroupsResponse>;

export const TelemetryQuery = z.strictObject({
  hours: z.coerce.number().int().min(1).max(48).default(24),
});
export type TelemetryQuery = z.infer<typeof TelemetryQuery>;

/** Most points a telemetry history answers with: one per time bucket. */
export const MAX_TELEMETRY_POINTS = 500;
/** Most app list changes a telemetry history answers with (the latest ones). */
export const MAX_APP_CHANGES = 100;

export const TelemetryPoint = z.object({
  at: DateTime.describe("When the bucket's first heartbeat was received (buckets are `bucketSeconds` wide, counted from the window's start)."),
  batteryLevel: z.int().nullable().describe("Mean of the bucket's readings, rounded."),
  batteryCharging: z.boolean().nullable().describe("The bucket's latest reading."),
  memoryTotal: z.number().nullable().describe("The bucket's latest reading."),
  memoryAvailable: z.number().nullable().describe("Mean of the bucket's readings, rounded."),
  storageAvailable: z.number().nullable().describe("Mean of the bucket's readings, rounded."),
  networkType: z.string().nullable().optional().describe("The bucket's latest reading. Always sent by this server."),
  samples: z.int().optional().describe("Heartbeats in the bucket. Always sent by this server."),
});
export type TelemetryPoint = z.infer<typeof TelemetryPoint>;

export const AppListChange = z.object({
  at: DateTime,
  apps: z.array(AppStatus).describe("The app list the device reported, which differed from its previous one."),
});
export type AppListChange = z.infer<typeof AppListChange>;

export const TelemetryResponse = z.object({
  points: z.array(TelemetryPoint).describe(`Oldest first, at most ${MAX_TELEMETRY_POINTS}: buckets of \`bucketSeconds\` with at least one heartbeat.`),
  bucketSeconds: z.int().optional().describe("Width of each point's bucket. Always sent by this server."),
  appChanges: z
    .array(AppListChange)
    .optional()
    .describe(`When the app list changed over the window, oldest first (the latest ${MAX_APP_CHANGES}). Always sent by this server.`),
});
export type TelemetryResponse = z.infer<typeof TelemetryResponse>;

export const ListCommandsQuery = z.strictObject({
  deviceId: Uuid.optional(),
  batchId: Uuid.optional(),
  status: CommandStatus.optional(),
  type: CommandType.optional(),
  limit: z.coerce.number().int().min(1).max(200).default(50),
  offset: z.coerce.number().int().min(0).max(1_000_000).default(0),
});
export type ListCommandsQuery = z.infer<typeof ListCommandsQuery>;

// ---- Auto-relaunch policies ----------------------------------------------------------

export const AppPolicy = z.object({
  id: Uuid,
  deviceId: Uuid.nullable(),
  group: z.string().nullable(),
  packageName: z.string(),
  enabled: z.boolean(),
  createdAt: DateTime,
});
export type AppPolicy = z.infer<typeof AppPolicy>;

const PolicyPackage = z
  .string()
  .max(255)
  .regex(/^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)+$/, "Must be an Android package name");

export const CreateAppPolicyRequest = z.union([
  z.strictObject({ deviceId: Uuid, packageName: PolicyPackage, enabled: z.boolean().default(true) }),
  z.strictObject({ group: GroupName, packageName: PolicyPackage, enabled: z.boolean().default(true) }),
]);
export type CreateAppPolicyRequest = z.infer<typeof CreateAppPolicyRequest>;

export const ListAppPoliciesResponse = z.object({ policies: z.array(AppPolicy) });
export type ListAppPoliciesResponse = z.infer<typeof ListAppPoliciesResponse>;

export const PolicyIdParams = z.object({ policyId: Uuid });

// ---- Alerts --------------------------------------------------------------------------

export const AlertSettings = z.object({
  enabled: z.boolean(),
  offlineAfterSeconds: z
    .int()
    .min(60)
    .max(7 * 24 * 3600)
    .describe("A device without a heartbeat for this long is offline."),
  recipients: z.array(z.email().max(254)).max(50).describe("Empty: every active admin user."),
  groupOfflinePercent: z.int().min(1).max(100).nullable().describe("Alert once when this share of a group is offline; null: off."),
  cooldownMinutes: z
    .int()
    .min(1)
    .max(7 * 24 * 60)
    .describe("At most one group alert per group in this window."),
  alertWindowMinutes: z
    .int()
    .min(1)
    .max(24 * 60)
    .describe("Alert events (devices offline, back online, low battery) are collected this long from the first one, then mailed as one digest."),
  lowBatteryPercent: z
    .int()
    .min(1)
    .max(99)
    .nullable()
    .describe("An online device reporting a battery level below this joins a low-battery incident; null: off."),
});
export type AlertSettings = z.infer<typeof AlertSettings>;

export const UpdateAlertSettingsRequest = AlertSettings.partial().strict();
export type UpdateAlertSettingsRequest = z.infer<typeof UpdateAlertSettingsRequest>;

export const AlertRecord = z.object({
  id: z.string(),
  kind: z
    .enum(["device_offline", "group_offline", "digest"])
    .describe("`digest`: one mail listing one alert window's events; `device_offline`: per-device mails from before digests."),
  deviceId: Uuid.nullable(),
  group: z.string().nullable(),
  subject: z.string(),
  recipients: z.array(z.string()),
  raisedAt: DateTime,
  mail: z
    .object({ id: z.string(), status: MailStatus })
    .nullable()
    .describe("The alert's mail in the outbox; null once that row is pruned, or for alerts raised before the outbox existed."),
});
export const ListAlertsResponse = z.object({ alerts: z.array(AlertRecord) });
export type ListAlertsResponse = z.infer<typeof ListAlertsResponse>;

// ---- Alert incidents ---------------------------------------------------------------------

export const IncidentKind = z.enum(["offline", "low_battery"]);
export type IncidentKind = z.infer<typeof IncidentKind>;

export const IncidentIdParams = z.object({ incidentId: Uuid });

export const ListIncidentsQuery = z.strictObject({
  status: z.enum(["open", "resolved"]).optional().describe("Open: some device is not back yet; resolved: every device is back or retired. Default: both."),
  limit: z.coerce.number().int().min(1).max(200).default(50),
});
export type ListIncidentsQuery = z.infer<typeof ListIncidentsQuery>;

export const AlertIncident = z.object({
  id: Uuid,
  kind: IncidentKind,
  title: z.string().describe('What happened: for example "12 devices went offline" or "2 devices ran low on battery".'),
  openedAt: DateTime,
  resolvedAt: DateTime.nullable().describe("When the last of its devices came back (or was retired); null while open."),
  acknowledgedAt: DateTime.nullable(),
  acknowledgedBy: z.string().nullable().describe("The user (email) or key that acknowledged it."),
  deviceCount: z.int(),
  returnedCount: z.int().describe("Devices back online (or, for low battery, charged above the threshold)."),
  retiredCount: z
    .int()
    .describe(
      "Devices retired or deleted while away: they no longer keep the incident open and are not counted as back. Still away: deviceCount - returnedCount - retiredCount.",
    ),
});
export type AlertIncident = z.infer<typeof AlertIncident>;

export const AlertIncidentDevice = z.object({
  deviceId: Uuid,
  name: z.string().describe("The device's alias, else its serial number, else its model, else its id."),
  since: DateTime.describe("When it went offline (or its battery was first seen low)."),
  returnedAt: DateTime.nullable().describe("When it came back (or, for low battery, was charged); null while away or once retired."),
  retiredAt: DateTime.nullable().describe("When the incident saw it retired or deleted while away; null otherwise."),
  batteryLevel: z.int().nullable().describe("For low battery: the level that raised it."),
});
export type AlertIncidentDevice = z.infer<typeof AlertIncidentDevice>;

export const AlertIncidentDetail = AlertIncident.extend({ devices: z.array(AlertIncidentDevice).describe("At most 1,000, those still away first.") });
export type AlertIncidentDetail = z.infer<typeof AlertIncidentDetail>;

export const ListIncidentsResponse = z.object({ incidents: z.array(AlertIncident) });
export type ListIncidentsResponse = z.infer<typeof ListIncidentsResponse>;
export const UpdateAppPolicyRequest = z
  .strictObject({ packageName: PolicyPackage.optional(), enabled: z.boolean().optional() })
  .refine((body) => body.packageName !== undefined || body.enabled !== undefined, { message: "Send packageName or enabled" });
export type UpdateAppPolicyRequest = z.infer<typeof UpdateAppPolicyRequest>;
