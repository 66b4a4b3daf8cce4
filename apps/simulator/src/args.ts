import { POLICY_SECTIONS, PolicySettings } from "@mdm/contracts";
import type { FleetOptions } from "./fleet";

export const USAGE = `Usage: npm run simulate -- --devices <n> --interval <duration> [options]

Enrolls <n> simulated devices, connects them over WebSocket, heartbeats and executes the
commands they receive; prints a summary line every few seconds (stderr) and a JSON
report at the end (stdout). Stops after --duration, or on Ctrl-C.

Options:
  --devices <n>             devices to simulate (default 10)
  --interval <duration>     heartbeat interval per device (default 60s)
  --duration <duration>     stop after this long (default: run until Ctrl-C)
  --url <url>               API base URL (default http://127.0.0.1:8000)
  --enrollment-token <t>    enroll with this token instead of creating one
  --admin-key <key>         admin key to create the token (env ADMIN_KEY; default: the local
                            API's generated one, apps/api/.data/dev-secrets.json)
  --hmac-secret <secret>    admin signing secret (env HMAC_SECRET; default: as --admin-key)
  --concurrency <n>         enrollments and connections in flight at once (default 25)
  --summary-every <dur>     summary line interval (default 5s)
  --seed <n>                repeatable telemetry
  --download-origin <url>   fetch install_app APKs from this origin instead of the one
                            their URL names (the server's https PUBLIC_API_URL may be a
                            proxy this machine cannot reach, e.g. a local npm start)
  --refuse-settings <list>  policy settings every device refuses to apply, as a device
                            without the feature would, comma-separated (e.g.
                            restrictions.camera,kiosk.statusBar): each is reported as a
                            failure with its reason, so the device reads failed
  -h, --help                this text

Durations: 500ms, 5s, 2m, 1h, or a number of seconds.`;

export class UsageError extends Error {
  override name = "UsageError";
}

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** "500ms", "5s", "1.5m", "2h", or a bare number of seconds, in milliseconds. */
export function parseDuration(text: string): number {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)?$/.exec(text.trim());
  if (!match) throw new UsageError(`Not a duration: "${text}" (use e.g. 500ms, 5s, 2m, 1h)`);
  const ms = Math.round(Number(match[1]) * UNITS[match[2] ?? "s"]!);
  if (ms <= 0) throw new UsageError(`A duration must be more than 0: "${text}"`);
  return ms;
}

function parseCount(flag: string, text: string, max: number): number {
  if (!/^\d+$/.test(text)) throw new UsageError(`${flag} takes a whole number, not "${text}"`);
  const value = Number(text);
  if (value < 1 || value > max) throw new UsageError(`${flag} must be between 1 and ${max}`);
  return value;
}

function parseUrl(text: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new UsageError(`--url is not a URL: "${text}"`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") throw new UsageError(`--url must be http or https: "${text}"`);
  return url.origin + url.pathname.replace(/\/+$/, "");
}

/** Every setting a policy can set, as devices report them: `kiosk.statusBar`..., `systemUpdate`. */
export function policySettingPaths(): string[] {
  return Object.entries(PolicySettings.shape).flatMap(([key, schema]) => {
    if (!(POLICY_SECTIONS as readonly string[]).includes(key)) return [key];
    const section = schema.unwrap();
    return "shape" in section ? Object.keys(section.shape).map((leaf) => `${key}.${leaf}`) : [key];
  });
}

function parseSettings(text: string): string[] {
  const settings = [...new Set(text.split(",").map((setting) => setting.trim()))].filter(Boolean);
  if (settings.length === 0) throw new UsageError("--refuse-settings takes a comma-separated list of policy settings, e.g. restrictions.camera");
  const known = policySettingPaths();
  const unknown = settings.filter((setting) => !known.includes(setting));
  if (unknown.length > 0) throw new UsageError(`--refuse-settings: not a policy setting: ${unknown.join(", ")} (one of ${known.join(", ")})`);
  return settings;
}

const FLAGS = [
  "devices",
  "interval",
  "duration",
  "url",
  "enrollment-token",
  "admin-key",
  "hmac-secret",
  "concurrency",
  "summary-every",
  "seed",
  "download-origin",
  "refuse-settings",
] as const;
type Flag = (typeof FLAGS)[number];

export type ParsedArgs = { help: true } | { help: false; options: Omit<FleetOptions, "log" | "signal"> };

/** The command line (`--flag value` or `--flag=value`) and ADMIN_KEY/HMAC_SECRET from the environment. */
export function parseArgs(argv: readonly string[], env: Record<string, string | undefined> = {}): ParsedArgs {
  const values = new Map<Flag, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === "-h" || arg === "--help") return { help: true };
    const match = /^--([a-z-]+)(?:=(.*))?$/.exec(arg);
    if (!match || !(FLAGS as readonly string[]).includes(match[1]!)) throw new UsageError(`Unknown argument: ${arg}`);
    const flag = match[1] as Flag;
    const value = match[2] ?? argv[++i];
    if (value === undefined || (match[2] === undefined && value.startsWith("--"))) throw new UsageError(`--${flag} needs a value`);
    values.set(flag, value);
  }
  const fromEnv = (name: string) => (env[name] ? env[name] : undefined);
  const duration = values.get("duration");
  const token = values.get("enrollment-token");
  const seed = values.get("seed");
  const downloadOrigin = values.get("download-origin");
  const refuseSettings = values.get("refuse-settings");
  return {
    help: false,
    options: {
      baseUrl: parseUrl(values.get("url") ?? "http://127.0.0.1:8000"),
      devices: parseCount("--devices", values.get("devices") ?? "10", 100_000),
      intervalMs: parseDuration(values.get("interval") ?? "60s"),
      ...(duration ? { durationMs: parseDuration(duration) } : {}),
      ...(token ? { enrollmentToken: token } : {}),
      // Unset: the local API's generated development secrets, when creating the enrollment token.
      adminKey: values.get("admin-key") ?? fromEnv("ADMIN_KEY"),
      hmacSecret: values.get("hmac-secret") ?? fromEnv("HMAC_SECRET"),
      concurrency: parseCount("--concurrency", values.get("concurrency") ?? "25", 1000),
      summaryEveryMs: parseDuration(values.get("summary-every") ?? "5s"),
      ...(seed ? { seed: parseCount("--seed", seed, 2 ** 32 - 1) } : {}),
      ...(downloadOrigin ? { downloadOrigin: parseUrl(downloadOrigin) } : {}),
      ...(refuseSettings !== undefined ? { refuseSettings: parseSettings(refuseSettings) } : {}),
    },
  };
}
