const relative = new Intl.RelativeTimeFormat("en", { numeric: "auto" });
const dateTime = new Intl.DateTimeFormat("en", { dateStyle: "medium", timeStyle: "short" });
const timeOnly = new Intl.DateTimeFormat("en", { hour: "2-digit", minute: "2-digit", second: "2-digit" });

const UNITS: Array<[Intl.RelativeTimeFormatUnit, number]> = [
  ["day", 86_400],
  ["hour", 3_600],
  ["minute", 60],
  ["second", 1],
];

/**
 * "3 minutes ago"; "never" for null. A time after `now` (the server's clock runs ahead of
 * the browser's, or `now` is from the last tick and the data is newer) is "just now": what
 * already happened is never "in 11 seconds". Use formatUntil for times meant to be ahead.
 */
export function formatRelative(iso: string | null | undefined, now: number = Date.now()): string {
  if (!iso) return "never";
  const seconds = Math.min(0, Math.round((Date.parse(iso) - now) / 1000));
  if (seconds > -10) return "just now";
  for (const [unit, size] of UNITS) {
    if (Math.abs(seconds) >= size || unit === "second") return relative.format(Math.round(seconds / size), unit);
  }
  return "just now";
}

/** "in 2 hours" for a deadline ahead (an expiry), "2 hours ago" once it has passed. */
export function formatUntil(iso: string, now: number = Date.now()): string {
  const seconds = Math.round((Date.parse(iso) - now) / 1000);
  if (seconds <= 0) return formatRelative(iso, now);
  for (const [unit, size] of UNITS) {
    if (seconds >= size || unit === "second") return relative.format(Math.round(seconds / size), unit);
  }
  return relative.format(seconds, "second");
}

export function formatDateTime(iso: string | null | undefined): string {
  return iso ? dateTime.format(new Date(iso)) : "—";
}

/** The time of day to the second (status histories are seconds apart). */
export function formatTime(iso: string): string {
  return timeOnly.format(new Date(iso));
}

/** 1536 → "1.5 KB" (binary units, as Android reports memory). */
export function formatBytes(bytes: number | null | undefined): string {
  if (bytes === null || bytes === undefined) return "—";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value >= 10 || unit === 0 ? Math.round(value) : value.toFixed(1)} ${units[unit]}`;
}

/** 93784 → "1d 2h 3m". */
export function formatDuration(totalSeconds: number | null | undefined): string {
  if (totalSeconds === null || totalSeconds === undefined) return "—";
  const days = Math.floor(totalSeconds / 86_400);
  const hours = Math.floor((totalSeconds % 86_400) / 3_600);
  const minutes = Math.floor((totalSeconds % 3_600) / 60);
  if (days > 0) return `${days}d ${hours}h ${minutes}m`;
  if (hours > 0) return `${hours}h ${minutes}m`;
  return `${minutes}m`;
}

/** A short form of a UUID for tables: its first 8 characters. */
/**
 * Who did something, for people: an admin key as the audit log names it ("Admin key
 * (ADMIN_KEY 4216fd4ba56d)"), not its raw actor id "admin-key:4216fd4ba56d"; anyone else as is.
 */
export function actorLabel(actor: string): string {
  if (actor.startsWith("admin-key:")) return `Admin key (ADMIN_KEY ${actor.slice("admin-key:".length)})`;
  return actor;
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** A UUID by its first 8 digits; any other id (a package name, a key's name) whole. */
export function shortId(id: string): string {
  return UUID.test(id) ? id.slice(0, 8) : id;
}
