import { z } from "zod";

// zod's own English messages ("Too small: expected string to have >=1 characters",
// "Invalid input: expected string, received undefined") are written for developers. Every
// client of the API reads these in `error.details[].message`, and the dashboard shows them
// next to form fields: these say the same in words for people. A schema's own message
// (`.min(12, "Must be at least 12 characters")`) still wins over these.

const typeNames: Record<string, string> = {
  string: "text",
  number: "a number",
  int: "a whole number",
  bigint: "a whole number",
  boolean: "true or false",
  object: "an object",
  array: "a list",
  date: "a date",
  null: "null",
  undefined: "nothing",
};

const formatNames: Record<string, string> = {
  email: "an email address, like name@example.com",
  url: "a URL",
  uuid: "a UUID",
  guid: "a UUID",
  datetime: "a date and time in ISO 8601 with its offset, like 2026-11-30T12:00:00Z",
  date: "a date in ISO 8601, like 2026-11-30",
  time: "a time in ISO 8601, like 12:00:00",
  ipv4: "an IPv4 address",
  ipv6: "an IPv6 address",
  base64: "base64 text",
  base64url: "URL-safe base64 text",
  jwt: "a JWT",
};

const units: Record<string, [string, string]> = {
  string: ["character", "characters"],
  array: ["item", "items"],
  set: ["item", "items"],
  map: ["entry", "entries"],
  file: ["byte", "bytes"],
};

function typeOf(input: unknown): string {
  if (input === null) return "null";
  if (Array.isArray(input)) return "array";
  if (typeof input === "number" && Number.isNaN(input)) return "NaN";
  return typeof input;
}

function list(values: ReadonlyArray<unknown>): string {
  return values.map((value) => (typeof value === "string" ? `"${value}"` : String(value))).join(", ");
}

/** A bound as words: `at least 12 characters`, `greater than 0`, `exactly 64 characters`. */
function bound(side: "small" | "big", issue: { origin?: string; inclusive?: boolean; exact?: boolean }, limit: number | bigint): string {
  const unit = units[issue.origin ?? ""];
  const quantity = unit ? ` ${Number(limit) === 1 ? unit[0] : unit[1]}` : "";
  if (issue.exact) return `exactly ${limit}${quantity}`;
  if (unit) return `${side === "small" ? "at least" : "at most"} ${issue.inclusive === false ? Number(limit) + (side === "small" ? 1 : -1) : limit}${quantity}`;
  if (issue.inclusive === false) return `${side === "small" ? "greater than" : "less than"} ${limit}`;
  return `${side === "small" ? "at least" : "at most"} ${limit}`;
}

/** The message of fields a strict object does not know (validationIssues names each at its own path). */
export function unknownFieldsMessage(keys: readonly string[]): string {
  return `Unknown field${keys.length === 1 ? "" : "s"}: ${keys.join(", ")}`;
}

/** `a`, `a or b`, `a, b or c`. */
function orList(items: readonly string[]): string {
  return items.length < 2 ? (items[0] ?? "") : `${items.slice(0, -1).join(", ")} or ${items.at(-1)}`;
}

/**
 * A union of objects told apart by which field they have (`{ deviceId } | { group }`), given
 * both fields or neither: "Give exactly one of deviceId or group". Each form's own fields are
 * read from its issues: those it requires and lacks, and those given that it accepts but
 * another form does not know. Given exactly one such field, what is wrong in its form.
 * Undefined when the forms are not objects told apart this way.
 */
function choiceMessage(forms: ReadonlyArray<ReadonlyArray<z.core.$ZodIssue>>, given: Record<string, unknown> | undefined): string | undefined {
  if (!given || forms.length < 2) return undefined;
  const unknownOf = forms.map(
    (issues) => new Set(issues.flatMap((inner) => (inner.code === "unrecognized_keys" && inner.path.length === 0 ? inner.keys : []))),
  );
  const ownOf = forms.map((issues, form) => {
    const lacking = issues.flatMap((inner) => (inner.path.length === 1 && !(String(inner.path[0]) in given) ? [String(inner.path[0])] : []));
    const accepted = Object.keys(given).filter((key) => !unknownOf[form]!.has(key) && unknownOf.some((unknown, other) => other !== form && unknown.has(key)));
    return [...new Set([...lacking, ...accepted])];
  });
  // A form that is not an object, or has no field of its own: no choice to describe.
  if (forms.some((issues) => issues.some((inner) => inner.path.length === 0 && inner.code !== "unrecognized_keys"))) return undefined;
  if (ownOf.some((own) => own.length === 0)) return undefined;
  const fields = [...new Set(ownOf.flat())];
  const chosen = fields.filter((field) => field in given);
  if (chosen.length === 1) {
    // Every form of a failed union has an issue.
    const inner = forms[ownOf.findIndex((own) => own.includes(chosen[0]!))]![0]!;
    return inner.path.length > 0 ? `${inner.path.join(".")}: ${inner.message}` : inner.message;
  }
  return `Give exactly one of ${orList(fields)}`;
}

/** zod's locale, replaced: see above. */
export const plainMessages: z.core.$ZodErrorMap = (issue) => {
  switch (issue.code) {
    case "invalid_type":
      if (issue.input === undefined) return "Required";
      if (issue.expected === "int" && typeof issue.input === "number") return "Must be a whole number";
      return `Must be ${typeNames[issue.expected] ?? issue.expected} (got ${typeOf(issue.input)})`;
    case "invalid_value":
      return issue.values.length === 1 ? `Must be ${list(issue.values)}` : `Must be one of: ${list(issue.values)}`;
    case "too_small":
      if (units[issue.origin ?? ""] && Number(issue.minimum) === 1 && issue.inclusive !== false && !issue.exact) return "Must not be empty";
      return `Must ${units[issue.origin ?? ""] ? "have" : "be"} ${bound("small", issue, issue.minimum)}`;
    case "too_big":
      return `Must ${units[issue.origin ?? ""] ? "have" : "be"} ${bound("big", issue, issue.maximum)}`;
    case "invalid_format":
      if (issue.format === "starts_with") return `Must start with "${(issue as { prefix?: string }).prefix}"`;
      if (issue.format === "ends_with") return `Must end with "${(issue as { suffix?: string }).suffix}"`;
      if (issue.format === "includes") return `Must include "${(issue as { includes?: string }).includes}"`;
      if (issue.format === "regex") return `Must match the pattern ${(issue as { pattern?: string }).pattern}`;
      return `Must be ${formatNames[issue.format] ?? `a valid ${issue.format}`}`;
    case "not_multiple_of":
      return `Must be a multiple of ${issue.divisor}`;
    case "unrecognized_keys":
      return unknownFieldsMessage(issue.keys);
    case "invalid_union": {
      // A discriminated union names the values its discriminator takes.
      const options = (issue as { options?: unknown[] }).options;
      if (options && options.length > 0) return `Must be one of: ${list(options)}`;
      // One form has every field it complains about, and no other field (`{ deviceIds }` of
      // `{ deviceIds } | { group }`, given too many ids): what is wrong inside it is the answer.
      const given = issue.input !== null && typeof issue.input === "object" ? (issue.input as Record<string, unknown>) : undefined;
      const shaped = (issue.errors ?? []).filter((issues) =>
        issues.every((inner) => inner.code !== "unrecognized_keys" && inner.path.length > 0 && given !== undefined && String(inner.path[0]) in given),
      );
      const inner = shaped.length === 1 ? shaped[0]![0] : undefined;
      if (inner) return inner.path.length > 0 ? `${inner.path.join(".")}: ${inner.message}` : inner.message;
      return choiceMessage(issue.errors ?? [], given) ?? "Matches none of the accepted forms";
    }
    case "invalid_key":
      return `Invalid key in this ${issue.origin}`;
    default:
      return "Invalid value";
  }
};

z.config({ localeError: plainMessages });
