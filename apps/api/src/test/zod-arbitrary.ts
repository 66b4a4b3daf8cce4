import fc from "fast-check";
import { z } from "zod";

/** The subset of JSON Schema that `z.toJSONSchema` emits for the contract's schemas. */
type JsonSchema = {
  type?: string | string[];
  const?: unknown;
  enum?: unknown[];
  anyOf?: JsonSchema[];
  oneOf?: JsonSchema[];
  allOf?: JsonSchema[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  additionalProperties?: boolean | JsonSchema;
  items?: JsonSchema;
  minItems?: number;
  maxItems?: number;
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  format?: string;
  minimum?: number;
  maximum?: number;
  exclusiveMinimum?: number;
  exclusiveMaximum?: number;
  default?: unknown;
  $ref?: string;
  $defs?: Record<string, JsonSchema>;
};

export type ArbitraryOptions = {
  /** Uuids the server knows (devices, commands, ...): picked half the time, so valid requests reach real rows. */
  knownUuids?: () => readonly string[];
  /** Longest text generated for an unbounded or long string (the exact maximum is generated too). */
  maxTextLength?: number;
};

// Each format is generated directly: building these from their regular expressions gives
// mostly strings nobody would send, and much more slowly.
const emailArbitrary = fc
  .tuple(
    fc.stringMatching(/^[a-z0-9]{1,8}(?:[._+-][a-z0-9]{1,6}){0,2}$/),
    fc.stringMatching(/^[a-z][a-z0-9]{0,10}$/),
    fc.constantFrom("com", "org", "io", "example"),
  )
  .map(([local, domain, tld]) => `${local}@${domain}.${tld}`);

const EARLIEST = Date.UTC(1970, 0, 1);
const LATEST = Date.UTC(9999, 11, 31, 23, 59, 59, 999);
const dateTimeArbitrary = fc.oneof(
  fc.integer({ min: EARLIEST, max: LATEST }).map((time) => new Date(time).toISOString()),
  fc.integer({ min: Date.now() - 86_400_000, max: Date.now() + 86_400_000 }).map((time) => new Date(time).toISOString()),
  fc.tuple(fc.integer({ min: EARLIEST + 86_400_000, max: LATEST - 86_400_000 }), fc.integer({ min: -14, max: 14 })).map(([time, hours]) => {
    const local = new Date(time + hours * 3_600_000).toISOString().slice(0, 19);
    const sign = hours < 0 ? "-" : "+";
    return `${local}${sign}${String(Math.abs(hours)).padStart(2, "0")}:00`;
  }),
);
const urlArbitrary = fc
  .tuple(fc.stringMatching(/^[a-z][a-z0-9-]{0,20}$/), fc.array(fc.stringMatching(/^[A-Za-z0-9._~-]{1,12}$/), { maxLength: 4 }))
  .map(([host, segments]) => `https://${host}.example.com/${segments.join("/")}`);

function stringArbitrary(schema: JsonSchema, options: ArbitraryOptions): fc.Arbitrary<string> {
  const min = schema.minLength ?? 0;
  const max = schema.maxLength ?? Number.MAX_SAFE_INTEGER;
  const cap = Math.min(max, min + (options.maxTextLength ?? 40));
  const fits = (value: string) => value.length >= min && value.length <= max;
  switch (schema.format) {
    case "uuid": {
      const fresh = fc.uuid();
      const known = options.knownUuids;
      if (!known) return fresh;
      return fc.oneof(
        fresh,
        fc.nat().map((index) => known()[index % Math.max(known().length, 1)] ?? "00000000-0000-0000-0000-000000000000"),
      );
    }
    case "email":
      return emailArbitrary.filter(fits);
    case "date-time":
      return dateTimeArbitrary;
    case "uri":
    case "url":
      return urlArbitrary.filter(fits);
  }
  if (schema.pattern) return fc.stringMatching(new RegExp(schema.pattern)).filter(fits);
  return fc.oneof(
    { weight: 8, arbitrary: fc.string({ minLength: min, maxLength: cap, unit: "grapheme" }) },
    { weight: 1, arbitrary: fc.string({ minLength: min, maxLength: cap, unit: "binary" }) },
    // The boundary itself.
    { weight: 1, arbitrary: fc.constant("x".repeat(Math.min(max, 100_000))).filter(() => max < 100_000) },
  );
}

function numberArbitrary(schema: JsonSchema, integer: boolean): fc.Arbitrary<number> {
  const min = schema.minimum ?? (schema.exclusiveMinimum !== undefined ? schema.exclusiveMinimum + (integer ? 1 : Number.EPSILON) : undefined);
  const max = schema.maximum ?? (schema.exclusiveMaximum !== undefined ? schema.exclusiveMaximum - (integer ? 1 : Number.EPSILON) : undefined);
  if (integer)
    return fc.integer({
      min: Math.max(min ?? Number.MIN_SAFE_INTEGER, Number.MIN_SAFE_INTEGER),
      max: Math.min(max ?? Number.MAX_SAFE_INTEGER, Number.MAX_SAFE_INTEGER),
    });
  return fc.double({ min: min ?? -1e15, max: max ?? 1e15, noNaN: true, noDefaultInfinity: true });
}

function objectArbitrary(schema: JsonSchema, options: ArbitraryOptions, root: JsonSchema): fc.Arbitrary<Record<string, unknown>> {
  const properties = schema.properties ?? {};
  const required = new Set(schema.required ?? []);
  const model = Object.fromEntries(Object.entries(properties).map(([key, property]) => [key, build(property, options, root)]));
  const known = fc.record(model, { requiredKeys: Object.keys(properties).filter((key) => required.has(key)) });
  if (typeof schema.additionalProperties !== "object") return known;
  // A record (`z.record`): keys of its own.
  const extra = fc.dictionary(fc.string({ minLength: 1, maxLength: 12 }), build(schema.additionalProperties, options, root), { maxKeys: 4 });
  return fc.tuple(known, extra).map(([fixed, rest]) => ({ ...rest, ...fixed }));
}

function build(schema: JsonSchema, options: ArbitraryOptions, root: JsonSchema): fc.Arbitrary<unknown> {
  if (schema.$ref) {
    const name = schema.$ref.replace(/^#\/\$defs\//, "");
    const target = root.$defs?.[name];
    if (!target) throw new Error(`zod-arbitrary: unresolved ${schema.$ref}`);
    return fc.constant(null).chain(() => build(target, options, root));
  }
  if (schema.const !== undefined) return fc.constant(schema.const);
  if (schema.enum) return fc.constantFrom(...schema.enum);
  const branches = schema.anyOf ?? schema.oneOf;
  if (branches) return fc.oneof(...branches.map((branch) => build(branch, options, root)));
  if (schema.allOf?.length) return build(schema.allOf[0]!, options, root);
  const types = Array.isArray(schema.type) ? schema.type : schema.type ? [schema.type] : [];
  if (types.length > 1) return fc.oneof(...types.map((type) => build({ ...schema, type }, options, root)));
  switch (types[0]) {
    case "object":
      return objectArbitrary(schema, options, root);
    case "array":
      return fc.array(schema.items ? build(schema.items, options, root) : fc.jsonValue({ maxDepth: 2 }), {
        minLength: schema.minItems ?? 0,
        maxLength: Math.min(schema.maxItems ?? 5, (schema.minItems ?? 0) + 5),
      });
    case "string":
      return stringArbitrary(schema, options);
    case "integer":
      return numberArbitrary(schema, true);
    case "number":
      return numberArbitrary(schema, false);
    case "boolean":
      return fc.boolean();
    case "null":
      return fc.constant(null);
    default:
      // `z.unknown()` / `z.any()`: any JSON value, shallow.
      return fc.jsonValue({ maxDepth: 2 });
  }
}

/**
 * Values shaped by a zod schema's input side (what a client sends), built through
 * `z.toJSONSchema`. Best effort: refinements JSON Schema cannot express (storable text,
 * cross-field rules) are not honoured, so callers that need valid values check them with
 * the schema itself; most generated values are valid.
 */
export function arbitraryFor(schema: z.ZodType, options: ArbitraryOptions = {}): fc.Arbitrary<unknown> {
  const json = z.toJSONSchema(schema, { io: "input", unrepresentable: "any" }) as JsonSchema;
  return build(json, options, json);
}
