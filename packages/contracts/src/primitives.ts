import { z } from "zod";

// PostgreSQL rejects NUL in text and jsonb, and lone UTF-16 surrogates in jsonb. Refusing
// them at the contract keeps hostile input a 400 instead of a database error.
function isStorableText(value: string): boolean {
  return !value.includes("\u0000") && value.isWellFormed();
}

export function text(maxLength: number) {
  return z.string().max(maxLength).refine(isStorableText, { message: "Must not contain NUL or unpaired surrogate characters" });
}

export function nonEmptyText(maxLength: number) {
  return z.string().min(1).max(maxLength).refine(isStorableText, { message: "Must not contain NUL or unpaired surrogate characters" });
}

const MAX_JSON_DEPTH = 16;

function isStorableJson(value: unknown, depth = 0): boolean {
  if (depth > MAX_JSON_DEPTH) return false;
  if (typeof value === "string") return isStorableText(value);
  // JSON cannot carry Infinity or NaN: stored, they would silently become null.
  if (typeof value === "number") return Number.isFinite(value);
  if (Array.isArray(value)) return value.every((item) => isStorableJson(item, depth + 1));
  if (value !== null && typeof value === "object") {
    return Object.entries(value).every(([key, item]) => isStorableText(key) && isStorableJson(item, depth + 1));
  }
  return true;
}

const utf8 = new TextEncoder();

/** A free-form JSON object stored as jsonb, bounded in size (UTF-8 bytes) and depth. */
export function jsonObject(maxBytes: number) {
  return z.record(z.string(), z.unknown()).superRefine((value, ctx) => {
    // Depth first: measuring the size of a value nested 10,000 deep would overflow the stack.
    if (!isStorableJson(value)) {
      ctx.addIssue({
        code: "custom",
        message: `Must nest at most ${MAX_JSON_DEPTH} levels and hold only finite numbers and text without NUL or unpaired surrogates`,
      });
    } else if (utf8.encode(JSON.stringify(value)).length > maxBytes) {
      ctx.addIssue({ code: "custom", message: `Must serialize to at most ${maxBytes} bytes` });
    }
  });
}

export const Uuid = z.uuid();

/**
 * Most device ids one request may list (bulk commands, bulk edits): 1,000 quoted ids are
 * about 39 KB, inside the API's default 64 KiB body limit (BODY_LIMIT_BYTES). Larger
 * selections name a group or a filter instead.
 */
export const MAX_LISTED_DEVICE_IDS = 1_000;

/** A list of device ids, as bulk requests take it. */
export const DeviceIdList = z.array(Uuid).min(1).max(MAX_LISTED_DEVICE_IDS);

const EARLIEST = Date.UTC(1970, 0, 1);
const LATEST = Date.UTC(9999, 11, 31, 23, 59, 59, 999);
/** ISO 8601 with an offset, between 1970 and 9999 (PostgreSQL refuses e.g. year 0000). */
export const DateTime = z.iso.datetime({ offset: true }).pipe(
  z.string().refine((value) => {
    const time = Date.parse(value);
    return time >= EARLIEST && time <= LATEST;
  }, "Must be between 1970-01-01 and 9999-12-31"),
);

/** A device group name. */
export const GroupName = z
  .string()
  .min(1)
  .max(64)
  .regex(/^[A-Za-z0-9][A-Za-z0-9 ._:-]*$/, "Letters, digits, space and . _ : - only, starting with a letter or digit");
/** Byte counts: non-negative safe integers. */
export const Bytes = z.int().min(0);
