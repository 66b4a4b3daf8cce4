import type { Express } from "express";
import request from "supertest";
import { type TestDatabase, createTestApp, createTestDatabase } from "./test";

// Served by the app for the rendered reference, deliberately absent from the document.
const INTERNAL_ROUTES = ["GET /api/docs/init.js"];
const INTERNAL_MOUNTS = ["/api/docs/assets"];

type StackLayer = {
  rawPath?: unknown;
  route?: { path: string; methods: Record<string, boolean> };
  handle?: { stack?: StackLayer[] };
};

type ServedRoutes = { routes: string[]; mounts: string[] };

/** Every `METHOD /path` the app's routers serve, and the paths of middleware mounted below "/". */
function servedRoutes(app: Express): ServedRoutes {
  const served: ServedRoutes = { routes: [], mounts: [] };
  const walk = (stack: StackLayer[], prefix: string) => {
    for (const layer of stack) {
      const mountPath = typeof layer.rawPath === "string" && layer.rawPath !== "/" ? layer.rawPath : "";
      if (layer.route) {
        for (const method of Object.keys(layer.route.methods)) served.routes.push(`${method.toUpperCase()} ${prefix}${layer.route.path}`);
      } else if (Array.isArray(layer.handle?.stack)) {
        walk(layer.handle.stack, prefix + mountPath);
      } else if (mountPath) {
        served.mounts.push(prefix + mountPath);
      }
    }
  };
  walk((app as unknown as { router: { stack: StackLayer[] } }).router.stack, "");
  return served;
}

function documentedRoutes(document: { paths: Record<string, Record<string, unknown>> }): string[] {
  return Object.entries(document.paths).flatMap(([path, operations]) =>
    Object.keys(operations).map((method) => `${method.toUpperCase()} ${path.replace(/\{(\w+)\}/g, ":$1")}`),
  );
}

let database: TestDatabase;
let app: Express;

beforeAll(async () => {
  database = await createTestDatabase();
  app = createTestApp(database.db).app;
});
afterAll(() => database.close());

describe("the OpenAPI document and the app agree", () => {
  it("finds the app's routes by walking its router stack", () => {
    const { routes } = servedRoutes(app);
    expect(routes).toEqual(expect.arrayContaining(["POST /v1/heartbeat", "GET /admin/devices/:deviceId", "GET /api/openapi.json"]));
    expect(new Set(routes).size).toBe(routes.length);
  });

  it("documents exactly the routes the app serves, apart from the reference's own assets", async () => {
    const res = await request(app).get("/api/openapi.json");
    expect(res.status).toBe(200);
    const served = servedRoutes(app).routes.filter((route) => !INTERNAL_ROUTES.includes(route));
    const documented = documentedRoutes(res.body);
    // Compared one way and then the other, so a failure names the routes at fault.
    expect({ servedButNotDocumented: served.filter((route) => !documented.includes(route)) }).toEqual({ servedButNotDocumented: [] });
    expect({ documentedButNotServed: documented.filter((route) => !served.includes(route)) }).toEqual({ documentedButNotServed: [] });
    expect(served.sort()).toEqual(documented.sort());
  });

  it("mounts no middleware below / other than the reference's assets", () => {
    // router.use(path, ...handlers) adds one layer per handler, all with the same path.
    expect([...new Set(servedRoutes(app).mounts)]).toEqual(INTERNAL_MOUNTS);
  });
});

describe("the rendered reference", () => {
  it("GET /api/docs answers an HTML page", async () => {
    const res = await request(app).get("/api/docs");
    expect(res.status).toBe(200);
    expect(res.headers["content-type"]).toMatch(/^text\/html/);
    expect(res.text).toContain("/api/docs/assets/swagger-ui-bundle.js");
  });

  it("serves the Swagger UI bundle from the installed package", async () => {
    const res = await request(app).get("/api/docs/assets/swagger-ui-bundle.js");
    expect(res.status).toBe(200);
    expect(res.headers["content-type"]).toMatch(/javascript/);
    expect(res.text.length).toBeGreaterThan(100_000);
  });

  it("serves every script and stylesheet the page links", async () => {
    const page = (await request(app).get("/api/docs")).text;
    const links = [...page.matchAll(/(?:src|href)="([^"]+)"/g)].map((match) => match[1]!);
    expect(links.length).toBeGreaterThanOrEqual(3);
    for (const link of links) {
      const res = await request(app).get(link);
      expect({ link, status: res.status }).toEqual({ link, status: 200 });
    }
  });

  it("fills the CSRF header from the session's cookie when trying a write from the reference", async () => {
    const script = (await request(app).get("/api/docs/init.js")).text;
    let options: { requestInterceptor: (request: { method: string; headers: Record<string, string> }) => unknown } | undefined;
    const document = { cookie: "theme=dark; mdm_csrf=abc%3D123" };
    new Function("SwaggerUIBundle", "document", "window", script)((given: typeof options) => (options = given), document, {});
    expect(options!.requestInterceptor({ method: "POST", headers: {} })).toEqual({ method: "POST", headers: { "X-CSRF-Token": "abc=123" } });
    expect(options!.requestInterceptor({ method: "GET", headers: {} })).toEqual({ method: "GET", headers: {} });
  });

  it("answers an unknown asset with the JSON 404, not a directory listing or file-system path", async () => {
    for (const path of ["/api/docs/assets/nope.js", "/api/docs/assets/", "/api/docs/assets/..%2f..%2fpackage.json"]) {
      const res = await request(app).get(path);
      expect({ path, status: res.status }).toEqual({ path, status: 404 });
      expect(res.body.error.code).toBe("not_found");
    }
  });
});
