import { type AppStatus, CommandPayloads, type CommandType } from "@mdm/contracts";

export type Outcome = { status: "succeeded"; result: Record<string, unknown> } | { status: "failed"; error: string };

/** What running a command does to the simulated device. */
export type Execution = {
  outcome: Outcome;
  apps: AppStatus[];
  /** The device must restart (drop and reopen its connection) before reporting. */
  reboot?: boolean;
  /** The device erases itself after reporting: its state and its enrollment are gone. */
  erase?: boolean;
  /** New keys to take (sealed with the current command key), before reporting. */
  rekey?: { sealed: string; commandKeyId: string };
  /** Lost mode entered (what the lock screen shows) or left (null). */
  lostMode?: LostMode | null;
};

export type LostMode = { message: string; phoneNumber: string };
export type Position = { latitude: number; longitude: number; accuracyMeters: number };

/** Where a simulated device says it is when nothing else was set: Keelson, a harbour town. */
export const DEFAULT_POSITION: Position = { latitude: 54.3233, longitude: 10.1228, accuracyMeters: 12 };

const failed = (apps: AppStatus[], error: string): Execution => ({ outcome: { status: "failed", error }, apps });
const succeeded = (apps: AppStatus[], result: Record<string, unknown> = {}): Execution => ({ outcome: { status: "succeeded", result }, apps });

/** Runs a command (already verified) against the device's app list, as an Android agent would. */
export function executeCommand(
  command: { type: CommandType; payload: Record<string, unknown> },
  apps: AppStatus[],
  position: Position = DEFAULT_POSITION,
): Execution {
  const payload = CommandPayloads[command.type].safeParse(command.payload);
  if (!payload.success) return failed(apps, `invalid ${command.type} payload: ${payload.error.issues.map((issue) => issue.message).join("; ")}`);
  const input = payload.data as Record<string, unknown>;
  const packageName = typeof input.packageName === "string" ? input.packageName : undefined;
  const installed = packageName ? apps.find((app) => app.packageName === packageName) : undefined;

  switch (command.type) {
    case "ping":
      return succeeded(apps, { pong: true });
    case "reboot":
      return { ...succeeded(apps, { rebooted: true }), reboot: true };
    case "lock":
      return succeeded(apps, { locked: true });
    case "launch_app":
    case "relaunch_app":
      if (!installed) return failed(apps, `${packageName} is not installed`);
      return succeeded(
        apps.map((app) => (app.packageName === packageName ? { ...app, running: true, foreground: true } : { ...app, foreground: false })),
        { packageName, running: true },
      );
    case "clear_app_data":
      if (!installed) return failed(apps, `${packageName} is not installed`);
      return succeeded(apps, { packageName, cleared: true });
    case "install_app": {
      const versionCode = typeof input.versionCode === "number" ? input.versionCode : (installed?.versionCode ?? 1);
      const app: AppStatus = { packageName: packageName!, versionCode, running: false, foreground: false };
      return succeeded([...apps.filter((existing) => existing.packageName !== packageName), app], { packageName, versionCode });
    }
    case "uninstall_app":
      if (!installed) return failed(apps, `${packageName} is not installed`);
      return succeeded(
        apps.filter((app) => app.packageName !== packageName),
        { packageName, uninstalled: true },
      );
    case "custom":
      return succeeded(apps, { action: input.action, ...(input.data === undefined ? {} : { data: input.data }) });
    case "wipe":
      return { ...succeeded(apps, { wiped: true }), erase: true };
    case "factory_reset":
      return { ...succeeded(apps, { reset: true }), erase: true };
    case "lost_mode":
      if (input.action === "enter") {
        return { ...succeeded(apps, { lostMode: true }), lostMode: { message: String(input.message), phoneNumber: String(input.phoneNumber) } };
      }
      return { ...succeeded(apps, { lostMode: false }), lostMode: null };
    case "locate":
      return succeeded(apps, { ...position, fixedAt: new Date().toISOString() });
    case "rotate_token":
      return { ...succeeded(apps, { rotated: true }), rekey: { sealed: String(input.sealed), commandKeyId: String(input.commandKeyId) } };
  }
}
