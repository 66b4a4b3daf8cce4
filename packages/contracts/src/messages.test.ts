import { z } from "zod";
import { SetupRequest, validationIssues } from "./index";

/** The message of the first issue `schema` finds in `input`. */
function messageOf(schema: z.ZodType, input: unknown): string {
  const result = schema.safeParse(input);
  if (result.success) throw new Error(`${JSON.stringify(input)} was accepted`);
  return result.error.issues[0]!.message;
}

test.each([
  ["a missing field", z.object({ name: z.string() }), {}, "Required"],
  ["a wrong type", z.string(), 12, "Must be text (got number)"],
  ["null for a number", z.number(), null, "Must be a number (got null)"],
  ["an array for an object", z.object({}), [], "Must be an object (got array)"],
  ["NaN", z.number(), Number.NaN, "Must be a number (got NaN)"],
  ["an unknown type name", z.symbol(), "x", "Must be symbol (got string)"],
  ["a literal", z.literal("on"), "off", 'Must be "on"'],
  ["an enum", z.enum(["kiosk", "open"]), "other", 'Must be one of: "kiosk", "open"'],
  ["an empty string", z.string().min(1), "", "Must not be empty"],
  ["a short string", z.string().min(12), "short", "Must have at least 12 characters"],
  ["a long string", z.string().max(3), "long", "Must have at most 3 characters"],
  ["a string of exact length", z.string().length(64), "ab", "Must have exactly 64 characters"],
  ["an empty list", z.array(z.string()).min(1), [], "Must not be empty"],
  ["a long list", z.array(z.number()).max(1), [1, 2], "Must have at most 1 item"],
  ["a small number", z.number().min(5), 4, "Must be at least 5"],
  ["a non-positive number", z.number().positive(), 0, "Must be greater than 0"],
  ["a big number", z.number().max(10), 11, "Must be at most 10"],
  ["a number not below", z.number().lt(10), 10, "Must be less than 10"],
  ["a fraction", z.number().int(), 1.5, "Must be a whole number"],
  ["a multiple", z.number().multipleOf(5), 7, "Must be a multiple of 5"],
  ["an email", z.email(), "nobody", "Must be an email address, like name@example.com"],
  ["a UUID", z.uuid(), "nope", "Must be a UUID"],
  ["a date-time", z.iso.datetime(), "yesterday", "Must be a date and time in ISO 8601 with its offset, like 2026-11-30T12:00:00Z"],
  ["an unnamed format", z.cuid(), "!", "Must be a valid cuid"],
  ["a prefix", z.string().startsWith("com."), "org.x", 'Must start with "com."'],
  ["a suffix", z.string().endsWith(".apk"), "x.zip", 'Must end with ".apk"'],
  ["an inclusion", z.string().includes("@"), "x", 'Must include "@"'],
  ["a pattern", z.string().regex(/^[a-z]+$/), "A", "Must match the pattern /^[a-z]+$/"],
  ["an unknown field", z.strictObject({}), { extra: 1 }, "Unknown field: extra"],
  ["unknown fields", z.strictObject({}), { a: 1, b: 2 }, "Unknown fields: a, b"],
  ["a union", z.union([z.string(), z.number()]), true, "Matches none of the accepted forms"],
  [
    "a union of shapes, one given with a bad value",
    z.union([z.strictObject({ ids: z.array(z.string()).max(2) }), z.strictObject({ group: z.string() })]),
    { ids: ["a", "b", "c"] },
    "ids: Must have at most 2 items",
  ],
  [
    "a union of shapes, one given with a wrong value",
    z.union([z.strictObject({ all: z.literal(true) }), z.strictObject({ group: z.string() })]),
    { all: false },
    "all: Must be true",
  ],
  [
    "a union of shapes, an empty object",
    z.union([z.strictObject({ all: z.literal(true) }), z.strictObject({ group: z.string() })]),
    {},
    "Give exactly one of all or group",
  ],
  [
    "a union of shapes, neither given",
    z.union([z.strictObject({ ids: z.array(z.string()) }), z.strictObject({ group: z.string() })]),
    { other: 1 },
    "Give exactly one of ids or group",
  ],
  [
    "a union of shapes, both given",
    z.union([z.strictObject({ deviceId: z.uuid(), priority: z.int().optional() }), z.strictObject({ group: z.string(), priority: z.int().optional() })]),
    { deviceId: "3f0e8a3c-1111-4222-8333-444455556666", group: "lobby", priority: 1 },
    "Give exactly one of deviceId or group",
  ],
  [
    "a union of three shapes, two given",
    z.union([z.strictObject({ ids: z.array(z.string()) }), z.strictObject({ group: z.string() }), z.strictObject({ all: z.literal(true) })]),
    { ids: [], all: true },
    "Give exactly one of ids, group or all",
  ],
  [
    "a union of shapes, one given with a bad value and an unknown field",
    z.union([z.strictObject({ deviceId: z.uuid() }), z.strictObject({ group: z.string() })]),
    { deviceId: 5, colour: 1 },
    "deviceId: Must be text (got number)",
  ],
  [
    "a union of a shape and text, given an object",
    z.union([z.strictObject({ ids: z.array(z.string()) }), z.string()]),
    { other: 1 },
    "Matches none of the accepted forms",
  ],
  [
    "a union of shapes, one without a field of its own",
    z.union([z.strictObject({ x: z.number().optional() }), z.strictObject({ x: z.number().optional(), y: z.string() })]),
    { x: "s", z: 1 },
    "Matches none of the accepted forms",
  ],
  [
    "a discriminator",
    z.discriminatedUnion("type", [z.object({ type: z.literal("ping") }), z.object({ type: z.literal("lock") })]),
    { type: "dance" },
    'Must be one of: "ping", "lock"',
  ],
  ["a record key", z.record(z.string().min(2), z.number()), { b: 1 }, "Invalid key in this record"],
  ["a custom refinement", z.string().refine(() => false), "x", "Invalid value"],
] as const)("%s reads as words for people", (_name, schema, input, expected) => {
  expect(messageOf(schema as z.ZodType, input)).toBe(expected);
});

test("a schema's own message wins over the plain ones", () => {
  const result = SetupRequest.safeParse({ email: "ada@example.com", name: "Ada", password: "short" });
  expect(result.success).toBe(false);
  expect(result.error!.issues.map((issue) => issue.message)).toContain("Must be at least 12 characters");
});

describe("validationIssues: a failed parse as an error's details", () => {
  const details = (schema: z.ZodType, input: unknown, prefix?: string[]) => {
    const result = schema.safeParse(input);
    if (result.success) throw new Error(`${JSON.stringify(input)} was accepted`);
    return validationIssues(result.error, prefix);
  };
  const settings = z.strictObject({ kiosk: z.strictObject({ statusBar: z.boolean() }).partial(), apps: z.array(z.strictObject({ name: z.string() })) });

  it("names an unknown field at its own path, not its object's", () => {
    expect(details(settings, { kiosk: { foo: 1 }, apps: [] })).toEqual([{ path: "kiosk.foo", message: "Unknown field: foo" }]);
    expect(details(settings, { kiosk: {}, apps: [{ name: "a", extra: true }] })).toEqual([{ path: "apps.0.extra", message: "Unknown field: extra" }]);
    expect(details(settings, { kiosk: {}, apps: [], top: 1 })).toEqual([{ path: "top", message: "Unknown field: top" }]);
  });

  it("names several unknown fields of one object each at its path, beside the other issues, under a prefix", () => {
    expect(details(settings, { kiosk: { statusBar: "no", a: 1, b: 2 }, apps: [] }, ["body"])).toEqual([
      { path: "body.kiosk.statusBar", message: "Must be true or false (got string)" },
      { path: "body.kiosk.a", message: "Unknown field: a" },
      { path: "body.kiosk.b", message: "Unknown field: b" },
    ]);
  });

  it("keeps the dotted path of other issues, empty for the whole value", () => {
    expect(details(z.strictObject({ level: z.int().max(100) }), { level: 101 })).toEqual([{ path: "level", message: "Must be at most 100" }]);
    expect(details(z.strictObject({}), 5)).toEqual([{ path: "", message: "Must be an object (got number)" }]);
  });
});
