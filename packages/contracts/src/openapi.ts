import { z } from "zod";
import { ErrorBody, type ErrorCode, errorStatus } from "./errors";
import type { ApiRoute } from "./route-types";
import { requestExamples } from "./examples";
import { apiRoutes, routeErrors } from "./routes";

// The project's public repository, where the README explains signing step by step.
export const REPOSITORY_URL = "https://github.com/keelson-mdm/keelson";
const README_SIGNING = `${REPOSITORY_URL}#signing-admin-requests`;

type JsonSchema = Record<string, unknown>;

/** What the document gives for `schema`, as a request (`input`) or an answer (`output`). */
export function openApiSchema(schema: z.ZodType, io: "input" | "output"): JsonSchema {
  const { $schema: _dialect, ...rest } = z.toJSONSchema(schema, {
    io,
    unrepresentable: "any",
    // The safe-integer bounds every z.int() carries say nothing about what the server sends
    // back, and documentation tools made them the examples of counts (-9007199254740991).
    // Requests keep them: a larger number is refused.
    override: ({ jsonSchema }) => {
      if (io !== "output") return;
      if (jsonSchema.minimum === Number.MIN_SAFE_INTEGER) delete jsonSchema.minimum;
      if (jsonSchema.maximum === Number.MAX_SAFE_INTEGER) delete jsonSchema.maximum;
    },
  }) as JsonSchema;
  return rest;
}

function parametersOf(object: z.ZodObject | undefined, location: "path" | "query") {
  if (!object) return [];
  const schema = openApiSchema(object, "input") as { properties?: Record<string, JsonSchema>; required?: string[] };
  return Object.entries(schema.properties ?? {}).map(([name, property]) => ({
    name,
    in: location,
    required: location === "path" || (schema.required ?? []).includes(name),
    ...(typeof property.description === "string" ? { description: property.description } : {}),
    schema: property,
  }));
}

const ADMIN_SIGNATURE = { adminKey: [], adminTimestamp: [], adminNonce: [], adminSignature: [] };

/** A user's session: the access cookie (with the CSRF header on writes) or a bearer access token. */
function sessionSecurity(route: ApiRoute): Array<Record<string, string[]>> {
  const cookie: Record<string, string[]> = route.method === "get" ? { sessionCookie: [] } : { sessionCookie: [], csrfToken: [] };
  return [cookie, { bearerSession: [] }];
}

/**
 * How to call an admin route from a shell: admin.sh signs the request (see the README's
 * "Signing admin requests"), which a browser cannot do.
 */
function adminShellLine(name: string, route: ApiRoute): string {
  const example = requestExamples[name as keyof typeof requestExamples];
  const body = example === undefined ? "" : ` '${JSON.stringify(example)}'`;
  return `From a shell: \`apps/api/scripts/admin.sh ${route.method.toUpperCase()} ${route.path}${body}\` (replace path parameters).`;
}

/** The route's description, with who may call it when a role matters. */
function describe(name: string, route: ApiRoute): string | undefined {
  const role = route.auth === "admin" ? (route.minRole ?? "admin") : route.auth === "session" ? route.minRole : undefined;
  const roles = role === "admin" ? "`admin`" : `\`${role}\` or above`;
  const access = !role
    ? undefined
    : route.auth === "admin"
      ? `Allowed with a request signed by the bootstrap admin key or an API key of role ${roles}, or the session of a user of role ${roles}; others get 403.`
      : `Requires the session of a user of role ${roles}; other users get 403.`;
  const shell = route.auth === "admin" ? adminShellLine(name, route) : undefined;
  return [route.description, access, shell].filter(Boolean).join("\n\n") || undefined;
}

/** Alternatives (any one suffices), each a set of schemes sent together. */
function securityOf(route: ApiRoute): Array<Record<string, string[]>> {
  switch (route.auth) {
    case "none":
      return [];
    case "device":
      return [{ deviceToken: [] }];
    case "admin":
      return [ADMIN_SIGNATURE, ...sessionSecurity(route)];
    case "legacy":
      return [{ legacyEnrollmentKey: [] }];
    case "session":
      return sessionSecurity(route);
    case "metrics":
      // The empty alternative: without METRICS_TOKEN, callers on the server's host need none.
      return [{ metricsToken: [] }, {}];
  }
}

function errorBodyWith(codes: ErrorCode[]) {
  return z.object({ error: ErrorBody.shape.error.extend({ code: z.enum(codes as [ErrorCode, ...ErrorCode[]]) }) });
}

function errorResponses(route: ApiRoute) {
  const byStatus = new Map<number, ErrorCode[]>();
  for (const code of routeErrors(route)) {
    const status = errorStatus[code];
    byStatus.set(status, [...(byStatus.get(status) ?? []), code]);
  }
  return Object.fromEntries(
    [...byStatus].map(([status, codes]) => [
      String(status),
      {
        description: `Error: ${codes.map((code) => `\`${code}\``).join(", ")}.`,
        ...(status === 429 || status === 503
          ? { headers: { "Retry-After": { description: "Seconds until a retry may succeed.", schema: { type: "integer" } } } }
          : {}),
        // The codes this status can carry on this route, not every code there is.
        content: { "application/json": { schema: openApiSchema(errorBodyWith(codes), "output") } },
      },
    ]),
  );
}

function operationOf(name: string, route: ApiRoute) {
  const responses: Record<string, unknown> = errorResponses(route);
  for (const [status, response] of Object.entries(route.responses)) {
    const contentTypes = [response.contentType ?? "application/json", ...(response.otherContentTypes ?? [])];
    const body = response.schema ? { schema: openApiSchema(response.schema, "output") } : {};
    responses[status] = {
      description: response.description,
      ...(response.schema || response.contentType ? { content: Object.fromEntries(contentTypes.map((type) => [type, body])) } : {}),
    };
  }
  return {
    operationId: name,
    summary: route.summary,
    ...(describe(name, route) ? { description: describe(name, route) } : {}),
    tags: [route.tag],
    security: securityOf(route),
    parameters: [...parametersOf(route.params, "path"), ...parametersOf(route.query, "query")],
    ...(route.body
      ? {
          requestBody: {
            required: true,
            content: { "application/json": { schema: openApiSchema(route.body, "input"), example: requestExamples[name as keyof typeof requestExamples] } },
          },
        }
      : {}),
    ...(route.upload
      ? {
          requestBody: {
            required: true,
            description: route.upload.description,
            content: {
              "multipart/form-data": {
                schema: { type: "object", required: [route.upload.field], properties: { [route.upload.field]: { type: "string", format: "binary" } } },
              },
            },
          },
        }
      : {}),
    responses,
  };
}

export function buildOpenApiDocument(options: { serverUrl?: string; version?: string } = {}) {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const [name, route] of Object.entries(apiRoutes) as Array<[string, ApiRoute]>) {
    paths[route.path] = { ...paths[route.path], [route.method]: operationOf(name, route) };
  }
  return {
    openapi: "3.1.0",
    info: {
      title: "Keelson MDM API",
      version: options.version ?? "0.1.0",
      description:
        "Device enrollment, heartbeats, commands and fleet administration. Every error is `{ error: { code, message, details?, requestId } }`. " +
        `Admin requests are signed ([Signing admin requests](${README_SIGNING}); each admin operation shows the \`admin.sh\` line that signs it) or made by a signed-in user's session. ` +
        "**Try it out** here: open this page through the dashboard (`/api/docs` on its address) while signed in: your session cookie is sent, the CSRF header is filled in from the `mdm_csrf` cookie, and every operation your role allows works.",
    },
    ...(options.serverUrl ? { servers: [{ url: options.serverUrl }] } : {}),
    tags: [
      { name: "Devices", description: "Called by the device agent." },
      { name: "Admin", description: "Fleet and user administration: signed requests or a signed-in user's session." },
      { name: "Auth", description: "Dashboard users: first-admin setup, sign-in, sessions, password resets." },
      { name: "System", description: "Health, metrics and this document." },
      { name: "Legacy", description: "Compatibility with agents that predate enrollment tokens." },
    ],
    components: {
      securitySchemes: {
        deviceToken: { type: "http", scheme: "bearer", description: "The `deviceToken` returned by `POST /v1/register`." },
        adminKey: {
          type: "apiKey",
          in: "header",
          name: "X-Admin",
          description: "An API key's id (`mdmk_…`, see `POST /admin/api-keys`), or the server's bootstrap `ADMIN_KEY`.",
        },
        adminTimestamp: { type: "apiKey", in: "header", name: "X-Timestamp", description: "Unix time in seconds; at most 300 s from the server's clock." },
        adminNonce: { type: "apiKey", in: "header", name: "X-Nonce", description: "8-128 characters of [A-Za-z0-9_-], never reused within 300 s." },
        adminSignature: {
          type: "apiKey",
          in: "header",
          name: "X-Signature",
          description:
            "Lowercase hex HMAC-SHA256, keyed with the API key's secret (or `HMAC_SECRET` for `ADMIN_KEY`), over `<X-Timestamp>\\n<X-Nonce>\\n<METHOD>\\n<Host, lower case>\\n<path with query>\\n<lowercase hex SHA-256 of the raw body>`.",
        },
        metricsToken: { type: "http", scheme: "bearer", description: "The server's `METRICS_TOKEN`, for `GET /api/metrics`." },
        legacyEnrollmentKey: { type: "apiKey", in: "header", name: "X-Enrollment-Key", description: "The server's `LEGACY_ENROLLMENT_KEY`." },
        sessionCookie: {
          type: "apiKey",
          in: "cookie",
          name: "mdm_session",
          description: "The access cookie set by `POST /auth/login` (a 15-minute JWT; renew with `POST /auth/refresh`).",
        },
        csrfToken: {
          type: "apiKey",
          in: "header",
          name: "X-CSRF-Token",
          description: "The `csrfToken` of the session (also the `mdm_csrf` cookie): required with the session cookie on every request that is not a GET.",
        },
        bearerSession: {
          type: "http",
          scheme: "bearer",
          bearerFormat: "JWT",
          description: "The access token (the `mdm_session` cookie's value) as `Authorization: Bearer`; needs no CSRF token.",
        },
      },
    },
    paths,
  };
}
