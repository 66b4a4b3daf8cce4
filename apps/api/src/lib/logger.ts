import winston from "winston";

// Fields that may carry a credential. Values are replaced wherever they appear.
const SECRET_KEYS = /^(authorization|x-admin|x-signature|x-enrollment-key|token|devicetoken|enrollmenttoken|commandkey|password|secret|fcmtoken|cookie)$/i;

function redactValue(value: unknown, depth = 0): unknown {
  if (depth > 6 || value === null || typeof value !== "object") return value;
  if (Array.isArray(value)) return value.map((item) => redactValue(item, depth + 1));
  return Object.fromEntries(
    Object.entries(value as Record<string, unknown>).map(([key, item]) => [key, SECRET_KEYS.test(key) ? "[redacted]" : redactValue(item, depth + 1)]),
  );
}

const redact = winston.format((info) => {
  for (const key of Object.keys(info)) {
    if (SECRET_KEYS.test(key)) info[key] = "[redacted]";
    else info[key] = redactValue(info[key]);
  }
  return info;
});

export type Logger = winston.Logger;

export function createLogger(level: string, options: { silent?: boolean } = {}): Logger {
  // Winston runs the whole format (redaction, timestamp, JSON) before its transport drops a
  // line below the level: every request's info line cost that at LOG_LEVEL=error. A falsy
  // format result drops the line where it starts.
  const enabled = winston.format((info) => (logger.isLevelEnabled(info.level) ? info : false));
  const logger = winston.createLogger({
    level,
    silent: options.silent,
    format: winston.format.combine(enabled(), redact(), winston.format.timestamp(), winston.format.json()),
    transports: [new winston.transports.Console()],
  });
  // Even so, logger.debug() and the other level methods build the line and push it through
  // winston's stream before that format drops it: a heartbeat's debug line cost 1.2% of the
  // API's CPU at LOG_LEVEL=error. Below the level, they now return at once. (A method, not an
  // arrow: child loggers call it on themselves.)
  const levelMethods = logger as unknown as Record<string, (...args: unknown[]) => Logger>;
  for (const level of Object.keys(logger.levels)) {
    const write = levelMethods[level]!;
    levelMethods[level] = function (this: Logger | undefined, ...args: unknown[]) {
      const self = this ?? logger;
      return self.isLevelEnabled(level) ? write.apply(self, args) : self;
    };
  }
  return logger;
}
