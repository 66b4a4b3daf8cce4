import { z } from "zod";

// Development defaults, so `npm start` works on a fresh clone. Production refuses them.
export const DEV_ADMIN_KEY = "dev-admin-key-change-me";
export const DEV_HMAC_SECRET = "dev-hmac-secret-change-me";
export const DEV_JWT_SECRET = "dev-jwt-secret-change-me";

const positiveInt = (fallback: number) => z.coerce.number().int().positive().default(fallback);
const optionalText = z.string().optional();

const EnvSchema = z
  .object({
    NODE_ENV: z.enum(["development", "test", "production"]).default("development"),
    PORT: z.coerce.number().int().min(0).max(65535).default(8000),
    HOST: z.string().default("0.0.0.0"),
    DATABASE_URL: optionalText,
    DATA_DIR: z.string().default(".data"),
    MIGRATIONS_DIR: optionalText,
    ADMIN_KEY: z.string().default(DEV_ADMIN_KEY),
    HMAC_SECRET: z.string().default(DEV_HMAC_SECRET),
    FIREBASE_SERVICE_ACCOUNT_JSON: optionalText,
    LEGACY_ENROLLMENT_KEY: optionalText,
    REDIS_URL: optionalText,
    OFFLINE_AFTER_SECONDS: positiveInt(240),
    OFFLINE_SWEEP_SECONDS: positiveInt(15),
    COMMAND_RETRY_BASE_SECONDS: z.coerce.number().positive().default(15),
    COMMAND_MAX_DELIVERY_ATTEMPTS: positiveInt(6),
    WS_PING_INTERVAL_SECONDS: z.coerce.number().positive().default(30),
    // How long a device's socket counts as held after its instance last renewed the lease:
    // a dead instance's devices count as disconnected (and get pushes) after this.
    WS_LEASE_SECONDS: z.coerce.number().positive().default(60),
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
    COMMAND_DEFAULT_TTL_SECONDS: positiveInt(24 * 3600),
    TELEMETRY_RETENTION_HOURS: positiveInt(48),
    RATE_LIMIT_GENERAL_PER_MINUTE: positiveInt(60),
    RATE_LIMIT_ADMIN_PER_MINUTE: positiveInt(100),
    RATE_LIMIT_DEVICE_PER_MINUTE: positiveInt(60),
    RATE_LIMIT_ENROLLMENT_PER_MINUTE: positiveInt(600),
    // Failed device, enrollment and legacy authentications per client IP; past it further
    // failures answer 429 (valid credentials still pass: a NAT's devices share the address).
    RATE_LIMIT_AUTH_FAILURES_PER_MINUTE: positiveInt(120),
    JWT_SECRET: z.string().default(DEV_JWT_SECRET),
    RESEND_API_KEY: optionalText,
    RESEND_BASE_URL: z.url().optional(),
    MAIL_FROM: z.string().default("MDM <alerts@localhost>"),
    WEB_URL: z.url().default("http://localhost:3000").transform((url) => url.replace(/\/+$/, "")),
    RATE_LIMIT_LOGIN_PER_MINUTE: positiveInt(10),
    RATE_LIMIT_PASSWORD_RESET_PER_HOUR: positiveInt(3),
    // Per account, whatever the address: failed sign-ins in 15 minutes before each further
    // attempt waits (30 s, doubling up to 5 min), and reset mails an hour.
    RATE_LIMIT_LOGIN_FAILURES_PER_ACCOUNT: positiveInt(10),
    RATE_LIMIT_PASSWORD_RESET_PER_ACCOUNT_PER_HOUR: positiveInt(3),
    // Dashboard sockets: how often their sessions are checked again (a revoked or expired
    // session, or a disabled user, is closed with 4003), and how many one user may hold.
    WS_SESSION_CHECK_SECONDS: z.coerce.number().positive().default(30),
    WS_MAX_SOCKETS_PER_USER: positiveInt(10),
    // Audit rows are kept this long, independently of TELEMETRY_RETENTION_HOURS.
    AUDIT_RETENTION_DAYS: positiveInt(365),
    BCRYPT_COST: z.coerce.number().int().min(10).max(15).default(12),
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
    // Every connected device holds a socket; keep this under the process's open-file limit.
    HTTP_MAX_CONNECTIONS: positiveInt(20_000),
  })
  .superRefine((env, ctx) => {
    // Node refuses to start a server whose requests may take longer than their headers.
    if (env.HTTP_HEADERS_TIMEOUT_SECONDS > env.HTTP_REQUEST_TIMEOUT_SECONDS) {
      ctx.addIssue({ code: "custom", path: ["HTTP_HEADERS_TIMEOUT_SECONDS"], message: "must not exceed HTTP_REQUEST_TIMEOUT_SECONDS" });
    }
    if (env.NODE_ENV !== "production") return;
    const secrets = [
      ["ADMIN_KEY", env.ADMIN_KEY, DEV_ADMIN_KEY],
      ["HMAC_SECRET", env.HMAC_SECRET, DEV_HMAC_SECRET],
      ["JWT_SECRET", env.JWT_SECRET, DEV_JWT_SECRET],
    ] as const;
    for (const [name, value, devDefault] of secrets) {
      if (value === devDefault || value.length < 32) {
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

export type Env = z.infer<typeof EnvSchema>;

/** Parses the environment once, at boot; nothing else reads process.env. */
export function parseEnv(source: NodeJS.ProcessEnv = process.env): Env {
  // An empty variable means "not set", as in most deployment tools' env files.
  const present = Object.fromEntries(Object.entries(source).filter(([, value]) => value !== undefined && value !== ""));
  const parsed = EnvSchema.safeParse(present);
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => `  ${issue.path.join(".")}: ${issue.message}`).join("\n");
    throw new Error(`Invalid configuration:\n${problems}`);
  }
  return parsed.data;
}
