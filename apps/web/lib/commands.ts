import { type Command, type CommandBatch, CommandStatus, CommandType, CommandPayloads, finalCommandStatuses } from "@mdm/contracts";
import type { badgeVariants } from "@/components/ui/badge";
import type { VariantProps } from "class-variance-authority";

const erasingTypes: readonly CommandType[] = ["wipe", "factory_reset"];

export const commandTypeLabels: Record<CommandType, string> = {
  ping: "Ping",
  reboot: "Reboot",
  lock: "Lock screen",
  launch_app: "Launch app",
  relaunch_app: "Relaunch app",
  clear_app_data: "Clear app data",
  install_app: "Install app",
  uninstall_app: "Uninstall app",
  custom: "Custom",
  wipe: "Wipe",
  factory_reset: "Factory reset",
  lost_mode: "Lost mode",
  locate: "Locate",
  rotate_token: "Rotate token",
};

/**
 * Types the send-command form offers. `rotate_token` is sent by the server itself (the
 * device's Rotate token action); wipe and factory reset only from a device's page, where
 * its alias or id must be typed first.
 */
export const formCommandTypes: readonly CommandType[] = CommandType.options.filter((type) => type !== "rotate_token" && !erasingTypes.includes(type));

/** Commands that interrupt whoever is using the device or lose data: confirmed before sending. */
export const destructiveCommandTypes: ReadonlySet<CommandType> = new Set([
  "reboot",
  "lock",
  "uninstall_app",
  "clear_app_data",
  "lost_mode",
  "wipe",
  "factory_reset",
]);

/** Commands that erase the device: sent only after its alias (or id) is typed. */
export const erasingCommandTypes: ReadonlySet<CommandType> = new Set(erasingTypes);

/** What must be typed to confirm erasing a device: its alias, or its id when it has none. */
export function erasureConfirmation(device: { id: string; alias: string | null }): string {
  return device.alias?.trim() ? device.alias.trim() : device.id;
}

/** What a bulk command was sent to, in words: "group lobby", "every device". */
export function batchTargetText(target: Record<string, unknown>): string {
  if (Array.isArray(target.deviceIds)) return `${target.deviceIds.length} selected devices`;
  if (typeof target.group === "string") return `group ${target.group}`;
  if (target.all === true) return "every device";
  return "devices";
}

export function isFinalStatus(status: CommandStatus): boolean {
  return finalCommandStatuses.includes(status);
}

type BadgeVariant = NonNullable<VariantProps<typeof badgeVariants>["variant"]>;

export const commandStatusVariant: Record<CommandStatus, BadgeVariant> = {
  queued: "secondary",
  sent: "outline",
  acknowledged: "outline",
  succeeded: "success",
  failed: "destructive",
  expired: "warning",
  cancelled: "secondary",
};

/** The form fields each command type asks for, in order. */
export type PayloadField = { name: string; label: string; required: boolean; kind: "text" | "url" | "number" | "json" | "hex"; placeholder?: string };

const packageField: PayloadField = { name: "packageName", label: "Package name", required: true, kind: "text", placeholder: "com.example.kiosk" };

export const payloadFields: Record<CommandType, PayloadField[]> = {
  ping: [],
  reboot: [],
  lock: [{ name: "message", label: "Message on the lock screen", required: false, kind: "text", placeholder: "Return this device to the front desk" }],
  launch_app: [packageField],
  relaunch_app: [packageField],
  clear_app_data: [packageField],
  install_app: [
    packageField,
    { name: "url", label: "APK URL (https)", required: true, kind: "url", placeholder: "https://example.com/app.apk" },
    { name: "sha256", label: "SHA-256 of the APK", required: true, kind: "hex", placeholder: "output of sha256sum app.apk" },
    { name: "versionCode", label: "Version code", required: false, kind: "number" },
  ],
  uninstall_app: [packageField],
  custom: [
    { name: "action", label: "Action", required: true, kind: "text", placeholder: "sync_catalog" },
    { name: "data", label: "Data (JSON object)", required: false, kind: "json", placeholder: '{"full": true}' },
  ],
  wipe: [{ name: "reason", label: "Reason (kept in the history)", required: false, kind: "text" }],
  factory_reset: [{ name: "reason", label: "Reason (kept in the history)", required: false, kind: "text" }],
  lost_mode: [
    { name: "action", label: "enter or exit", required: true, kind: "text", placeholder: "enter" },
    { name: "message", label: "Message on the lock screen", required: false, kind: "text", placeholder: "This device is lost. Please call:" },
    { name: "phoneNumber", label: "Phone number", required: false, kind: "text", placeholder: "+49 431 123456" },
  ],
  locate: [],
  rotate_token: [],
};

export type PayloadResult = { ok: true; payload: Record<string, unknown> } | { ok: false; errors: Record<string, string> };

/**
 * Turns the text of the payload form into the command's payload and checks it against the
 * contract, so mistakes show next to their field before anything is sent.
 */
export function buildCommandPayload(type: CommandType, values: Record<string, string>): PayloadResult {
  const payload: Record<string, unknown> = {};
  const errors: Record<string, string> = {};
  for (const field of payloadFields[type]) {
    const raw = (values[field.name] ?? "").trim();
    if (raw === "") {
      if (field.required) errors[field.name] = "Required";
      continue;
    }
    if (field.kind === "number") {
      const number = Number(raw);
      if (Number.isInteger(number)) payload[field.name] = number;
      else errors[field.name] = "Must be a whole number";
    } else if (field.kind === "json") {
      try {
        payload[field.name] = JSON.parse(raw);
      } catch {
        errors[field.name] = "Must be valid JSON";
      }
    } else if (field.kind === "hex") {
      // Tools differ in case (sha256sum: lower, certutil: upper); the contract wants lower.
      payload[field.name] = raw.toLowerCase();
    } else {
      payload[field.name] = raw;
    }
  }
  if (Object.keys(errors).length > 0) return { ok: false, errors };
  const parsed = CommandPayloads[type].safeParse(payload);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) errors[String(issue.path[0] ?? "payload")] ??= issue.message;
    return { ok: false, errors };
  }
  return { ok: true, payload: parsed.data as Record<string, unknown> };
}

export const ttlChoices = [
  { label: "5 minutes", seconds: 300 },
  { label: "1 hour", seconds: 3_600 },
  { label: "1 day (default)", seconds: 86_400 },
  { label: "7 days", seconds: 604_800 },
] as const;

/**
 * The batch as its own command list shows it. When that list holds every command of the
 * batch (a first page as long as the batch), the counts and `done` come from its rows, so
 * the progress card, the table under it and the row in the recent list cannot disagree;
 * otherwise the batch as the API last answered.
 */
export function batchAsListed(batch: CommandBatch, list: { total: number; commands: Array<Pick<Command, "status" | "batchId">> } | undefined): CommandBatch {
  if (!list || list.total !== batch.total || list.commands.length !== batch.total) return batch;
  if (list.commands.some((command) => command.batchId !== batch.batchId)) return batch;
  const counts = Object.fromEntries(CommandStatus.options.map((status) => [status, 0])) as CommandBatch["counts"];
  for (const command of list.commands) counts[command.status] += 1;
  return { ...batch, counts, done: list.commands.every((command) => isFinalStatus(command.status)) };
}
