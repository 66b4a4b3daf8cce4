import type { IncomingMessage } from "node:http";
import { apiRoutes } from "@mdm/contracts";
import express from "express";
import type { AppDeps } from "./deps";
import { admissionOf } from "./lib/admission";
import { authFailuresOf } from "./lib/auth-failures";
import { compileTrustProxy } from "./lib/client-ip";
import { errorHandler } from "./lib/error-handler";
import { createGuards } from "./lib/guards";
import { HttpError } from "./lib/http-error";
import { requestContext } from "./lib/request-context";
import { mailRoutes } from "./mail/mail.routes";
import { readRawBody } from "./lib/read-body";
import { securityHeaders } from "./lib/security-headers";
import { apiKeyRoutes } from "./modules/api-keys/api-keys.routes";
import { auditRoutes } from "./modules/audit/audit.routes";
import { authRoutes } from "./modules/auth/auth.routes";
import { catalogueRoutes } from "./modules/catalogue/catalogue.routes";
import { commandRoutes } from "./modules/commands/commands.routes";
import { deviceRoutes } from "./modules/devices/devices.routes";
import { enrollmentRoutes } from "./modules/enrollment/enrollment.routes";
import { exportRoutes } from "./modules/exports/exports.routes";
import { fleetRoutes } from "./modules/fleet/fleet.routes";
import { policiesRoutes } from "./modules/policies/policies.routes";
import { legacyRoutes } from "./modules/legacy/legacy.routes";
import { forgetDeviceToken } from "./modules/devices/device-token-cache";
import { lifecycleRoutes } from "./modules/lifecycle/lifecycle.routes";
import { systemRoutes } from "./modules/system/system.routes";
import { userRoutes } from "./modules/users/users.routes";
import { webhookRoutes } from "./modules/webhooks/webhooks.routes";

export function createApp(deps: AppDeps): express.Express {
  const app = express();
  app.disable("x-powered-by");
  // Every answer is no-store (security-headers.ts), so no client revalidates one: Express's
  // ETag only hashed every body (the docs' static assets carry their own).
  app.set("etag", false);
  app.set("trust proxy", compileTrustProxy(deps.env.TRUST_PROXY));
  app.set("query parser", "simple");

  const admission = admissionOf(deps);
  app.use(requestContext(deps.logger, deps.metrics));
  app.use(securityHeaders());
  // One address cannot hold more than its share of requests, uploading or worked on; its
  // bodies must arrive within the body timeout; and only a request whose body has arrived
  // counts as work in progress for the instance-wide bound (a slow upload costs no CPU,
  // and counting it let one client trickling bodies shed everyone else).
  app.use(admission.perClient);
  // APK uploads are streamed to disk by their route instead, with their own time limit.
  // A multipart body sent anywhere else is read here like any other, within the body
  // timeout, so it cannot hold its connection for as long as an upload may take.
  app.use(readRawBody(deps.env, (req) => !isApkUpload(req)));
  app.use(admission.middleware);

  const guards = createGuards(deps);
  app.use(exportRoutes(deps, guards));
  app.use(deviceRoutes(deps, guards));
  app.use(commandRoutes(deps, guards));
  app.use(enrollmentRoutes(deps, guards));
  app.use(fleetRoutes(deps, guards));
  app.use(policiesRoutes(deps, guards));
  app.use(lifecycleRoutes(deps, guards));
  // A token revoked through another instance must stop working here at once, cache or not
  // (the event comes over the bus, and again from this instance's revocation feed).
  deps.bus.subscribe((event) => {
    if (event.kind === "device_token_revoked") forgetDeviceToken(deps, event.deviceId);
  });
  app.use(legacyRoutes(deps));
  app.use(systemRoutes(deps, guards));
  app.use(authRoutes(deps, guards));
  app.use(userRoutes(deps, guards));
  app.use(auditRoutes(deps, guards));
  app.use(mailRoutes(deps, guards));
  app.use(catalogueRoutes(deps, guards));
  app.use(apiKeyRoutes(deps, guards));
  app.use(webhookRoutes(deps, guards));

  app.use(guards.public, (req: express.Request) => {
    throw new HttpError("not_found", `No route ${req.method} ${req.path}`);
  });
  // Device-facing routes: past an address's failure budget, its failed authentications get 429.
  app.use(["/v1", apiRoutes.legacyHeartbeat.path], authFailuresOf(deps).middleware);
  app.use(errorHandler(deps.logger));
  return app;
}

// The upload route's path as Express matches it: any case, an optional trailing slash.
const APK_UPLOAD_PATH = new RegExp(`^${apiRoutes.uploadApp.path}/?$`, "i");

function isApkUpload(req: IncomingMessage): boolean {
  const multipart = req.headers["content-type"]?.toLowerCase().trimStart().startsWith("multipart/form-data") ?? false;
  return multipart && req.method === "POST" && APK_UPLOAD_PATH.test(req.url?.split("?")[0] ?? "");
}
