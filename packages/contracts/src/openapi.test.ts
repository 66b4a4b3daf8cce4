import { z } from "zod";
import { ErrorBody, errorStatus } from "./errors";
import { buildOpenApiDocument, openApiSchema } from "./openapi";
import type { ApiRoute } from "./route-types";
import { apiRoutes, routeErrors } from "./routes";

type Operation = {
  operationId: string;
  tags: string[];
  security: Array<Record<string, string[]>>;
  parameters: Array<{ name: string; in: string; required: boolean; schema: unknown }>;
  requestBody?: { required: boolean; content: Record<string, { schema: unknown }> };
  responses: Record<string, { description: string; headers?: Record<string, unknown>; content?: Record<string, { schema?: unknown }> }>;
};

const document = buildOpenApiDocument();
const routes = Object.entries(apiRoutes) as Array<[string, ApiRoute]>;
const operation = (route: ApiRoute) => (document.paths[route.path] as Record<string, Operation> | undefined)?.[route.method];
const { $schema: _dialect, ...errorBodySchema } = z.toJSONSchema(ErrorBody, { io: "output" }) as Record<string, unknown>;

describe("the OpenAPI document", () => {
  it("gives answers no safe-integer bounds (tools made them the examples of counts), and keeps them on requests", () => {
    const text = (part: unknown) => JSON.stringify(part);
    const listDevices = operation(apiRoutes.listDevices)!;
    expect(text(listDevices.responses)).not.toContain(String(Number.MAX_SAFE_INTEGER));
    const count = z.object({ count: z.int() });
    expect(text(openApiSchema(count, "input"))).toContain(String(Number.MAX_SAFE_INTEGER));
    expect(text(openApiSchema(count, "output"))).not.toContain(String(Number.MAX_SAFE_INTEGER));
  });

  it("is OpenAPI 3.1.0 with a title and version", () => {
    expect(document.openapi).toBe("3.1.0");
    expect(document.info).toMatchObject({ title: expect.any(String), version: expect.any(String) });
  });

  it("takes a server URL and version when given", () => {
    const custom = buildOpenApiDocument({ serverUrl: "https://mdm.example.com", version: "9.9.9" });
    expect(custom.servers).toEqual([{ url: "https://mdm.example.com" }]);
    expect(custom.info.version).toBe("9.9.9");
    expect(document).not.toHaveProperty("servers");
  });

  it.each(routes.filter(([, route]) => route.body))("shows a request example for %s that its schema accepts", (_name, route) => {
    const example = (operation(route)!.requestBody!.content["application/json"] as { example?: unknown }).example;
    expect(example).toBeDefined();
    expect(route.body!.safeParse(example).error).toBeUndefined();
  });

  it.each(routes.filter(([, route]) => route.auth === "admin"))("tells how to sign %s from a shell, with its example body", (_name, route) => {
    const description = (operation(route) as { description?: string }).description ?? "";
    expect(description).toContain(`apps/api/scripts/admin.sh ${route.method.toUpperCase()} ${route.path}`);
    if (route.body)
      expect(description).toContain(JSON.stringify((operation(route)!.requestBody!.content["application/json"] as unknown as { example: unknown }).example));
  });

  it("links the README's signing section and says how to try operations with a session", () => {
    expect(document.info.description).toContain("https://github.com/keelson-mdm/keelson#signing-admin-requests");
    expect(document.info.description).toMatch(/Try it out.*through the dashboard.*CSRF/s);
  });

  it("survives a JSON round trip unchanged", () => {
    expect(JSON.parse(JSON.stringify(document))).toEqual(document);
  });

  it("has exactly the operations of apiRoutes", () => {
    const documented = Object.entries(document.paths).flatMap(([path, methods]) => Object.keys(methods).map((method) => `${method} ${path}`));
    const declared = routes.map(([, route]) => `${route.method} ${route.path}`);
    expect(documented.sort()).toEqual([...declared].sort());
    expect(new Set(declared).size).toBe(declared.length);
  });

  it.each(routes)("describes %s under its path, method, name and tag", (name, route) => {
    expect(operation(route)).toMatchObject({ operationId: name, summary: route.summary, tags: [route.tag] });
  });

  it("gives every operation a unique operationId", () => {
    const ids = routes.map(([, route]) => operation(route)?.operationId);
    expect(new Set(ids).size).toBe(routes.length);
  });

  it.each(routes)("%s documents every error routeErrors implies, each with the ErrorBody schema narrowed to its status's codes", (_name, route) => {
    const responses = operation(route)!.responses;
    for (const code of routeErrors(route)) {
      const status = errorStatus[code];
      const response = responses[String(status)];
      expect(response).toBeDefined();
      expect(response!.description).toContain(`\`${code}\``);
      const schema = response!.content?.["application/json"]?.schema as { properties: { error: { properties: { code: { enum: string[] } } } } };
      // The ErrorBody shape, with only the codes this route answers with this status.
      const sameStatus = routeErrors(route).filter((other) => errorStatus[other] === status);
      expect(schema.properties.error.properties.code.enum.sort()).toEqual(sameStatus.sort());
      const { code: _code, ...rest } = schema.properties.error.properties;
      const { code: _anyCode, ...bodyRest } = (errorBodySchema as typeof schema).properties.error.properties;
      expect(rest).toEqual(bodyRest);
    }
  });

  it.each(routes)("%s documents the input errors its kind implies", (_name, route) => {
    const statuses = Object.keys(operation(route)!.responses);
    expect(statuses).toContain("500");
    if (route.rateLimited !== false) expect(statuses).toContain("429");
    else expect(statuses).not.toContain("429");
    if (route.body) expect(statuses).toEqual(expect.arrayContaining(["400", "413", "415"]));
    if (route.query || route.params) expect(statuses).toContain("400");
    if (route.auth !== "none") expect(statuses).toContain("401");
  });

  // Catalogue downloads: a fleet behind one NAT installs at once; the signed URL is the check.
  it("documents no 429 for the routes never rate-limited: health, metrics, logout and catalogue downloads", () => {
    const unlimited = routes.filter(([, route]) => route.rateLimited === false).map(([name]) => name);
    expect(unlimited.sort()).toEqual(["downloadAppFile", "health", "logout", "metrics"]);
  });

  it("documents a body route's 400 as both invalid_json and validation_failed", () => {
    const description = operation(apiRoutes.heartbeat)!.responses["400"]!.description;
    expect(description).toContain("`invalid_json`");
    expect(description).toContain("`validation_failed`");
  });

  it.each(routes.filter(([, route]) => route.rateLimited !== false))("%s documents Retry-After on 429", (_name, route) => {
    expect(operation(route)!.responses["429"]!.headers).toHaveProperty("Retry-After");
  });

  it.each(routes)("%s documents its success responses", (_name, route) => {
    const responses = operation(route)!.responses;
    for (const [status, response] of Object.entries(route.responses)) {
      expect(responses[status]?.description).toBe(response.description);
      if (response.schema) {
        expect(responses[status]?.content?.[response.contentType ?? "application/json"]?.schema).toEqual(openApiSchema(response.schema, "output"));
      }
    }
  });

  it.each(routes.filter(([, route]) => route.body))("%s has a required JSON request body", (_name, route) => {
    const { $schema: _ignored, ...schema } = z.toJSONSchema(route.body!, { io: "input", unrepresentable: "any" }) as Record<string, unknown>;
    expect(operation(route)!.requestBody).toEqual({ required: true, content: { "application/json": { schema, example: expect.anything() } } });
  });

  it.each(routes.filter(([, route]) => !route.body && !route.upload))("%s has no request body", (_name, route) => {
    expect(operation(route)).not.toHaveProperty("requestBody");
  });

  it.each(routes.filter(([, route]) => route.upload))("%s takes a multipart/form-data file field", (_name, route) => {
    const content = (operation(route)!.requestBody as unknown as { content: Record<string, { schema: unknown }> }).content;
    expect(Object.keys(content)).toEqual(["multipart/form-data"]);
    expect(content["multipart/form-data"]!.schema).toEqual({
      type: "object",
      required: [route.upload!.field],
      properties: { [route.upload!.field]: { type: "string", format: "binary" } },
    });
  });

  it.each(routes)("%s declares each {param} of its path as a required path parameter", (_name, route) => {
    const inPath = [...route.path.matchAll(/\{(\w+)\}/g)].map((match) => match[1]);
    const declared = operation(route)!.parameters.filter((parameter) => parameter.in === "path");
    expect(declared.map((parameter) => parameter.name).sort()).toEqual(inPath.sort());
    for (const parameter of declared) expect(parameter.required).toBe(true);
  });

  it.each(routes.filter(([, route]) => route.query))("%s declares its query parameters", (_name, route) => {
    const declared = operation(route)!
      .parameters.filter((parameter) => parameter.in === "query")
      .map((parameter) => parameter.name);
    expect(declared.sort()).toEqual(Object.keys(route.query!.shape).sort());
  });

  it("has resolvable $refs only", () => {
    const refs: string[] = [];
    JSON.stringify(document, (key, value) => {
      if (key === "$ref") refs.push(value);
      return value;
    });
    for (const ref of refs) {
      expect(ref).toMatch(/^#\//);
      const target = ref
        .slice(2)
        .split("/")
        .reduce<unknown>((node, segment) => (node as Record<string, unknown> | undefined)?.[segment.replace(/~1/g, "/").replace(/~0/g, "~")], document);
      expect(target).toBeDefined();
    }
  });
});

describe("security", () => {
  const schemes = document.components.securitySchemes;

  it("defines the device, admin and legacy schemes", () => {
    expect(schemes.deviceToken).toMatchObject({ type: "http", scheme: "bearer" });
    expect(schemes.adminKey).toMatchObject({ type: "apiKey", in: "header", name: "X-Admin" });
    expect(schemes.adminTimestamp).toMatchObject({ type: "apiKey", in: "header", name: "X-Timestamp" });
    expect(schemes.adminNonce).toMatchObject({ type: "apiKey", in: "header", name: "X-Nonce" });
    expect(schemes.adminSignature).toMatchObject({ type: "apiKey", in: "header", name: "X-Signature" });
    expect(schemes.legacyEnrollmentKey).toMatchObject({ type: "apiKey", in: "header", name: "X-Enrollment-Key" });
    expect(schemes.sessionCookie).toMatchObject({ type: "apiKey", in: "cookie", name: "mdm_session" });
    expect(schemes.csrfToken).toMatchObject({ type: "apiKey", in: "header", name: "X-CSRF-Token" });
    expect(schemes.bearerSession).toMatchObject({ type: "http", scheme: "bearer", bearerFormat: "JWT" });
    expect(schemes.metricsToken).toMatchObject({ type: "http", scheme: "bearer" });
  });

  // Alternatives: any one requirement object suffices; the schemes within one go together.
  const session = (route: ApiRoute): Array<Record<string, string[]>> => [
    route.method === "get" ? { sessionCookie: [] } : { sessionCookie: [], csrfToken: [] },
    { bearerSession: [] },
  ];
  const expectedSecurity: Record<ApiRoute["auth"], (route: ApiRoute) => Array<Record<string, string[]>>> = {
    none: () => [],
    device: () => [{ deviceToken: [] }],
    // All four headers together, not any one of them; or an admin user's session.
    admin: (route) => [{ adminKey: [], adminTimestamp: [], adminNonce: [], adminSignature: [] }, ...session(route)],
    legacy: () => [{ legacyEnrollmentKey: [] }],
    session,
    // The token, or nothing at all (a direct call from the server's own host).
    metrics: () => [{ metricsToken: [] }, {} as Record<string, string[]>],
  };

  it.each(routes)("%s requires the scheme of its auth", (_name, route) => {
    expect(operation(route)!.security).toEqual(expectedSecurity[route.auth](route));
  });

  it("names only schemes that exist", () => {
    for (const [, route] of routes) {
      for (const requirement of operation(route)!.security) {
        for (const scheme of Object.keys(requirement)) expect(schemes).toHaveProperty(scheme);
      }
    }
  });

  it("covers every kind of auth some route uses", () => {
    expect(new Set(routes.map(([, route]) => route.auth))).toEqual(new Set(["none", "device", "admin", "legacy", "session", "metrics"]));
  });
});
