import http from "node:http";
import type { AddressInfo } from "node:net";
import {
  type ApiRoute,
  type ApiRouteName,
  CSRF_HEADER,
  DASHBOARD_WS_PROTOCOL,
  DEVICE_WS_PROTOCOL,
  DashboardClientFrame,
  DashboardServerFrame,
  DeviceClientFrame,
  DeviceServerFrame,
  ErrorBody,
  ErrorCode,
  HealthResponse,
  apiRoutes,
  errorStatus,
  routeErrors,
  signAdminRequest,
} from "@mdm/contracts";
import fc from "fast-check";
import WebSocket from "ws";
import { parseEnv } from "./config/env";
import { createHttpServer } from "./lib/http-server";
import { type RunningServer, startServer } from "./server";
import {
  TEST_ADMIN_KEY,
  TEST_BCRYPT_COST,
  TEST_HMAC_SECRET,
  TEST_HOST,
  TEST_SECRETS,
  type TestApp,
  type TestDatabase,
  createTestApp,
  createTestDatabase,
  enrollDevice,
  heartbeatBody,
  within,
} from "./test";
import { type WireRequest, type WireResponse, sendWire } from "./test/fuzz-http";
import { nested, rowCounts } from "./test/hostile";
import { type SignedIn, createUser, signIn } from "./test/sessions";
import { arbitraryFor } from "./test/zod-arbitrary";

// Property-based fuzzing from the contract: requests generated from each route's zod
// schemas, valid and mutated, sent over real sockets first to the test app (no background
// workers, so every refused request is checked to have changed no row) and then to the
// server `startServer` runs (workers, WebSocket channels, its own HTTP limits). The oracle:
// no 5xx, no dropped connection, every refusal the contract's error body with the status
// its code maps to, every success the route's response schema, /api/health 200 throughout,
// and rows only where accepted requests put them.
//
// FUZZ_RUNS (default 10000) scales the HTTP requests; FUZZ_SEED replays a run (the seed is
// printed); FUZZ_SHRINK=1 shrinks a failure (requests are stateful, so off by default).

const TOTAL = Number(process.env.FUZZ_RUNS ?? 10_000);
const SEED = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : Date.now() % 2 ** 31;
const WS_FRAMES = Math.max(200, Math.round(TOTAL / 20));
/** Requests sent, on top of TOTAL, to a server whose every rate limit is 2. */
const LIMITED_REQUESTS = Math.max(400, Math.round(TOTAL / 20));
const LEGACY_KEY = "legacy-key-0123456789abcdef0123456789abcdef";
const BODY_LIMIT = 64 * 1024;
const HEALTH_EVERY_MS = 500;
// The test app takes requests one at a time, so each refusal is checked to change no row;
// the listening server takes the rest several at a time, as a fleet would send them.
const SEQUENTIAL_SHARE = 0.2;
const SERVER_CONCURRENCY = 8;
// Written by the workers of the listening server on their own: left out of its row checks
// (the test-app phase checks them strictly). The mail worker handles reset requests after
// their answer: it deletes the request, audits it, and may create a token and a mail. The
// offline sweep groups devices into alert incidents and queues their webhook deliveries.
// The policy worker deletes the PolicyDispatch rows of policy changes once it has dealt with them.
const WORKER_TABLES = [
  "CommandEvent",
  "OutboxMail",
  "Alert",
  "AlertEvent",
  "AlertIncident",
  "AlertIncidentDevice",
  "WebhookDelivery",
  "JobLease",
  "PasswordResetRequest",
  "PasswordResetToken",
  "AuditLog",
  "PolicyDispatch",
  "PolicyRecompute",
];

fc.configureGlobal({ seed: SEED, endOnFailure: process.env.FUZZ_SHRINK !== "1" });
jest.setTimeout(600_000);

const routeNames = Object.keys(apiRoutes) as ApiRouteName[];
const routeOf = (name: ApiRouteName): ApiRoute => apiRoutes[name];

// ---- The world the requests act on ---------------------------------------------------

type World = {
  device: { deviceId: string; deviceToken: string };
  legacy: { legacyId: string; deviceId: string; deviceToken: string };
  admin: SignedIn;
  viewer: SignedIn;
  /** Signed out and refreshed by the fuzz itself (logout, refresh): never the admin's session. */
  throwaway: { logout: SignedIn; refresh: SignedIn };
  /** Enrollment token secrets from accepted creates: register uses them half the time. */
  enrollmentSecrets: string[];
  victimUserId: string;
  protectedUserIds: Set<string>;
  /** Ids the server handed out: half the generated uuids are picked from here. */
  known: string[];
};

let database: TestDatabase;
let t: TestApp;
let world: World;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function harvestIds(value: unknown, depth = 0): void {
  if (depth > 6 || world.known.length > 2000) return;
  if (typeof value === "string") {
    if (UUID.test(value) && !world.protectedUserIds.has(value) && !world.known.includes(value)) world.known.push(value);
  } else if (Array.isArray(value)) {
    for (const item of value.slice(0, 20)) harvestIds(item, depth + 1);
  } else if (value && typeof value === "object") {
    for (const item of Object.values(value)) harvestIds(item, depth + 1);
  }
}

// ---- Generation: a plan is pure data; credentials and signatures are added when sent -----

type Credentials = "valid" | "none" | "garbage" | "bad-signature" | "stale" | "wrong-host" | "viewer" | "cookie" | "cookie-no-csrf";
type ParamPlan = { kind: "known"; index: number } | { kind: "uuid"; value: string } | { kind: "raw"; value: string };
type BodyPlan = { kind: "none" } | { kind: "json"; value: unknown } | { kind: "raw"; text: string };
type Plan = {
  route: ApiRouteName;
  params: Record<string, ParamPlan>;
  query: string;
  body: BodyPlan;
  contentType: string | null;
  credentials: Credentials;
  /** What was done to the generated request, if anything (for the report). */
  mutation: string;
  /** Legacy route: speak as the known legacy device; register: use an enrollment token the server issued. */
  asKnownLegacy: boolean;
};

const knownUuids = () => world.known;

const hostileText = fc.constantFrom(
  "a\u0000b",
  "\ud800",
  "\udfff",
  "\u202e\u0627\u0644\u0639\u0631\u0628\u064a\u0629",
  "\ufeff",
  "\u2028\u2029",
  "e\u0301\u0301\u0301",
  "\ud83d\udc69\u200d\ud83d\udc69\u200d\ud83d\udc67",
  "%00",
  '\'; DROP TABLE "Device"; --',
  // biome-ignore lint/suspicious/noTemplateCurlyInString: the point is the literal text
  "${jndi:ldap://x}",
  "{{7*7}}",
  "../../../../etc/passwd",
  "\\u0000",
  "<script>alert(1)</script>",
  "x".repeat(5000),
);
const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  hostileText,
  fc.constantFrom(null, true, false, 0, -0, -1, 1.5, 2 ** 53 + 2, -(2 ** 63), 1e308, [], {}, [[[[]]]], { a: { b: { c: {} } } }),
  fc.jsonValue({ maxDepth: 3 }),
  fc.string({ unit: "binary", maxLength: 30 }),
);

const hostileParam = fc.oneof(
  fc.constantFrom(
    "not-a-uuid",
    "%00",
    "..%2F..%2Fetc%2Fpasswd",
    "%E2%80%AE",
    "%",
    "%zz",
    "%C0%AF",
    "%F0%9F%98%80",
    "0",
    "-1",
    "null",
    "undefined",
    "%7B3f0e8a3c-1111-4222-8333-444455556666%7D",
    "3F0E8A3C-1111-4222-8333-444455556666",
    "3f0e8a3c-1111-4222-8333-44445555666",
    "3f0e8a3c11114222833344445555666",
    "00000000-0000-0000-0000-000000000000",
    "a".repeat(3000),
    "%27%20OR%201%3D1--",
  ),
  fc.string({ minLength: 1, maxLength: 40, unit: "binary" }).map(encodeURIComponent),
);

function queryString(value: Record<string, unknown>): string {
  const search = new URLSearchParams();
  for (const [key, item] of Object.entries(value)) if (item !== undefined) search.append(key, String(item));
  return search.toString();
}

function queryArbitrary(route: ApiRoute): fc.Arbitrary<{ query: string; mutation: string }> {
  const valid = route.query ? arbitraryFor(route.query, { knownUuids }).map((value) => queryString(value as Record<string, unknown>)) : fc.constant("");
  const hostile = fc.oneof(
    fc.constantFrom(
      "limit=1&limit=2",
      "limit=abc",
      "limit=1e400",
      "limit=-1",
      "limit=%00",
      "limit=",
      "limit",
      "offset=99999999999999999999",
      "%zz=1",
      "a[b]=c",
      "limit[]=1",
      "limit[a]=1",
      "=&&&=",
      "cursor=99999999999999999999",
      "cursor=9223372036854775808",
      "cursor=-1",
      "from=0000-01-01T00:00:00Z",
      "search=%00",
      "search=%ED%A0%80",
      "search=%C0%AF",
      "sort=__proto__",
      "__proto__[x]=1",
      "constructor[prototype][x]=1",
      "deviceId=not-a-uuid",
      "status=online&status=offline",
      `search=${"%41".repeat(2000)}`,
    ),
    fc.dictionary(fc.string({ minLength: 1, maxLength: 10 }), fc.string({ maxLength: 20 }), { maxKeys: 3 }).map((value) => queryString(value)),
  );
  return fc.oneof(
    { weight: 6, arbitrary: valid.map((query) => ({ query, mutation: "" })) },
    {
      weight: 1,
      arbitrary: fc.tuple(valid, hostile).map(([query, extra]) => ({ query: [query, extra].filter(Boolean).join("&"), mutation: "query" })),
    },
  );
}

/** Paths of the leaves of a JSON value, for mutating one of them. */
function leafPaths(value: unknown, prefix: string[] = [], out: string[][] = []): string[][] {
  if (value !== null && typeof value === "object" && Object.keys(value).length > 0) {
    for (const [key, item] of Object.entries(value)) leafPaths(item, [...prefix, key], out);
  } else {
    out.push(prefix);
  }
  return out;
}

function setAt(value: unknown, path: string[], replacement: unknown, remove = false): unknown {
  if (path.length === 0) return replacement;
  const copy = structuredClone(value) as Record<string, unknown>;
  let node = copy;
  for (const key of path.slice(0, -1)) node = node[key] as Record<string, unknown>;
  if (remove) delete node[path.at(-1)!];
  else node[path.at(-1)!] = replacement;
  return copy;
}

function bodyArbitrary(route: ApiRoute): fc.Arbitrary<{ body: BodyPlan; contentType: string | null; mutation: string }> {
  const json = (body: BodyPlan, mutation: string) => ({ body, contentType: "application/json", mutation });
  if (!route.body) {
    return fc.oneof(
      { weight: 12, arbitrary: fc.constant({ body: { kind: "none" } as BodyPlan, contentType: null, mutation: "" }) },
      { weight: 1, arbitrary: fc.jsonValue({ maxDepth: 2 }).map((value) => json({ kind: "json", value }, "body on a bodiless route")) },
      { weight: 1, arbitrary: fc.constant(json({ kind: "raw", text: '{"a":' }, "bad JSON on a bodiless route")) },
    );
  }
  const valid = arbitraryFor(route.body, { knownUuids });
  const leafMutation = fc.tuple(valid, fc.nat(), hostileValue, fc.boolean()).map(([value, pick, replacement, remove]) => {
    const paths = leafPaths(value);
    const path = paths[pick % paths.length]!;
    return json({ kind: "json", value: setAt(value, path, replacement, remove && path.length > 0) }, remove ? "field removed" : "field replaced");
  });
  const extraField = fc
    .tuple(valid, fc.constantFrom("extra", "__proto__", "constructor", "isAdmin", "", "\u0000", "a".repeat(300)), hostileValue)
    .map(([value, key, item]) => {
      const text = JSON.stringify(value);
      // Spliced into the text, so a __proto__ key arrives as an own property of the JSON.
      const spliced = text.startsWith("{") && text !== "{}" ? `{${JSON.stringify(key)}:${JSON.stringify(item) ?? "null"},${text.slice(1)}` : text;
      return json({ kind: "raw", text: spliced }, "extra field");
    });
  const rawText = fc.oneof(
    fc.constantFrom(
      '{"a":',
      "",
      "{'a':1}",
      '{"a":1,}',
      "[1,2,3]",
      "null",
      "42",
      '"text"',
      "\ufeff{}",
      "{}garbage",
      '{"a":1}{"b":2}',
      "NaN",
      '{"a":Infinity}',
      "1e309",
      nested(10_000),
      "[".repeat(20_000),
      `"${"x".repeat(BODY_LIMIT)}"`,
      `[${" ".repeat(BODY_LIMIT - 2)}]`,
    ),
    fc.string({ unit: "binary", maxLength: 200 }),
    fc.json({ maxDepth: 4 }),
  );
  const truncated = fc.tuple(valid, fc.nat()).map(([value, cut]) => {
    const text = JSON.stringify(value);
    return json({ kind: "raw", text: text.slice(0, cut % Math.max(text.length, 1)) }, "truncated JSON");
  });
  const duplicateKeys = valid.map((value) => {
    const text = JSON.stringify(value);
    return json({ kind: "raw", text: text.startsWith("{") && text !== "{}" ? `${text.slice(0, -1)},${text.slice(1)}` : text }, "duplicate keys");
  });
  const deepField = fc.tuple(valid, fc.integer({ min: 15, max: 40 })).map(([value, depth]) => {
    const text = JSON.stringify(value);
    return json({ kind: "raw", text: text.startsWith("{") && text !== "{}" ? `{"deep":${nested(depth)},${text.slice(1)}` : nested(depth) }, "deep nesting");
  });
  const wrongType = fc
    .tuple(
      valid,
      fc.constantFrom(
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/json; charset=latin1",
        "application/json; charset=utf-16",
        "application/xml",
        "application/vnd.api+json",
        "application/json-patch+json",
        "*/*",
        "application/json;;;",
        "",
      ),
    )
    .map(([value, contentType]) => ({ body: { kind: "json", value } as BodyPlan, contentType, mutation: "content type" }));
  const noType = valid.map((value) => ({ body: { kind: "json", value } as BodyPlan, contentType: null, mutation: "no content type" }));
  const oversize = fc
    .integer({ min: BODY_LIMIT + 1, max: BODY_LIMIT * 4 })
    .map((size) => json({ kind: "raw", text: `{"a":"${"x".repeat(size)}"}` }, "oversize body"));
  return fc.oneof(
    { weight: 10, arbitrary: valid.map((value) => json({ kind: "json", value }, "")) },
    { weight: 3, arbitrary: leafMutation },
    { weight: 1, arbitrary: extraField },
    { weight: 1, arbitrary: rawText.map((text) => json({ kind: "raw", text }, "raw body")) },
    { weight: 1, arbitrary: truncated },
    { weight: 1, arbitrary: duplicateKeys },
    { weight: 1, arbitrary: deepField },
    { weight: 1, arbitrary: wrongType },
    { weight: 1, arbitrary: noType },
    { weight: 1, arbitrary: oversize },
  );
}

function credentialsArbitrary(route: ApiRoute, name: ApiRouteName): fc.Arbitrary<Credentials> {
  const pick = (entries: Array<[number, Credentials]>) => fc.oneof(...entries.map(([weight, value]) => ({ weight, arbitrary: fc.constant(value) })));
  if (name === "logout" || name === "refreshSession")
    return pick([
      [4, "cookie"],
      [1, "valid"],
      [1, "none"],
      [1, "garbage"],
      [1, "cookie-no-csrf"],
    ]);
  switch (route.auth) {
    case "device":
      return pick([
        [10, "valid"],
        [1, "none"],
        [1, "garbage"],
      ]);
    case "legacy":
      return pick([
        [10, "valid"],
        [1, "none"],
        [1, "garbage"],
      ]);
    case "admin":
      return pick([
        [8, "valid"],
        [3, "cookie"],
        [1, "none"],
        [1, "garbage"],
        [1, "bad-signature"],
        [1, "stale"],
        [1, "wrong-host"],
        [1, "viewer"],
        [1, "cookie-no-csrf"],
      ]);
    case "session":
      return pick([
        [6, "valid"],
        [4, "cookie"],
        [1, "none"],
        [1, "garbage"],
        [1, "viewer"],
        [1, "cookie-no-csrf"],
      ]);
    case "metrics":
      return pick([
        [4, "none"],
        [1, "garbage"],
      ]);
    default:
      return pick([[1, "none"]]);
  }
}

function paramsArbitrary(route: ApiRoute): fc.Arbitrary<{ params: Record<string, ParamPlan>; mutation: string }> {
  const names = [...route.path.matchAll(/\{(\w+)\}/g)].map((match) => match[1]!);
  if (names.length === 0) return fc.constant({ params: {}, mutation: "" });
  const one = fc.oneof(
    { weight: 6, arbitrary: fc.nat().map((index): ParamPlan => ({ kind: "known", index })) },
    { weight: 2, arbitrary: fc.uuid().map((value): ParamPlan => ({ kind: "uuid", value })) },
    { weight: 1, arbitrary: hostileParam.map((value): ParamPlan => ({ kind: "raw", value })) },
  );
  return fc.tuple(...names.map(() => one)).map((plans) => ({
    params: Object.fromEntries(names.map((name, index) => [name, plans[index]!])),
    mutation: plans.some((plan) => plan.kind === "raw") ? "path param" : "",
  }));
}

// Sign-in hashes passwords (bcrypt): fewer of those keep the run short.
const ROUTE_WEIGHT: Partial<Record<ApiRouteName, number>> = { login: 1, setup: 2, confirmPasswordReset: 2, docs: 1, openapi: 1 };

// A route's arbitrary is built once, not for every plan: building one converts its schemas
// and compiles their patterns, which took most of this file's CPU time when done per plan.
// (Building consumes no randomness: the seed gives the same requests either way.)
const routePlanArbitraries = new Map<ApiRouteName, fc.Arbitrary<Plan>>();

const planArbitrary: fc.Arbitrary<Plan> = fc
  .oneof(...routeNames.map((name) => ({ weight: ROUTE_WEIGHT[name] ?? 4, arbitrary: fc.constant(name) })))
  .chain((name) => {
    if (!routePlanArbitraries.has(name)) routePlanArbitraries.set(name, routePlanArbitrary(name));
    return routePlanArbitraries.get(name)!;
  });

function routePlanArbitrary(name: ApiRouteName): fc.Arbitrary<Plan> {
  const route = routeOf(name);
  return fc
    .record({
      params: paramsArbitrary(route),
      query: queryArbitrary(route),
      body: bodyArbitrary(route),
      credentials: credentialsArbitrary(route, name),
      asKnownLegacy: fc.boolean(),
    })
    .map(({ params, query, body, credentials, asKnownLegacy }) => ({
      route: name,
      params: params.params,
      query: query.query,
      body: body.body,
      contentType: body.contentType,
      credentials,
      asKnownLegacy,
      mutation: [params.mutation, query.mutation, body.mutation].filter(Boolean).join(", "),
    }));
}

// ---- Turning a plan into bytes on the wire ---------------------------------------------

function paramValue(name: string, plan: ParamPlan): string {
  if (plan.kind === "raw") return plan.value;
  if (plan.kind === "uuid") return plan.value;
  if (name === "deviceId") return [world.device.deviceId, world.legacy.deviceId][plan.index % 2]!;
  if (name === "userId") {
    const candidates = [world.victimUserId, ...world.known];
    return candidates[plan.index % candidates.length]!;
  }
  return world.known[plan.index % Math.max(world.known.length, 1)] ?? world.device.deviceId;
}

function bodyBytes(plan: Plan): Buffer | undefined {
  if (plan.body.kind === "none") return undefined;
  if (plan.body.kind === "raw") return Buffer.from(plan.body.text, "utf8");
  let value = plan.body.value;
  // The legacy device names itself: sometimes the one that holds a token.
  if (plan.route === "legacyHeartbeat" && plan.asKnownLegacy && value && typeof value === "object" && !Array.isArray(value)) {
    value = { ...value, deviceId: world.legacy.legacyId };
  }
  if (plan.route === "register" && plan.asKnownLegacy && world.enrollmentSecrets.length && value && typeof value === "object" && !Array.isArray(value)) {
    value = { ...value, enrollmentToken: world.enrollmentSecrets[JSON.stringify(value).length % world.enrollmentSecrets.length] };
  }
  return Buffer.from(JSON.stringify(value) ?? "null", "utf8");
}

async function toWire(plan: Plan): Promise<WireRequest> {
  const route = routeOf(plan.route);
  const pathname = route.path.replace(/\{(\w+)\}/g, (_match, name: string) => paramValue(name, plan.params[name]!));
  const path = plan.query ? `${pathname}?${plan.query}` : pathname;
  const body = bodyBytes(plan);
  const headers: Record<string, string> = { Host: TEST_HOST };
  if (plan.contentType !== null && body) headers["Content-Type"] = plan.contentType;
  const method = route.method.toUpperCase();
  const bearer = (token: string) => (headers.Authorization = `Bearer ${token}`);
  const cookie = (session: SignedIn, csrf: boolean) => {
    headers.Cookie = session.cookie;
    if (csrf) headers[CSRF_HEADER] = session.csrf;
  };
  const session = plan.route === "logout" ? world.throwaway.logout : plan.route === "refreshSession" ? world.throwaway.refresh : world.admin;
  const sign = async (options: { hmacSecret?: string; timestamp?: number; host?: string; body?: Buffer } = {}) =>
    Object.assign(
      headers,
      await signAdminRequest({
        adminKey: TEST_ADMIN_KEY,
        hmacSecret: options.hmacSecret ?? TEST_HMAC_SECRET,
        method,
        host: options.host ?? TEST_HOST,
        pathWithQuery: path,
        body: options.body ?? body ?? "",
        timestamp: options.timestamp,
      }),
    );
  switch (plan.credentials) {
    case "none":
      break;
    case "garbage":
      if (route.auth === "legacy") headers["X-Enrollment-Key"] = "not-the-key";
      else bearer("garbage.token.value");
      break;
    case "viewer":
      bearer(world.viewer.access);
      break;
    case "cookie":
      cookie(session, true);
      break;
    case "cookie-no-csrf":
      cookie(session, false);
      break;
    case "bad-signature":
      await sign({ hmacSecret: "not-the-secret-0123456789abcdef0123456789" });
      break;
    case "stale":
      await sign({ timestamp: Math.floor(Date.now() / 1000) - 3600 });
      break;
    case "wrong-host":
      await sign({ host: "other.example.com" });
      break;
    case "valid":
      if (route.auth === "device") bearer(world.device.deviceToken);
      if (route.auth === "session" || plan.route === "logout" || plan.route === "refreshSession") bearer(session.access);
      if (route.auth === "admin") await sign();
      if (route.auth === "legacy") {
        headers["X-Enrollment-Key"] = LEGACY_KEY;
        if (plan.asKnownLegacy) bearer(world.legacy.deviceToken);
      }
      break;
  }
  return { method, path, headers, body, fresh: (body?.length ?? 0) > BODY_LIMIT };
}

// ---- The oracle ------------------------------------------------------------------------

type Tally = { sent: number; accepted: number; statuses: Map<number, number> };
const tally = new Map<string, Tally>();
const accepted = new Map<ApiRouteName, number>();
/** Devices the legacy route answered for: each new one was enrolled by that answer. */
const legacyDevices = new Set<string>();

function count(key: string, status: number, ok: boolean): void {
  const entry = tally.get(key) ?? { sent: 0, accepted: 0, statuses: new Map() };
  entry.sent++;
  if (ok) entry.accepted++;
  entry.statuses.set(status, (entry.statuses.get(status) ?? 0) + 1);
  tally.set(key, entry);
}

function describePlan(plan: Plan, wire: WireRequest): string {
  const body = wire.body ? wire.body.toString("utf8") : "";
  return `${wire.method} ${wire.path.slice(0, 300)} [credentials ${plan.credentials}; ${plan.mutation || "as generated"}] content-type ${wire.headers["Content-Type"] ?? "none"} body ${body.length > 500 ? `${body.slice(0, 500)}… (${body.length} chars)` : body}`;
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** Checks one answer against the contract; returns the parsed body of a success. */
function checkAnswer(plan: Plan, wire: WireRequest, res: WireResponse): unknown {
  const route = routeOf(plan.route);
  const where = () => describePlan(plan, wire);
  if (res.status >= 500) throw new Error(`${res.status} for ${where()}: ${res.text.slice(0, 500)}`);
  if (res.status >= 200 && res.status < 300) {
    const documented = route.responses[res.status];
    if (!documented) throw new Error(`undocumented ${res.status} for ${where()}`);
    if (res.status === 204) {
      if (res.text !== "") throw new Error(`204 with a body for ${where()}`);
      return undefined;
    }
    const expectedTypes = [documented.contentType ?? "application/json", ...(documented.otherContentTypes ?? [])];
    if (!expectedTypes.some((type) => String(res.headers["content-type"]).startsWith(type))) {
      throw new Error(`${res.status} as ${res.headers["content-type"]}, not ${expectedTypes.join(" or ")}, for ${where()}`);
    }
    if (!documented.schema) return undefined;
    const parsed = documented.schema.safeParse(parseJson(res.text));
    if (!parsed.success)
      throw new Error(
        `${res.status} body does not match the contract for ${where()}: ${JSON.stringify(parsed.error.issues.slice(0, 3))} in ${res.text.slice(0, 500)}`,
      );
    return parsed.data;
  }
  if (!String(res.headers["content-type"]).startsWith("application/json"))
    throw new Error(`${res.status} as ${res.headers["content-type"]} for ${where()}: ${res.text.slice(0, 200)}`);
  const error = ErrorBody.safeParse(parseJson(res.text));
  if (!error.success) throw new Error(`${res.status} without the contract's error body for ${where()}: ${res.text.slice(0, 500)}`);
  const code = error.data.error.code;
  if ((res.status === 429 || res.status === 503) && !/^\d+$/.test(String(res.headers["retry-after"] ?? ""))) {
    throw new Error(`${res.status} without a Retry-After in seconds for ${where()}`);
  }
  if (errorStatus[code] !== res.status) throw new Error(`${res.status} with code ${code} (maps to ${errorStatus[code]}) for ${where()}`);
  // A refusal the route documents, or one the request brought on itself by leaving the contract's transport
  // (a path that names no route, a body where the route takes none).
  const allowed = new Set<ErrorCode>(routeErrors(route));
  if (plan.mutation.includes("path param")) allowed.add("not_found");
  if (!route.body && plan.body.kind !== "none")
    for (const extra of ["payload_too_large", "invalid_json", "unsupported_media_type"] as const) allowed.add(extra);
  if (!allowed.has(code)) throw new Error(`${res.status} ${code}, which ${plan.route} does not document, for ${where()}: ${res.text.slice(0, 300)}`);
  return undefined;
}

/**
 * Sends a batch of plans at once, checks every answer, and checks that a batch refused
 * entirely changed no row (one plan a batch: each refusal on its own).
 */
function runner(base: () => URL, agent: http.Agent, rowCheck: { exclude: readonly string[] }) {
  let before: Record<string, number> | undefined;
  return async (plans: Plan[]) => {
    before ??= await rowCounts(database.db, rowCheck);
    const answers = await Promise.all(
      plans.map(async (plan) => {
        const wire = await toWire(plan);
        try {
          return { plan, wire, res: await sendWire(base(), agent, wire) };
        } catch (error) {
          throw new Error(`connection failed (${(error as Error).message}) for ${describePlan(plan, wire)}`);
        }
      }),
    );
    let anyAccepted = false;
    for (const { plan, wire, res } of answers) {
      const ok = res.status >= 200 && res.status < 300;
      count(plan.route, res.status, ok);
      const data = checkAnswer(plan, wire, res);
      if (!ok) continue;
      anyAccepted = true;
      accepted.set(plan.route, (accepted.get(plan.route) ?? 0) + 1);
      harvestIds(data);
      if (plan.route === "createEnrollmentToken") world.enrollmentSecrets.push((data as { token: string }).token);
      if (plan.route === "legacyHeartbeat") legacyDevices.add((data as { deviceId: string }).deviceId);
      if (plan.route === "refreshSession" && plan.credentials === "cookie") adoptRefreshedCookies(res);
    }
    const after = await rowCounts(database.db, rowCheck);
    // The one refusal that writes, by design: a failed sign-in is audited (auth.login_failed).
    const auditedRefusals = answers.filter(({ plan, res }) => plan.route === "login" && res.status === 401).length;
    const expected = before.AuditLog === undefined ? before : { ...before, AuditLog: before.AuditLog + auditedRefusals };
    if (!anyAccepted && JSON.stringify(after) !== JSON.stringify(expected)) {
      throw new Error(
        `refused, yet rows changed (${JSON.stringify(diff(expected, after))}) for ${answers.map(({ plan, wire, res }) => `${res.status} ${describePlan(plan, wire)}`).join("\n")}`,
      );
    }
    before = after;
  };
}

function diff(before: Record<string, number>, after: Record<string, number>): Record<string, string> {
  return Object.fromEntries(
    Object.keys(after)
      .filter((key) => after[key] !== before[key])
      .map((key) => [key, `${before[key]} -> ${after[key]}`]),
  );
}

/** A refresh replaces the throwaway session's cookies: follow it, so later refreshes can succeed too. */
function adoptRefreshedCookies(res: WireResponse): void {
  const cookies = Object.fromEntries(
    ([] as string[]).concat(res.headers["set-cookie"] ?? []).map((line) => {
      const pair = line.split(";")[0]!;
      const equals = pair.indexOf("=");
      return [pair.slice(0, equals), decodeURIComponent(pair.slice(equals + 1))];
    }),
  );
  const current = world.throwaway.refresh;
  const access = cookies.mdm_session ?? current.access;
  const refresh = cookies.mdm_refresh ?? current.refresh;
  const csrf = cookies.mdm_csrf ?? current.csrf;
  world.throwaway.refresh = { ...current, access, refresh, csrf, cookie: `mdm_session=${access}; mdm_refresh=${refresh}; mdm_csrf=${csrf}` };
}

/** Probes /api/health every HEALTH_EVERY_MS until stopped; collects every answer that is not a healthy 200. */
function healthProbe(base: () => URL) {
  const failures: string[] = [];
  let probes = 0;
  const agent = new http.Agent({ keepAlive: true });
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      try {
        const res = await sendWire(base(), agent, { method: "GET", path: "/api/health", headers: { Host: TEST_HOST } }, 5_000);
        probes++;
        if (res.status !== 200 || HealthResponse.parse(JSON.parse(res.text)).status !== "ok") failures.push(`${res.status} ${res.text}`);
      } catch (error) {
        failures.push((error as Error).message);
      }
      await new Promise((resolve) => setTimeout(resolve, HEALTH_EVERY_MS));
    }
  })();
  return {
    stop: async () => {
      stopped = true;
      await loop;
      agent.destroy();
      return { probes, failures };
    },
  };
}

// ---- Setup ----------------------------------------------------------------------------

const ENV = {
  ...TEST_SECRETS,
  BCRYPT_COST: TEST_BCRYPT_COST,
  LEGACY_ENROLLMENT_KEY: LEGACY_KEY,
  // Every limit above what one fuzzing client sends: a 429 would hide the routes behind it.
  RATE_LIMIT_GENERAL_PER_MINUTE: "1000000",
  RATE_LIMIT_ADMIN_PER_MINUTE: "1000000",
  RATE_LIMIT_DEVICE_PER_MINUTE: "1000000",
  RATE_LIMIT_ENROLLMENT_PER_MINUTE: "1000000",
  RATE_LIMIT_LEGACY_ENROLLMENT_PER_MINUTE: "1000000",
  RATE_LIMIT_AUTH_FAILURES_PER_MINUTE: "1000000",
  RATE_LIMIT_LOGIN_PER_MINUTE: "1000000",
  RATE_LIMIT_LOGIN_FAILURES_PER_ACCOUNT: "1000000",
  // Likewise the instance's cap on concurrent exports (its 503 is tested in exports.test.ts).
  EXPORT_MAX_CONCURRENT: "1000",
  RATE_LIMIT_PASSWORD_RESET_PER_HOUR: "1000000",
  // Every valid reset request for an enabled account mails a link (the oracle counts them).
  PASSWORD_RESET_MAIL_INTERVAL_SECONDS: "0",
  WS_MAX_SOCKETS_PER_USER: "1000",
};

let startCounts: Record<string, number>;
/** Devices (each with its enrollment token) enrolled for the WebSocket runs after the HTTP runs retired the first. */
let reenrolled = 0;
const startedAt = Date.now();

beforeAll(async () => {
  console.log(`fuzz: seed ${SEED} (replay with FUZZ_SEED=${SEED}), ${TOTAL} HTTP requests, ${WS_FRAMES} WebSocket frames`);
  database = await createTestDatabase();
  t = createTestApp(database.db, { env: ENV });
  const device = await enrollDevice(t.app);
  const admin = await createUser(database.db, { role: "admin", email: "fuzz-admin@example.com" });
  const viewer = await createUser(database.db, { role: "viewer", email: "fuzz-viewer@example.com" });
  const throwaway = await createUser(database.db, { role: "admin", email: "fuzz-throwaway@example.com" });
  const refresher = await createUser(database.db, { role: "viewer", email: "fuzz-refresher@example.com" });
  const victim = await createUser(database.db, { role: "operator", email: "fuzz-victim@example.com" });
  world = {
    device,
    legacy: { legacyId: "fuzz-legacy-1", deviceId: "", deviceToken: "" },
    admin: await signIn(t.app, admin.email),
    viewer: await signIn(t.app, viewer.email),
    throwaway: { logout: await signIn(t.app, throwaway.email), refresh: await signIn(t.app, refresher.email) },
    enrollmentSecrets: [],
    victimUserId: victim.id,
    protectedUserIds: new Set([admin.id, viewer.id, throwaway.id, refresher.id]),
    known: [device.deviceId],
  };
});

afterAll(async () => {
  await database?.close();
});

// ---- The runs -------------------------------------------------------------------------

async function withTestAppServer<T>(body: (base: URL) => Promise<T>): Promise<T> {
  const server = createHttpServer(t.app, t.deps.env);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const base = new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  try {
    return await body(base);
  } finally {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  }
}

async function enrollLegacy(base: URL): Promise<void> {
  const res = await sendWire(base, new http.Agent(), {
    method: "POST",
    path: "/api/devices/heartbeat",
    headers: { Host: TEST_HOST, "Content-Type": "application/json", "X-Enrollment-Key": LEGACY_KEY },
    body: Buffer.from(JSON.stringify({ deviceId: world.legacy.legacyId, ...heartbeatBody() })),
  });
  expect(res.status).toBe(200);
  const body = JSON.parse(res.text) as { deviceId: string; deviceToken: string };
  world.legacy = { legacyId: world.legacy.legacyId, deviceId: body.deviceId, deviceToken: body.deviceToken };
  world.known.push(body.deviceId);
}

/** Sends `requests` generated requests, `concurrency` at a time. */
function runHttp(base: () => URL, requests: number, exclude: readonly string[], concurrency = 1) {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const run = runner(base, agent, { exclude });
  return fc
    .assert(
      fc.asyncProperty(fc.array(planArbitrary, { minLength: concurrency, maxLength: concurrency }), async (plans) => {
        await run(plans);
      }),
      { numRuns: Math.ceil(requests / concurrency), seed: SEED },
    )
    .finally(() => agent.destroy());
}

describe("fuzzing every route from the contract", () => {
  it("the test app, one request at a time without background workers: no refusal changes a row", async () => {
    await withTestAppServer(async (base) => {
      await enrollLegacy(base);
      startCounts = await rowCounts(database.db);
      const health = healthProbe(() => base);
      try {
        await runHttp(() => base, Math.round(TOTAL * SEQUENTIAL_SHARE), []);
      } finally {
        const { probes, failures } = await health.stop();
        console.log(`fuzz: health probed ${probes} times during the test-app run`);
        expect(failures).toEqual([]);
      }
    });
  });

  describe("the listening server startServer runs", () => {
    let server: RunningServer;
    beforeAll(async () => {
      server = await startServer(
        parseEnv({ NODE_ENV: "test", PORT: "0", HOST: "127.0.0.1", DATABASE_URL: database.url, ADMISSION_MAX_EVENT_LOOP_LAG_MS: "0", ...ENV }),
      );
    });
    afterAll(async () => {
      await server?.close();
    });
    const base = () => new URL(server.url);

    it("HTTP, several requests at a time: no 5xx, no dropped connection, contract answers only", async () => {
      const health = healthProbe(base);
      try {
        await runHttp(base, TOTAL - Math.round(TOTAL * SEQUENTIAL_SHARE), WORKER_TABLES, SERVER_CONCURRENCY);
      } finally {
        const { probes, failures } = await health.stop();
        console.log(`fuzz: health probed ${probes} times during the server run`);
        expect(failures).toEqual([]);
      }
    });

    it("WebSocket: every frame type of both channels, valid and not", async () => {
      // The HTTP runs may have retired or deleted the device the channels use (bulk edits
      // retire whole selections): the channels then get a device of their own.
      const current = await database.db.device.findUnique({ where: { id: world.device.deviceId }, select: { retiredAt: true } });
      if (!current || current.retiredAt) {
        world.device = await enrollDevice(t.app);
        reenrolled++;
      }
      const health = healthProbe(base);
      try {
        await fuzzDeviceChannel(base(), WS_FRAMES);
        await fuzzDashboardChannel(base(), Math.max(100, Math.round(WS_FRAMES / 3)));
        await fuzzUpgrades(base());
      } finally {
        const { probes, failures } = await health.stop();
        expect(failures).toEqual([]);
        expect(probes).toBeGreaterThan(0);
      }
    });

    it("answers /api/health 200 after it all", async () => {
      const res = await sendWire(base(), new http.Agent(), { method: "GET", path: "/api/health", headers: { Host: TEST_HOST } });
      expect(res.status).toBe(200);
    });
  });

  describe("a listening server with every limit low", () => {
    let server: RunningServer;
    beforeAll(async () => {
      const low = Object.fromEntries(
        Object.keys(ENV)
          .filter((name) => name.startsWith("RATE_LIMIT_"))
          .map((name) => [name, "2"]),
      );
      server = await startServer(
        parseEnv({ NODE_ENV: "test", PORT: "0", HOST: "127.0.0.1", DATABASE_URL: database.url, ADMISSION_MAX_EVENT_LOOP_LAG_MS: "0", ...ENV, ...low }),
      );
    });
    afterAll(async () => {
      await server?.close();
    });

    it("refuses with 429 and Retry-After, documented for each route it reaches, and health stays 200", async () => {
      const limitedBefore = [...tally.values()].reduce((sum, entry) => sum + (entry.statuses.get(429) ?? 0), 0);
      const health = healthProbe(() => new URL(server.url));
      try {
        await runHttp(() => new URL(server.url), LIMITED_REQUESTS, WORKER_TABLES, SERVER_CONCURRENCY);
      } finally {
        const { failures } = await health.stop();
        expect(failures).toEqual([]);
      }
      const limited = [...tally.values()].reduce((sum, entry) => sum + (entry.statuses.get(429) ?? 0), 0) - limitedBefore;
      console.log(`fuzz: ${limited} of ${LIMITED_REQUESTS} requests refused with 429 by the low-limit server`);
      expect(limited).toBeGreaterThan(LIMITED_REQUESTS / 4);
    });
  });

  it("reached every route, and the database holds only what accepted requests wrote", async () => {
    report();
    const unreached = routeNames.filter((name) => !tally.get(name)?.sent);
    expect(unreached).toEqual([]);
    const sent = routeNames.reduce((sum, name) => sum + (tally.get(name)?.sent ?? 0), 0);
    expect(sent).toBeGreaterThanOrEqual(TOTAL);

    const end = await rowCounts(database.db);
    const created = (name: ApiRouteName) => accepted.get(name) ?? 0;
    // Deleting a device removes its auto-relaunch rules with it; its audit entry counts them.
    const deletions = await database.db.auditLog.findMany({ where: { action: "device.delete" }, select: { details: true } });
    const cascadedAppPolicies = deletions.reduce(
      (sum, { details }) => sum + ((details as { removed?: { appPolicies?: number } } | null)?.removed?.appPolicies ?? 0),
      0,
    );
    expect({
      EnrollmentToken: end.EnrollmentToken,
      User: end.User,
      AppPolicy: end.AppPolicy,
      CommandBatch: end.CommandBatch,
      Device: end.Device,
    }).toEqual({
      EnrollmentToken: startCounts.EnrollmentToken! + created("createEnrollmentToken") + reenrolled,
      User: startCounts.User! + created("inviteUser") + created("setup"),
      AppPolicy: startCounts.AppPolicy! + created("createPolicy") - created("deletePolicy") - cascadedAppPolicies,
      CommandBatch: startCounts.CommandBatch! + created("createBulkCommand"),
      Device:
        startCounts.Device! +
        created("register") +
        [...legacyDevices].filter((id) => id !== world.legacy.deviceId).length +
        reenrolled -
        created("deleteDevice"),
    });
  });
});

function report(): void {
  const lines = [...tally.entries()]
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([key, entry]) => {
      const statuses = [...entry.statuses.entries()]
        .sort(([a], [b]) => a - b)
        .map(([status, n]) => `${status}:${n}`)
        .join(" ");
      return `  ${key.padEnd(24)} ${String(entry.sent).padStart(6)} sent ${String(entry.accepted).padStart(6)} accepted   ${statuses}`;
    });
  const total = [...tally.values()].reduce((sum, entry) => sum + entry.sent, 0);
  console.log(`fuzz: seed ${SEED}, ${total} requests and frames in ${((Date.now() - startedAt) / 1000).toFixed(1)} s\n${lines.join("\n")}`);
}

// ---- WebSocket channels -----------------------------------------------------------------

type Frame = { text?: string; binary?: Buffer; mutation: string };

function frameArbitrary(schema: typeof DeviceClientFrame | typeof DashboardClientFrame): fc.Arbitrary<Frame> {
  const valid = arbitraryFor(schema, { knownUuids });
  const textOf = (value: unknown) => JSON.stringify(value) ?? "null";
  return fc.oneof(
    { weight: 6, arbitrary: valid.map((value) => ({ text: textOf(value), mutation: "" })) },
    {
      weight: 3,
      arbitrary: fc.tuple(valid, fc.nat(), hostileValue, fc.boolean()).map(([value, pick, replacement, remove]) => {
        const paths = leafPaths(value);
        const path = paths[pick % paths.length]!;
        return { text: textOf(setAt(value, path, replacement, remove && path.length > 0)), mutation: "field" };
      }),
    },
    {
      weight: 2,
      arbitrary: fc
        .oneof(
          fc.constantFrom(
            "",
            "{",
            "null",
            "[]",
            "42",
            '"ping"',
            '{"type":"nope"}',
            '{"type":null}',
            '{"type":["ping"]}',
            '{"__proto__":{"type":"ping"}}',
            nested(5000),
            "\u0000",
          ),
          fc.string({ unit: "binary", maxLength: 100 }),
          fc.jsonValue({ maxDepth: 3 }).map(textOf),
        )
        .map((text) => ({ text, mutation: "raw" })),
    },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 64 }).map((bytes) => ({ binary: Buffer.from(bytes), mutation: "binary" })) },
    { weight: 1, arbitrary: fc.integer({ min: BODY_LIMIT + 1, max: BODY_LIMIT * 2 }).map((size) => ({ text: `"${"x".repeat(size)}"`, mutation: "oversize" })) },
  );
}

type OpenSocket = { ws: WebSocket; frames: unknown[]; closed: Promise<{ code: number; reason: string }>; waiters: Array<() => void> };

function openSocket(url: string, protocols: string[], headers: Record<string, string>): Promise<OpenSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols, { headers });
    const socket: OpenSocket = {
      ws,
      frames: [],
      waiters: [],
      closed: new Promise((resolveClose) => ws.on("close", (code, reason) => resolveClose({ code, reason: reason.toString() }))),
    };
    ws.on("message", (data) => {
      socket.frames.push(parseJson(data.toString()));
      for (const wake of socket.waiters.splice(0)) wake();
    });
    ws.on("unexpected-response", (_req, res) => reject(new Error(`upgrade refused with ${res.statusCode}`)));
    ws.on("error", (error) => reject(error));
    ws.on("open", () => resolve(socket));
  });
}

/** Waits for a server frame matching `match`; every frame must follow the contract on the way. */
async function nextFrame(
  socket: OpenSocket,
  schema: typeof DeviceServerFrame,
  match: (frame: DeviceServerFrame) => boolean,
  what: string,
): Promise<DeviceServerFrame> {
  const deadline = Date.now() + 5_000;
  for (;;) {
    while (socket.frames.length > 0) {
      const raw = socket.frames.shift();
      const parsed = schema.safeParse(raw);
      if (!parsed.success) throw new Error(`server frame breaks the contract after ${what}: ${JSON.stringify(raw).slice(0, 300)}`);
      if (parsed.data.type === "error" && !ErrorCode.safeParse(parsed.data.code).success)
        throw new Error(`error frame with unknown code after ${what}: ${JSON.stringify(raw)}`);
      if (parsed.data.type === "error" && errorStatus[parsed.data.code as ErrorCode] >= 500)
        throw new Error(`server error frame after ${what}: ${JSON.stringify(raw)}`);
      if (match(parsed.data)) return parsed.data;
    }
    if (Date.now() > deadline) throw new Error(`${what}: no answer within 5 s`);
    await within(new Promise<void>((resolve) => socket.waiters.push(resolve)), Math.max(1, deadline - Date.now()), what).catch(() => undefined);
    if (socket.ws.readyState !== WebSocket.OPEN && socket.frames.length === 0)
      throw new Error(`${what}: the server closed the socket (${(await socket.closed).code})`);
  }
}

async function expectPolicyClose(socket: OpenSocket, frame: Frame, what: string): Promise<void> {
  const { code } = await within(socket.closed, 5_000, what);
  // Past maxPayload the ws library closes with 1009 (message too big) before any handler runs.
  const expected = frame.mutation === "oversize" ? 1009 : 1008;
  if (code !== expected) throw new Error(`${what}: closed with ${code}, not ${expected}`);
}

function send(socket: OpenSocket, frame: Frame): void {
  if (frame.binary) socket.ws.send(frame.binary, { binary: true });
  else socket.ws.send(frame.text!);
}

async function fuzzDeviceChannel(base: URL, numRuns: number): Promise<void> {
  const url = `${base.href.replace(/^http/, "ws")}ws/devices`;
  const connect = async () => {
    const socket = await openSocket(url, [DEVICE_WS_PROTOCOL], { Authorization: `Bearer ${world.device.deviceToken}` });
    await nextFrame(socket, DeviceServerFrame, (frame) => frame.type === "hello", "connecting");
    return socket;
  };
  let socket = await connect();
  let used = 0;
  const probe = JSON.stringify({ type: "heartbeat", heartbeat: heartbeatBody() });
  try {
    await fc.assert(
      fc.asyncProperty(frameArbitrary(DeviceClientFrame), async (frame) => {
        if (socket.ws.readyState !== WebSocket.OPEN || ++used > 200) {
          socket.ws.close();
          socket = await connect();
          used = 0;
        }
        const what = `device frame ${frame.mutation || "as generated"} ${(frame.text ?? `<${frame.binary?.length} bytes binary>`).slice(0, 300)}`;
        const parsed = frame.text === undefined ? undefined : DeviceClientFrame.safeParse(parseJson(frame.text));
        const valid = parsed?.success === true && Buffer.byteLength(frame.text!) <= BODY_LIMIT;
        send(socket, frame);
        if (!valid) {
          await expectPolicyClose(socket, frame, what);
          count(`ws:device:invalid`, 1008, false);
          return;
        }
        const type = parsed!.data!.type;
        if (type === "heartbeat") {
          const answer = await nextFrame(socket, DeviceServerFrame, (f) => f.type === "heartbeat_ok" || f.type === "error", what);
          count(`ws:device:heartbeat`, 0, answer.type === "heartbeat_ok");
        } else if (type === "command_result") {
          const answer = await nextFrame(socket, DeviceServerFrame, (f) => f.type === "result_ok" || f.type === "error", what);
          count(`ws:device:command_result`, 0, answer.type === "result_ok");
        } else {
          // An ack has no answer: a heartbeat behind it (frames are handled in order) shows it was handled.
          socket.ws.send(probe);
          await nextFrame(socket, DeviceServerFrame, (f) => f.type === "heartbeat_ok", what);
          count(`ws:device:command_ack`, 0, true);
        }
      }),
      { numRuns, seed: SEED },
    );
  } finally {
    socket.ws.close();
  }
}

async function fuzzDashboardChannel(base: URL, numRuns: number): Promise<void> {
  const url = `${base.href.replace(/^http/, "ws")}ws/dashboard`;
  const connect = async () => {
    const socket = await openSocket(url, [DASHBOARD_WS_PROTOCOL], { Cookie: world.admin.cookie });
    await within(new Promise<void>((resolve) => (socket.frames.length ? resolve() : socket.waiters.push(resolve))), 5_000, "dashboard hello");
    const hello = DashboardServerFrame.safeParse(socket.frames.shift());
    if (!hello.success || hello.data.type !== "hello") throw new Error("dashboard socket opened without a hello");
    return socket;
  };
  let socket = await connect();
  try {
    await fc.assert(
      fc.asyncProperty(frameArbitrary(DashboardClientFrame), async (frame) => {
        if (socket.ws.readyState !== WebSocket.OPEN) socket = await connect();
        const what = `dashboard frame ${frame.mutation || "as generated"} ${(frame.text ?? "<binary>").slice(0, 200)}`;
        const valid = frame.text !== undefined && Buffer.byteLength(frame.text) <= BODY_LIMIT && DashboardClientFrame.safeParse(parseJson(frame.text)).success;
        send(socket, frame);
        if (!valid) {
          await expectPolicyClose(socket, frame, what);
          count("ws:dashboard:invalid", 1008, false);
          return;
        }
        // A ping has no answer: the socket still answers a WebSocket ping after it.
        await within(
          new Promise<void>((resolve) => {
            socket.ws.once("pong", () => resolve());
            socket.ws.ping();
          }),
          5_000,
          what,
        );
        if (socket.ws.readyState !== WebSocket.OPEN) throw new Error(`${what}: closed the socket`);
        for (const raw of socket.frames.splice(0))
          if (!DashboardServerFrame.safeParse(raw).success) throw new Error(`dashboard frame breaks the contract: ${JSON.stringify(raw)}`);
        count("ws:dashboard:ping", 0, true);
      }),
      { numRuns, seed: SEED },
    );
  } finally {
    socket.ws.close();
  }
}

/** Upgrades without valid credentials, or to no channel: refused over HTTP with the contract's error body. */
async function fuzzUpgrades(base: URL): Promise<void> {
  const cases: Array<{ path: string; protocols?: string[]; headers: Record<string, string>; status: number }> = [
    { path: "/ws/devices", protocols: [DEVICE_WS_PROTOCOL], headers: {}, status: 401 },
    { path: "/ws/devices", protocols: [DEVICE_WS_PROTOCOL, "bearer.garbage"], headers: {}, status: 401 },
    { path: "/ws/devices", protocols: [DEVICE_WS_PROTOCOL], headers: { Authorization: "Bearer \u00ff" }, status: 401 },
    { path: `/ws/${world.legacy.deviceId}`, protocols: [DEVICE_WS_PROTOCOL], headers: { Authorization: `Bearer ${world.device.deviceToken}` }, status: 401 },
    { path: "/ws/dashboard", protocols: [DASHBOARD_WS_PROTOCOL], headers: {}, status: 401 },
    { path: "/ws/dashboard", protocols: [DASHBOARD_WS_PROTOCOL, "ticket.garbage"], headers: {}, status: 401 },
    { path: "/ws/dashboard", protocols: [DASHBOARD_WS_PROTOCOL], headers: { Cookie: "mdm_session=garbage" }, status: 401 },
    { path: "/ws/nope", headers: {}, status: 404 },
    { path: "/ws/devices/%00", headers: {}, status: 404 },
  ];
  for (const { path, protocols, headers, status } of cases) {
    const answer = await new Promise<{ status: number; text: string }>((resolve, reject) => {
      const ws = new WebSocket(`${base.href.replace(/^http/, "ws")}${path.slice(1)}`, protocols, { headers });
      ws.on("unexpected-response", (_req, res) => {
        const chunks: Buffer[] = [];
        res.on("data", (chunk: Buffer) => chunks.push(chunk));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString() }));
      });
      ws.on("open", () => reject(new Error(`upgrade to ${path} was accepted`)));
      ws.on("error", (error) => reject(error));
    });
    expect([path, answer.status]).toEqual([path, status]);
    expect(ErrorBody.safeParse(JSON.parse(answer.text)).success).toBe(true);
    count("ws:upgrade-refused", answer.status, false);
  }
}
