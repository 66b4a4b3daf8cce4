import { randomBytes } from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { z } from "zod";

const positiveInt = (fallback: number) => z.coerce.number().int().positive().default(fallback);
const optionalText = z.string().optional();
const MIN_STORED_BCRYPT_COST = 10;

/**
 * A SHA-256 digest given as hex (apksigner's "certificate SHA-256 digest", colons allowed)
 * or base64 of either alphabet, as the URL-safe base64 without padding that Android's
 * provisioning reads; undefined when it is neither.
 */
export function signatureChecksum(value: string): string | undefined {
  const hex = value.replace(/:/g, "").trim();
  if (/^[0-9a-fA-F]{64}$/.test(hex)) return Buffer.from(hex, "hex").toString("base64url");
  const base64 = value.trim().replace(/=+$/, "");
  if (/^[A-Za-z0-9+/_-]{43}$/.test(base64)) return Buffer.from(base64.replace(/\+/g, "-").replace(/\//g, "_"), "base64url").toString("base64url");
  return undefined;
}

export const EnvSchema = z
  .object({
    NODE_ENV: z.enum(["development", "test", "production"]).default("development"),
    PORT: z.coerce.number().int().min(0).max(65535).default(8000),
    // Unset: every interface when the secrets are set, loopback only when they are not.
    HOST: optionalText,
    DATABASE_URL: optionalText,
    DATA_DIR: z.string().default(".data"),
    MIGRATIONS_DIR: optionalText,
    // Unset outside production: random values generated once per installation and kept in
    // DATA_DIR/dev-secrets.json, and the API listens on loopback only (see resolveSecrets).
    ADMIN_KEY: optionalText,
    HMAC_SECRET: optionalText,
    FIREBASE_SERVICE_ACCOUNT_JSON: optionalText,
    LEGACY_ENROLLMENT_KEY: optionalText,
    // A setup token of the operator's choosing for the first admin, besides the one the API
    // prints at start (automated installs, tests). At least 32 characters.
    SETUP_TOKEN: z.string().min(32, "at least 32 characters").optional(),
    // From this instant the legacy route answers 410: the date by which agents must use /v1.
    LEGACY_SUNSET_AT: z.coerce.date().optional(),
    // Until this instant, a device enrolled before device tokens existed gets its token at its
    // next legacy contact. Unset or past: it cannot, since the shared key is all such a
    // claim proves and anyone holding it could take the device over (retire and re-enroll it).
    LEGACY_CLAIM_UNTIL: z.coerce.date().optional(),
    // New legacy enrollments per client address (a fleet rolling out behind one NAT retries).
    RATE_LIMIT_LEGACY_ENROLLMENT_PER_MINUTE: positiveInt(30),
    REDIS_URL: optionalText,
    // Unset: two missed heartbeats plus a grace (see offlineAfterSeconds).
    OFFLINE_AFTER_SECONDS: z.coerce.number().int().positive().optional(),
    OFFLINE_SWEEP_SECONDS: positiveInt(15),
    COMMAND_RETRY_BASE_SECONDS: z.coerce.number().positive().default(15),
    COMMAND_MAX_DELIVERY_ATTEMPTS: positiveInt(6),
    WS_PING_INTERVAL_SECONDS: z.coerce.number().positive().default(30),
    // How long a device's socket counts as held after its instance last renewed the lease:
    // a dead instance's devices count as disconnected (and get pushes) after this.
    WS_LEASE_SECONDS: z.coerce.number().positive().default(60),
    // Device WebSockets one client address may hold on one instance (a NAT of a fleet).
    WS_MAX_DEVICE_SOCKETS_PER_IP: positiveInt(2000),
    // A command acknowledged by its device expires when no result follows within this.
    COMMAND_RESULT_TIMEOUT_SECONDS: positiveInt(900),
    DASHBOARD_FLUSH_MS: positiveInt(250),
    AUTO_RELAUNCH_DEBOUNCE_SECONDS: positiveInt(120),
    LOG_LEVEL: z.enum(["error", "warn", "info", "debug"]).default("info"),
    // Loopback proxies (the dashboard's own Next.js server) are trusted by default, so
    // rate limits see the browser's address rather than the proxy's.
    TRUST_PROXY: z.string().default("loopback"),
    BODY_LIMIT_BYTES: positiveInt(64 * 1024),
    HEARTBEAT_INTERVAL_SECONDS: positiveInt(60),
    // Group commit: the heartbeats arriving within HEARTBEAT_BATCH_WAIT_MS of the first, up
    // to HEARTBEAT_BATCH_MAX, are written by one statement (0 or 1 writes each alone), and
    // at most HEARTBEAT_QUEUE_MAX wait to be written (past it, 503 with Retry-After).
    HEARTBEAT_BATCH_MAX: z.coerce.number().int().min(1).max(1000).default(200),
    HEARTBEAT_BATCH_WAIT_MS: z.coerce.number().int().min(0).max(1000).default(2),
    HEARTBEAT_QUEUE_MAX: positiveInt(2000),
    COMMAND_DEFAULT_TTL_SECONDS: positiveInt(24 * 3600),
    // How long a device's old token keeps working after a rotation it has not taken yet.
    DEVICE_TOKEN_ROTATION_GRACE_SECONDS: positiveInt(7 * 24 * 3600),
    TELEMETRY_RETENTION_HOURS: positiveInt(48),
    RATE_LIMIT_GENERAL_PER_MINUTE: positiveInt(60),
    // Per address: a dashboard tab on a reporting fleet refetches its lists every 3 s (20 a
    // minute each), and an admin's tabs, or a team behind one NAT, share the budget.
    RATE_LIMIT_ADMIN_PER_MINUTE: positiveInt(600),
    RATE_LIMIT_DEVICE_PER_MINUTE: positiveInt(60),
    RATE_LIMIT_ENROLLMENT_PER_MINUTE: positiveInt(600),
    // Failed device, enrollment and legacy authentications per client IP; past it further
    // failures answer 429 (valid credentials still pass: a NAT's devices share the address).
    RATE_LIMIT_AUTH_FAILURES_PER_MINUTE: positiveInt(120),
    JWT_SECRET: optionalText,
    // The master key of devices' command keys (HKDF per device and key id), apart from the
    // admin secrets: whoever signs admin requests cannot sign device commands outside the
    // API. COMMAND_KEY_ID names it in every signed command, so it can be rotated.
    COMMAND_MASTER_KEY: optionalText,
    COMMAND_KEY_ID: z
      .string()
      .regex(/^[A-Za-z0-9_-]{1,32}$/, "letters, digits, _ and - only, at most 32")
      .default("1"),
    // Fleet-wide rotation of the command master key: the key being replaced and its id, kept
    // while devices still hold keys derived from it. They get commands signed with those keys,
    // and each is moved to a key under COMMAND_MASTER_KEY through its own channel (README:
    // "Rotating the command master key"). Drop both once GET /admin/command-keys counts none.
    COMMAND_MASTER_KEY_PREVIOUS: optionalText,
    COMMAND_KEY_ID_PREVIOUS: z
      .string()
      .regex(/^[A-Za-z0-9_-]{1,32}$/, "letters, digits, _ and - only, at most 32")
      .optional(),
    // Devices the fleet-wide rotation moves per run (one run a minute, one instance at a time).
    COMMAND_KEY_ROTATION_BATCH: positiveInt(500),
    RESEND_API_KEY: optionalText,
    RESEND_BASE_URL: z.url().optional(),
    MAIL_FROM: z.string().default("Keelson <alerts@localhost>"),
    WEB_URL: z
      .url()
      .default("http://localhost:3000")
      .transform((url) => url.replace(/\/+$/, "")),
    // The API's address as phones reach it (enrollment QR codes carry it); unset, the
    // dashboard offers its own API URL and warns when that is loopback or private.
    PUBLIC_API_URL: z
      .url({ protocol: /^https?$/, error: "must be an http:// or https:// URL" })
      .optional()
      .transform((url) => url?.replace(/\/+$/, "")),
    // The device-owner agent a provisioning QR code installs (see the README): its
    // device-admin receiver, where its APK downloads from, and the SHA-256 of its signing
    // certificate (64 hex digits as apksigner prints them, or URL-safe base64).
    AGENT_COMPONENT_NAME: z
      .string()
      .regex(
        /^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)+\/\.?[A-Za-z_$][\w$]*(\.[A-Za-z_$][\w$]*)*$/,
        "must be <package>/<receiver class>, e.g. com.example.agent/.AdminReceiver",
      )
      .optional(),
    AGENT_APK_URL: z.url({ protocol: /^https?$/, error: "must be an http:// or https:// URL" }).optional(),
    AGENT_SIGNATURE_CHECKSUM: z
      .string()
      .transform((value, ctx) => {
        const checksum = signatureChecksum(value);
        if (!checksum) ctx.addIssue({ code: "custom", message: "must be a SHA-256 digest: 64 hex digits (colons allowed) or URL-safe base64" });
        return checksum ?? z.NEVER;
      })
      .optional(),
    // The app catalogue: largest APK accepted (streamed to disk, never held whole in memory
    // by the upload) and where files are stored by SHA-256 (default DATA_DIR/apps).
    APK_MAX_BYTES: positiveInt(100 * 1024 * 1024),
    // Time an APK upload's body may take (ten minutes: 100 MB at about 1.4 Mbit/s); a pause
    // of HTTP_BODY_TIMEOUT_SECONDS without a byte ends it sooner. JSON bodies' 10 s would
    // take a 100 MB upload 80 Mbit/s.
    APK_UPLOAD_TIMEOUT_SECONDS: z.coerce.number().positive().default(600),
    APK_STORAGE_DIR: optionalText,
    // Or an S3-compatible bucket (uploads still pass through APK_STORAGE_DIR/tmp). The
    // endpoint is for servers other than AWS S3; without keys the SDK's default chain applies.
    APK_STORAGE_S3_BUCKET: optionalText,
    APK_STORAGE_S3_ENDPOINT: z.url({ protocol: /^https?$/, error: "must be an http:// or https:// URL" }).optional(),
    APK_STORAGE_S3_REGION: z.string().min(1).default("us-east-1"),
    APK_STORAGE_S3_ACCESS_KEY_ID: optionalText,
    APK_STORAGE_S3_SECRET_ACCESS_KEY: optionalText,
    APK_STORAGE_S3_PREFIX: z.string().max(200).default("apks/"),
    RATE_LIMIT_LOGIN_PER_MINUTE: positiveInt(10),
    RATE_LIMIT_PASSWORD_RESET_PER_HOUR: positiveInt(3),
    // Per account, whatever the address: failed sign-ins in 15 minutes before each further
    // attempt waits (30 s, doubling up to 5 min).
    RATE_LIMIT_LOGIN_FAILURES_PER_ACCOUNT: positiveInt(10),
    // Per account, at most one reset mail per interval. A request within it is answered
    // like any other but sends nothing: the link mailed less than this ago is still valid
    // (links live 30 minutes), so nobody can keep an owner from resetting by asking first.
    PASSWORD_RESET_MAIL_INTERVAL_SECONDS: z.coerce.number().int().min(0).max(1500).default(300),
    // Dashboard sockets: how often their sessions are checked again (a revoked or expired
    // session, or a disabled user, is closed with 4003), and how many one user may hold.
    WS_SESSION_CHECK_SECONDS: z.coerce.number().positive().default(30),
    WS_MAX_SOCKETS_PER_USER: positiveInt(10),
    // Audit rows are kept this long, independently of TELEMETRY_RETENTION_HOURS.
    AUDIT_RETENTION_DAYS: positiveInt(365),
    // 4 is bcrypt's lowest cost and is for test runs only (see the check below).
    BCRYPT_COST: z.coerce.number().int().min(4).max(15).default(12),
    // Unset: metrics answer only to direct calls from this host (a Prometheus or agent
    // running beside the API); set it to scrape from elsewhere.
    METRICS_TOKEN: optionalText,
    // Longer than the idle timeout of the proxy in front (nginx and AWS ALB: 60 s), so the
    // proxy, not the API, closes idle keep-alive connections and never reuses one the API
    // is closing. Node's 5 s default raced the dashboard's proxy.
    HTTP_KEEP_ALIVE_TIMEOUT_SECONDS: z.coerce.number().positive().default(65),
    // Time allowed to send a request's headers, then the whole request: a client that
    // trickles them (slowloris) is cut off instead of holding a connection open.
    HTTP_HEADERS_TIMEOUT_SECONDS: z.coerce.number().positive().default(20),
    HTTP_REQUEST_TIMEOUT_SECONDS: z.coerce.number().positive().default(30),
    // Time allowed to send a request's body once its headers have arrived (408 past it).
    HTTP_BODY_TIMEOUT_SECONDS: z.coerce.number().positive().default(10),
    // Requests one client address (an IPv6 /56) may have in progress at once, bodies still
    // arriving included; past it, 429. Well under ADMISSION_MAX_IN_FLIGHT, so no one address
    // can take the whole instance.
    HTTP_MAX_REQUESTS_PER_CLIENT: positiveInt(64),
    // Every connected device holds a socket; keep this under the process's open-file limit.
    HTTP_MAX_CONNECTIONS: positiveInt(20_000),
    // Admission control: past these, a request answers 503 with Retry-After before any work
    // starts, so an overload costs refusals instead of a queue that grows without bound.
    ADMISSION_MAX_IN_FLIGHT: positiveInt(256),
    ADMISSION_MAX_EVENT_LOOP_LAG_MS: z.coerce.number().int().min(0).default(500),
    // ... and while this many queries wait for a connection of the database pool (device
    // sockets' work included, which the in-flight count does not see); 0 turns it off.
    ADMISSION_MAX_DATABASE_QUEUE: z.coerce.number().int().min(0).default(100),
    ADMISSION_RETRY_AFTER_SECONDS: positiveInt(2),
    // Streamed exports: each holds one database connection of the instance's pool while it
    // runs, so at most this many run at once per instance (503 with Retry-After past it),
    // and one whose client stops reading for this long is cut and its connection released.
    EXPORT_MAX_CONCURRENT: positiveInt(2),
    EXPORT_STALL_TIMEOUT_SECONDS: z.coerce.number().positive().default(30),
    // Mail: unset, RESEND_API_KEY picks Resend, else SMTP_URL picks SMTP, else none (mail is
    // only recorded in the outbox and the log). Set it to insist on one.
    MAIL_PROVIDER: z.enum(["resend", "smtp", "none"]).optional(),
    // smtp://user:pass@host:587 (STARTTLS when offered; required when sending a password to
    // another host) or smtps://user:pass@host:465 (TLS from the start); URL-encode the user
    // and password.
    SMTP_URL: z.url({ protocol: /^smtps?$/, hostname: /^.+$/, error: "must be smtp://[user:password@]host[:port] or smtps://…" }).optional(),
    MAIL_MAX_ATTEMPTS: positiveInt(8),
    MAIL_RETRY_BASE_SECONDS: z.coerce.number().positive().default(30),
    MAIL_RETENTION_DAYS: positiveInt(30),
  })
  .superRefine((env, ctx) => {
    // Node refuses to start a server whose requests may take longer than their headers.
    if (env.HTTP_HEADERS_TIMEOUT_SECONDS > env.HTTP_REQUEST_TIMEOUT_SECONDS) {
      ctx.addIssue({ code: "custom", path: ["HTTP_HEADERS_TIMEOUT_SECONDS"], message: "must not exceed HTTP_REQUEST_TIMEOUT_SECONDS" });
    }
    if (!env.APK_STORAGE_S3_ACCESS_KEY_ID !== !env.APK_STORAGE_S3_SECRET_ACCESS_KEY) {
      ctx.addIssue({
        code: "custom",
        path: ["APK_STORAGE_S3_SECRET_ACCESS_KEY"],
        message: "set both APK_STORAGE_S3_ACCESS_KEY_ID and APK_STORAGE_S3_SECRET_ACCESS_KEY, or neither",
      });
    }
    if (env.MAIL_PROVIDER === "resend" && !env.RESEND_API_KEY)
      ctx.addIssue({ code: "custom", path: ["RESEND_API_KEY"], message: "must be set when MAIL_PROVIDER is resend" });
    if (env.MAIL_PROVIDER === "smtp" && !env.SMTP_URL) ctx.addIssue({ code: "custom", path: ["SMTP_URL"], message: "must be set when MAIL_PROVIDER is smtp" });
    if (!env.COMMAND_MASTER_KEY_PREVIOUS !== !env.COMMAND_KEY_ID_PREVIOUS) {
      const missing = env.COMMAND_MASTER_KEY_PREVIOUS ? "COMMAND_KEY_ID_PREVIOUS" : "COMMAND_MASTER_KEY_PREVIOUS";
      ctx.addIssue({ code: "custom", path: [missing], message: "COMMAND_MASTER_KEY_PREVIOUS and COMMAND_KEY_ID_PREVIOUS are set together" });
    }
    if (env.COMMAND_KEY_ID_PREVIOUS && env.COMMAND_KEY_ID_PREVIOUS === env.COMMAND_KEY_ID) {
      ctx.addIssue({ code: "custom", path: ["COMMAND_KEY_ID_PREVIOUS"], message: "must differ from COMMAND_KEY_ID: the new master key needs a new id" });
    }
    if (env.NODE_ENV !== "production") return;
    for (const name of SECRET_NAMES) {
      if ((env[name]?.length ?? 0) < 32) {
        ctx.addIssue({ code: "custom", path: [name], message: "must be set to a random value of at least 32 characters in production" });
      }
    }
    if (env.METRICS_TOKEN && env.METRICS_TOKEN.length < 32) {
      ctx.addIssue({ code: "custom", path: ["METRICS_TOKEN"], message: "must be at least 32 characters in production" });
    }
    if (env.LEGACY_ENROLLMENT_KEY && env.LEGACY_ENROLLMENT_KEY.length < 32) {
      ctx.addIssue({ code: "custom", path: ["LEGACY_ENROLLMENT_KEY"], message: "must be at least 32 characters in production" });
    }
  });

const SECRET_NAMES = ["ADMIN_KEY", "HMAC_SECRET", "JWT_SECRET", "COMMAND_MASTER_KEY"] as const;
const OPTIONAL_SECRET_NAMES = ["LEGACY_ENROLLMENT_KEY", "METRICS_TOKEN", "COMMAND_MASTER_KEY_PREVIOUS"] as const;
type SecretName = (typeof SECRET_NAMES)[number];

export type Env = Omit<z.infer<typeof EnvSchema>, SecretName | "HOST" | "OFFLINE_AFTER_SECONDS"> &
  Record<SecretName, string> & {
    HOST: string;
    OFFLINE_AFTER_SECONDS: number;
    /** The secrets that were not set and come from the development secrets file instead. */
    generatedSecrets: SecretName[];
  };

/** Parses the environment once, at boot; nothing else reads process.env. */
export function parseEnv(source: NodeJS.ProcessEnv = process.env): Env {
  // An empty variable means "not set", as in most deployment tools' env files.
  const present = Object.fromEntries(Object.entries(source).filter(([, value]) => value !== undefined && value !== ""));
  const parsed = EnvSchema.safeParse(present);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `  ${issue.path.join(".")}: ${issue.message}`).join("\n");
    throw new Error(`Invalid configuration:\n${problems}`);
  }
  return resolveSecrets(parsed.data);
}

/** Seconds past a device's last heartbeat before the offline sweep gives up on it. */
export const OFFLINE_GRACE_SECONDS = 30;

/** The default offline threshold: two missed heartbeat intervals plus a grace for a slow network. */
export function offlineAfterSeconds(heartbeatIntervalSeconds: number): number {
  return 2 * heartbeatIntervalSeconds + OFFLINE_GRACE_SECONDS;
}

export function isLoopbackHost(host: string): boolean {
  return host === "localhost" || host === "::1" || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/**
 * Secure by default: a server that anyone else can reach never runs on secrets nobody
 * chose. With a secret unset, the API listens on loopback only, and refuses any other
 * HOST; the missing secrets come from a file generated once per installation (tests get
 * fresh random ones), never from values published in this repository.
 */
function resolveSecrets(parsed: z.infer<typeof EnvSchema>): Env {
  const generatedSecrets = SECRET_NAMES.filter((name) => parsed[name] === undefined);
  const host = parsed.HOST ?? (generatedSecrets.length > 0 ? "127.0.0.1" : "0.0.0.0");
  // Reachable from other machines: every secret set, and strong, whatever NODE_ENV says;
  // so are the optional ones an operator chooses (the legacy key enrolls devices, and
  // guessing it is limited per address only).
  const weak = [
    ...SECRET_NAMES.filter((name) => (parsed[name]?.length ?? 0) < 32),
    ...OPTIONAL_SECRET_NAMES.filter((name) => parsed[name] !== undefined && parsed[name].length < 32),
  ];
  if (weak.length > 0 && !isLoopbackHost(host)) {
    throw new Error(
      `Invalid configuration:\n  HOST: ${host} is reachable from other machines, so ${weak.join(", ")} must be set ` +
        "(random values of at least 32 characters, e.g. `openssl rand -hex 32`)",
    );
  }
  // A cost under 10 makes stolen hashes cheap to crack: only a test run no other machine can
  // reach may choose one, to hash its throwaway passwords in well under a millisecond.
  if (parsed.BCRYPT_COST < MIN_STORED_BCRYPT_COST && (parsed.NODE_ENV !== "test" || !isLoopbackHost(host))) {
    throw new Error(
      `Invalid configuration:\n  BCRYPT_COST: must be at least ${MIN_STORED_BCRYPT_COST} (lower only for test runs: NODE_ENV=test on a loopback HOST)`,
    );
  }
  // One value in two places would undo their separation: the admin key travels in every
  // admin request's header, and the command master key must not sign admin requests.
  const setSecrets = [...SECRET_NAMES, ...OPTIONAL_SECRET_NAMES].filter((name) => parsed[name] !== undefined);
  const reused = setSecrets.filter((name, index) => setSecrets.findIndex((other) => parsed[other] === parsed[name]) !== index);
  if (reused.length > 0) {
    throw new Error(`Invalid configuration:\n  ${reused.join(", ")}: each secret needs its own value; this one repeats another`);
  }
  const generated = generatedSecrets.length === 0 ? undefined : parsed.NODE_ENV === "test" ? randomSecrets() : developmentSecrets(parsed.DATA_DIR);
  const secret = (name: SecretName) => parsed[name] ?? generated![name];
  return {
    ...parsed,
    HOST: host,
    OFFLINE_AFTER_SECONDS: parsed.OFFLINE_AFTER_SECONDS ?? offlineAfterSeconds(parsed.HEARTBEAT_INTERVAL_SECONDS),
    ADMIN_KEY: secret("ADMIN_KEY"),
    HMAC_SECRET: secret("HMAC_SECRET"),
    JWT_SECRET: secret("JWT_SECRET"),
    COMMAND_MASTER_KEY: secret("COMMAND_MASTER_KEY"),
    generatedSecrets,
  };
}

function randomSecrets(): Record<SecretName, string> {
  return {
    ADMIN_KEY: `dev-${randomBytes(24).toString("hex")}`,
    HMAC_SECRET: randomBytes(32).toString("hex"),
    JWT_SECRET: randomBytes(32).toString("hex"),
    COMMAND_MASTER_KEY: randomBytes(32).toString("hex"),
  };
}

export const DEV_SECRETS_FILE = "dev-secrets.json";

/** This installation's development secrets: read from DATA_DIR, created there (mode 0600) the first time. */
function developmentSecrets(dataDir: string): Record<SecretName, string> {
  const file = path.resolve(dataDir, DEV_SECRETS_FILE);
  const stored = fs.existsSync(file) ? (JSON.parse(fs.readFileSync(file, "utf8")) as Partial<Record<SecretName, string>>) : {};
  const usable = (name: SecretName) => typeof stored[name] === "string" && stored[name]!.length >= 32;
  if (SECRET_NAMES.every(usable)) return stored as Record<SecretName, string>;
  // Keep what exists (signed-in sessions, scripts' keys); add what a newer version needs.
  const fresh = randomSecrets();
  const secrets = Object.fromEntries(SECRET_NAMES.map((name) => [name, usable(name) ? stored[name]! : fresh[name]])) as Record<SecretName, string>;
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, `${JSON.stringify(secrets, null, 2)}\n`, { mode: 0o600 });
  return secrets;
}
