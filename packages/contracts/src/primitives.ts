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

function isStorableJson(value: unknown, depth = 0): boolean {
  if (depth > 16) return false;
  if (typeof value === "string") return isStorableText(value);
  if (Array.isArray(value)) return value.every((item) => isStorableJson(item, depth + 1));
  if (value !== null && typeof value === "object") {
    return Object.entries(value).every(([key, item]) => isStorableText(key) && isStorableJson(item, depth + 1));
  }
  return true;
}

/** A free-form JSON object stored as jsonb, bounded in size and depth. */
export function jsonObject(maxBytes: number) {
  return z
    .record(z.string(), z.unknown())
    .refine(isStorableJson, { message: "Must nest at most 16 levels and contain no NUL or unpaired surrogate characters" })
    .refine((value) => JSON.stringify(value).length <= maxBytes, { message: `Must serialize to at most ${maxBytes} bytes` });
}

export const Uuid = z.uuid();
export const DateTime = z.iso.datetime({ offset: true });
/** Byte counts: non-negative safe integers. */
export const Bytes = z.int().min(0);
