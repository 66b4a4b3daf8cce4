import { z } from "zod";
import { DateTime, DeviceIdList, GroupName, Uuid, jsonObject, nonEmptyText, text } from "./primitives";

export const CommandType = z.enum([
  "ping",
  "reboot",
  "lock",
  "launch_app",
  "relaunch_app",
  "clear_app_data",
  "install_app",
  "uninstall_app",
  "custom",
  "wipe",
  "factory_reset",
  "lost_mode",
  "locate",
  "rotate_token",
]);
export type CommandType = z.infer<typeof CommandType>;

/** `acknowledged` is the device's delivery receipt: it has the command and will run it. */
export const CommandStatus = z.enum(["queued", "sent", "acknowledged", "succeeded", "failed", "expired", "cancelled"]);
export type CommandStatus = z.infer<typeof CommandStatus>;

/** Statuses after which a command never changes again. */
export const finalCommandStatuses: readonly CommandStatus[] = ["succeeded", "failed", "expired", "cancelled"];

export const PushOutcome = z
  .enum(["sent", "failed", "token_invalid", "no_token", "recorded"])
  .describe("`recorded`: no FCM credentials are configured, so the push was kept locally for inspection, not sent.");
export type PushOutcome = z.infer<typeof PushOutcome>;

const PackageName = z
  .string()
  .max(255)
  .regex(/^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)+$/, "Must be an Android package name such as com.example.app");

const EmptyPayload = z.strictObject({}).default({});
const AppPayload = z.strictObject({ packageName: PackageName });

// FCM data messages are limited to 4 KB in all: payload limits below keep well under it.
export const CommandPayloads = {
  ping: EmptyPayload,
  reboot: EmptyPayload,
  lock: z.strictObject({ message: text(200).optional() }).default({}),
  launch_app: AppPayload,
  relaunch_app: AppPayload,
  clear_app_data: AppPayload,
  install_app: z.strictObject({
    packageName: PackageName,
    // The device checks the downloaded APK against `sha256` before installing it: TLS keeps
    // the download from being swapped on the way, the hash keeps a swapped file from running.
    // Only as a WHATWG parser writes it back, without credentials: what is signed is then
    // what any agent's URL parser reads (`https:\\evil.example/a.apk` is no URL to some).
    url: z
      .url({ protocol: /^https$/, error: "Must be an https:// URL", abort: true })
      .max(2048)
      .refine(isPlainUrl, "Must be a plain https://host/path URL, as a browser writes it, without user or password")
      .pipe(text(2048)),
    sha256: z.string().regex(/^[a-f0-9]{64}$/, "Must be the APK's SHA-256 as 64 lowercase hex digits"),
    versionCode: z.int().min(1).optional(),
  }),
  uninstall_app: AppPayload,
  custom: z.strictObject({ action: nonEmptyText(100), data: jsonObject(1536).optional() }),
  // Destructive: the device erases its data (`wipe`: the managed data and the agent's
  // enrollment; `factory_reset`: everything) and leaves the fleet; it comes back only by
  // enrolling again with a new enrollment token.
  wipe: z.strictObject({ reason: text(200).optional() }).default({}),
  factory_reset: z.strictObject({ reason: text(200).optional() }).default({}),
  lost_mode: z
    .discriminatedUnion("action", [
      z.strictObject({
        action: z.literal("enter"),
        message: nonEmptyText(200).describe("Shown on the lock screen."),
        phoneNumber: z
          .string()
          .regex(/^\+?[0-9 ()-]{3,32}$/, "Must be a phone number: digits, spaces, ( ) - and an optional leading +")
          .describe("Shown on the lock screen, to call whoever finds the device."),
      }),
      z.strictObject({ action: z.literal("exit") }),
    ])
    .describe("`enter` locks the device on a screen with the message and phone number; `exit` leaves lost mode."),
  locate: EmptyPayload,
  // Sent by the server itself (POST /admin/devices/{id}/rotate-token), never by an admin
  // directly: `sealed` is RotationSecrets as JSON, sealed with the device's current
  // command key (sealWithCommandKey); the command is signed with that key as usual.
  rotate_token: z.strictObject({
    sealed: z.string().regex(/^[A-Za-z0-9_-]{16,4096}$/),
    commandKeyId: z
      .string()
      .regex(/^[A-Za-z0-9_-]{1,32}$/)
      .describe("Id of the new command key."),
  }),
} as const;

/** What a `rotate_token` command's `sealed` payload opens to. */
export const RotationSecrets = z.object({
  deviceToken: z.string().min(1),
  commandKey: z.string().regex(/^[a-f0-9]{64}$/),
  commandKeyId: z.string().regex(/^[A-Za-z0-9_-]{1,32}$/),
});
export type RotationSecrets = z.infer<typeof RotationSecrets>;

/**
 * What a device reports in `result` when these commands succeed; the server refuses
 * (400) a `succeeded` result that does not match. Other types' results are free-form.
 */
export const CommandResults = {
  wipe: z.object({ wiped: z.literal(true) }),
  factory_reset: z.object({ reset: z.literal(true) }),
  lost_mode: z.object({ lostMode: z.boolean().describe("Whether the device is in lost mode now.") }),
  locate: z.object({
    latitude: z.number().min(-90).max(90),
    longitude: z.number().min(-180).max(180),
    accuracyMeters: z.number().min(0).max(1_000_000).describe("Radius of 68% confidence, as Android's Location.getAccuracy()."),
    fixedAt: DateTime.optional().describe("Device clock time of the fix."),
  }),
  rotate_token: z.object({ rotated: z.literal(true) }),
} as const;
export type LocateResult = z.infer<typeof CommandResults.locate>;
export const LocateResult = CommandResults.locate;

/** Command types that erase the device: the dashboard asks for the device's alias or id to be typed first. */
export const destructiveCommandTypes: readonly CommandType[] = ["wipe", "factory_reset"];

function isPlainUrl(url: string): boolean {
  // zod runs this even when the URL check before it failed: unparsable is simply not plain.
  if (!URL.canParse(url)) return false;
  const parsed = new URL(url);
  return parsed.href === url && parsed.username === "" && parsed.password === "";
}

export const CommandDelivery = z
  .enum(["auto", "both"])
  .describe("`auto`: over the device's WebSocket when it has one open, else by FCM push. `both`: always push as well.");
export type CommandDelivery = z.infer<typeof CommandDelivery>;

const commandSettings = {
  delivery: CommandDelivery.default("auto"),
  ttlSeconds: z
    .int()
    .min(10)
    .max(30 * 24 * 3600)
    .optional()
    .describe("How long the command may wait for delivery; default 86400 (one day)."),
};
const commandOptions = { deviceId: Uuid, ...commandSettings };

/** One variant per command type, each with its own payload schema, plus `extra` fields. */
function commandVariants<Extra extends z.ZodRawShape>(extra: Extra) {
  return z.discriminatedUnion("type", [
    z.strictObject({ type: z.literal("ping"), payload: CommandPayloads.ping, ...extra }),
    z.strictObject({ type: z.literal("reboot"), payload: CommandPayloads.reboot, ...extra }),
    z.strictObject({ type: z.literal("lock"), payload: CommandPayloads.lock, ...extra }),
    z.strictObject({ type: z.literal("launch_app"), payload: CommandPayloads.launch_app, ...extra }),
    z.strictObject({ type: z.literal("relaunch_app"), payload: CommandPayloads.relaunch_app, ...extra }),
    z.strictObject({ type: z.literal("clear_app_data"), payload: CommandPayloads.clear_app_data, ...extra }),
    z.strictObject({ type: z.literal("install_app"), payload: CommandPayloads.install_app, ...extra }),
    z.strictObject({ type: z.literal("uninstall_app"), payload: CommandPayloads.uninstall_app, ...extra }),
    z.strictObject({ type: z.literal("custom"), payload: CommandPayloads.custom, ...extra }),
    z.strictObject({ type: z.literal("wipe"), payload: CommandPayloads.wipe, ...extra }),
    z.strictObject({ type: z.literal("factory_reset"), payload: CommandPayloads.factory_reset, ...extra }),
    z.strictObject({ type: z.literal("lost_mode"), payload: CommandPayloads.lost_mode, ...extra }),
    z.strictObject({ type: z.literal("locate"), payload: CommandPayloads.locate, ...extra }),
  ]);
}

export const CreateCommandRequest = commandVariants(commandOptions);
export type CreateCommandRequest = z.infer<typeof CreateCommandRequest>;

export const BulkTarget = z.union([
  z.strictObject({ deviceIds: DeviceIdList }),
  z.strictObject({ group: GroupName }),
  z.strictObject({ all: z.literal(true) }),
]);
export type BulkTarget = z.infer<typeof BulkTarget>;

const bulkOptions = { target: BulkTarget, ...commandSettings };

/** The same command for many devices: a list, a group, or the whole fleet. */
export const CreateBulkCommandRequest = commandVariants(bulkOptions);
export type CreateBulkCommandRequest = z.infer<typeof CreateBulkCommandRequest>;

const statusCounts = Object.fromEntries(CommandStatus.options.map((status) => [status, z.int()])) as Record<CommandStatus, z.ZodInt>;

export const CommandBatch = z.object({
  batchId: Uuid,
  type: z.string(),
  target: z.record(z.string(), z.unknown()),
  total: z.int().describe("Commands in the batch: one per device targeted, less those of devices deleted since (their commands leave with them)."),
  counts: z.object(statusCounts),
  done: z.boolean().describe("True when every command reached a final status."),
  createdAt: DateTime,
});
export type CommandBatch = z.infer<typeof CommandBatch>;

export const BatchIdParams = z.object({ batchId: Uuid });
export type BatchIdParams = z.infer<typeof BatchIdParams>;

export const CommandEvent = z.object({ status: CommandStatus, at: DateTime, detail: z.string().nullable() });
export type CommandEvent = z.infer<typeof CommandEvent>;

export const Command = z.object({
  requestId: Uuid,
  deviceId: Uuid,
  device: z
    .object({ alias: z.string().nullable(), serialNumber: z.string().nullable(), model: z.string().nullable() })
    .nullable()
    .describe("How people tell the target apart: its alias, serial number and model."),
  type: CommandType,
  payload: z.record(z.string(), z.unknown()),
  status: CommandStatus,
  createdAt: DateTime,
  expiresAt: DateTime,
  sentAt: DateTime.nullable(),
  acknowledgedAt: DateTime.nullable(),
  completedAt: DateTime.nullable(),
  push: z.object({
    outcome: PushOutcome.nullable(),
    messageId: z.string().nullable(),
    error: z.string().nullable(),
    attempts: z.int(),
  }),
  result: z.record(z.string(), z.unknown()).nullable(),
  errorMessage: z.string().nullable(),
  batchId: Uuid.nullable(),
  delivery: CommandDelivery,
  createdBy: z.string().nullable(),
  events: z.array(CommandEvent),
});
export type Command = z.infer<typeof Command>;

export const RequestIdParams = z.object({ requestId: Uuid });
export type RequestIdParams = z.infer<typeof RequestIdParams>;

/**
 * A command as a device receives it, in a heartbeat response or an FCM data message.
 * `signature` is hex HMAC-SHA256 over `commandSigningString(...)` with the device's
 * command key (returned once at registration); the device must verify it before acting.
 */
export const CommandKeyId = z
  .string()
  .regex(/^[A-Za-z0-9_-]{1,32}$/)
  .describe("Which of the device's command keys signed this command.");

export const DeviceCommand = z.object({
  keyId: CommandKeyId,
  requestId: Uuid,
  type: CommandType,
  payload: z.record(z.string(), z.unknown()),
  issuedAt: DateTime,
  expiresAt: DateTime,
  signature: z.string().regex(/^[a-f0-9]{64}$/),
});
export type DeviceCommand = z.infer<typeof DeviceCommand>;

/** The FCM data message: FCM data values must be strings, so the payload is JSON text. */
export const CommandPushData = z.object({
  kind: z.literal("command"),
  keyId: CommandKeyId,
  requestId: Uuid,
  type: CommandType,
  payload: z.string(),
  issuedAt: DateTime,
  expiresAt: DateTime,
  signature: z.string(),
});
export type CommandPushData = z.infer<typeof CommandPushData>;

export const ActionResultRequest = z.object({
  requestId: Uuid,
  status: z.enum(["acknowledged", "succeeded", "failed"]),
  result: jsonObject(8192).optional(),
  error: text(2000).optional(),
  completedAt: DateTime.optional().describe("Device clock time at which the command finished."),
});
export type ActionResultRequest = z.infer<typeof ActionResultRequest>;

export const ActionResultResponse = z.object({
  requestId: Uuid,
  status: CommandStatus,
  changed: z.boolean().describe("False when this result had already been recorded (a retry)."),
});
export type ActionResultResponse = z.infer<typeof ActionResultResponse>;

export const ListCommandsResponse = z.object({ commands: z.array(Command), total: z.int() });
export type ListCommandsResponse = z.infer<typeof ListCommandsResponse>;

export const ListBatchesResponse = z.object({ batches: z.array(CommandBatch).describe("Newest first, the last 100.") });
export type ListBatchesResponse = z.infer<typeof ListBatchesResponse>;
