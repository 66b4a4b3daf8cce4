import path from "node:path";
import { type HealthResponse, apiRoutes, buildOpenApiDocument } from "@mdm/contracts";
import express, { Router } from "express";
import type { AppDeps } from "../../deps";
import { DATABASE_RETRY_AFTER_SECONDS } from "../../lib/error-handler";
import type { Guards } from "../../lib/guards";
import { mount } from "../../lib/routing";

const startedAt = Date.now();

// The document depends on the contracts alone: built once per process, as it starts, not by
// every app created (zod's JSON Schema conversion takes a few hundred ms; the tests create
// thousands of apps), nor at a first request, which would stall the event loop for it.
const OPENAPI_DOCUMENT = buildOpenApiDocument();

// Swagger UI is served from the installed package: the reference works offline. Only its
// folder is needed: the package's main module loads its 1.5 MB bundle into the API.
const SWAGGER_UI_DIR = path.dirname(require.resolve("swagger-ui-dist/package.json"));
const DOCS_PAGE = `<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Keelson API reference</title>
  <link rel="stylesheet" href="/api/docs/assets/swagger-ui.css">
</head>
<body>
  <div id="reference"></div>
  <script src="/api/docs/assets/swagger-ui-bundle.js"></script>
  <script src="/api/docs/init.js"></script>
</body>
</html>`;
// "Try it out" with the signed-in user's session: the cookie goes along by itself (same
// origin through the dashboard), and writes need the CSRF header, read from its cookie.
const DOCS_INIT = `window.ui = SwaggerUIBundle({
  url: "/api/openapi.json",
  dom_id: "#reference",
  deepLinking: true,
  requestInterceptor: (request) => {
    const csrf = document.cookie.split("; ").find((cookie) => cookie.startsWith("mdm_csrf="));
    if (csrf && request.method !== "GET") request.headers["X-CSRF-Token"] = decodeURIComponent(csrf.slice("mdm_csrf=".length));
    return request;
  },
});`;

/**
 * The health check's database probe, one at a time: concurrent checks share the probe in
 * progress. Health is never rate-limited nor shed, so a probe per request would let anyone
 * fill the pool's queue, and past ADMISSION_MAX_DATABASE_QUEUE that sheds every device.
 */
function databaseProbe(deps: Pick<AppDeps, "db">): () => Promise<"ok" | "unreachable"> {
  let inProgress: Promise<"ok" | "unreachable"> | undefined;
  return () => {
    inProgress ??= deps.db.$queryRaw`SELECT 1`
      .then(
        () => "ok" as const,
        () => "unreachable" as const,
      )
      .finally(() => {
        inProgress = undefined;
      });
    return inProgress;
  };
}

export function systemRoutes(deps: AppDeps, guards: Guards): Router {
  const router = Router();
  const probeDatabase = databaseProbe(deps);

  mount(
    router,
    apiRoutes.health,
    async (_req, res) => {
      const database = await probeDatabase();
      const body: HealthResponse = {
        status: database === "ok" ? "ok" : "unavailable",
        database,
        uptimeSeconds: Math.round((Date.now() - startedAt) / 1000),
      };
      if (database !== "ok") res.setHeader("Retry-After", String(DATABASE_RETRY_AFTER_SECONDS));
      res.status(database === "ok" ? 200 : 503).json(body);
    },
    { guards },
  );
  mount(
    router,
    apiRoutes.metrics,
    async (_req, res) => {
      res.type(deps.metrics.registry.contentType).send(await deps.metrics.registry.metrics());
    },
    { guards },
  );
  mount(router, apiRoutes.openapi, (_req, res) => res.json(OPENAPI_DOCUMENT), { guards: guards.public });
  mount(router, apiRoutes.docs, (_req, res) => res.type("html").send(DOCS_PAGE), { guards: guards.public });
  router.get("/api/docs/init.js", ...guards.public, (_req: express.Request, res: express.Response) => res.type("js").send(DOCS_INIT));
  // Versioned with the installed package and secret-free: the one answer worth caching.
  const cacheable = (res: express.Response) => res.setHeader("Cache-Control", "public, max-age=3600");
  router.use("/api/docs/assets", ...guards.public, express.static(SWAGGER_UI_DIR, { index: false, setHeaders: cacheable }));
  return router;
}
