import { randomUUID } from "node:crypto";
import path from "node:path";
import { createApp } from "./app";
import { DEV_SECRETS_FILE, type Env, parseEnv } from "./config/env";
import { loadEnvFile } from "./config/env-file";
import { createDb } from "./db/client";
import { EMBEDDED_POOL_SIZE, startEmbeddedDatabase } from "./db/embedded";
import { DEFAULT_MIGRATIONS_DIR, migrate } from "./db/migrate";
import { type AppDeps, systemClock } from "./deps";
import { startMaintenance } from "./jobs/maintenance";
import { startTokenRevocationFeed } from "./modules/devices/device-token-cache";
import { registerAdmissionGauges } from "./lib/admission";
import { createHttpServer } from "./lib/http-server";
import { endWithError } from "./lib/raw-response";
import { connectLimitsRedis } from "./lib/limits-redis";
import { createLogger } from "./lib/logger";
import { createMetrics } from "./lib/metrics";
import { createMailer } from "./mail/mailer";
import { startMailWorker } from "./mail/outbox";
import { startWebhookWorker } from "./modules/webhooks/webhook-delivery";
import { deviceTokenLookupsOf, heartbeatCommitOf } from "./modules/devices/devices.service";
import { handleAllPasswordResetRequests } from "./modules/auth/password-reset.service";
import { dashboardAuthenticator } from "./modules/auth/session";
import { issueSetupToken } from "./modules/auth/setup-token";
import { registerDeliveryGauges } from "./modules/commands/delivery-gauges";
import { startDeliveryWorker } from "./modules/commands/delivery";
import { transitionsOf } from "./modules/commands/command-transitions";
import { startPolicyRecomputeWorker } from "./modules/policies/policies.service";
import { startPolicyDispatchWorker } from "./modules/policies/policy-dispatch";
import { createPushGateway } from "./push/create-push-gateway";
import { type Realtime, attachRealtime } from "./realtime/attach";
import { DashboardWatch } from "./realtime/dashboard-watch";
import { createEventBus } from "./realtime/event-bus";

// In-flight requests get this long to finish at shutdown; a load balancer's deregistration
// delay and Kubernetes' default 30 s grace period both leave room for it.
const SHUTDOWN_GRACE_MS = 10_000;

export type RunningServer = { url: string; deps: AppDeps; realtime: Realtime; close: () => Promise<void> };

/** Parts a test may supply instead of the ones the environment selects. */
export type ServerOverrides = Partial<Pick<AppDeps, "push">>;

/** Starts the API: database (embedded if DATABASE_URL is unset), migrations, HTTP, jobs. */
export async function startServer(env: Env, overrides: ServerOverrides = {}): Promise<RunningServer> {
  const logger = createLogger(env.LOG_LEVEL, { silent: env.NODE_ENV === "test" });
  const embedded = env.DATABASE_URL ? undefined : await startEmbeddedDatabase(path.resolve(env.DATA_DIR, "pglite"));
  const databaseUrl = env.DATABASE_URL ?? embedded!.url;
  if (embedded) logger.info("using the embedded database", { dataDir: path.resolve(env.DATA_DIR, "pglite") });

  const report = await migrate(databaseUrl, env.MIGRATIONS_DIR ?? DEFAULT_MIGRATIONS_DIR);
  logger.info("migrations", report);

  const metrics = createMetrics();
  const bus = await createEventBus(env, embedded !== undefined, logger);
  const deps: AppDeps = {
    env,
    db: createDb(databaseUrl, { maxConnections: embedded ? EMBEDDED_POOL_SIZE : 20 }),
    push: overrides.push ?? createPushGateway(env),
    logger,
    metrics,
    clock: systemClock,
    mailer: createMailer(env),
    bus,
    dashboards: new DashboardWatch(bus),
    redis: env.REDIS_URL ? connectLimitsRedis(env.REDIS_URL, logger, metrics) : undefined,
    instanceId: randomUUID(),
  };
  const server = createHttpServer(createApp(deps), env);
  const realtime = attachRealtime(server, deps, dashboardAuthenticator(deps));
  // Requests too malformed for Express still get a JSON error, not a bare socket close.
  server.on("clientError", (error: NodeJS.ErrnoException, socket) => {
    if (!socket.writable || error.code === "ECONNRESET") return socket.destroy();
    // Headers or body too slow (headersTimeout, requestTimeout): 408, not "malformed".
    if (error.code === "ERR_HTTP_REQUEST_TIMEOUT") {
      return endWithError(socket, 408, { error: { code: "request_timeout", message: "The request took too long to arrive", requestId: "none" } });
    }
    endWithError(socket, 400, { error: { code: "invalid_json", message: "Malformed HTTP request", requestId: "none" } });
  });
  const stopMaintenance = startMaintenance(deps);
  const stopRevocationFeed = startTokenRevocationFeed(deps);
  const deliveryWorker = startDeliveryWorker(deps);
  const mailWorker = startMailWorker(deps, { prepare: () => handleAllPasswordResetRequests(deps) });
  const webhookWorker = startWebhookWorker(deps);
  const policyWorker = startPolicyDispatchWorker(deps);
  const recomputeWorker = startPolicyRecomputeWorker(deps);
  registerDeliveryGauges(deps, realtime.devices);
  registerAdmissionGauges(deps);

  await new Promise<void>((resolve) => server.listen(env.PORT, env.HOST, resolve));
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : env.PORT;
  const url = `http://${env.HOST === "0.0.0.0" ? "127.0.0.1" : env.HOST}:${port}`;
  logger.info("listening", {
    url,
    push: deps.push.name,
    mail: deps.mailer?.name ?? "none",
    database: embedded ? "embedded" : "postgresql",
    bus: deps.bus.name,
  });
  if (env.generatedSecrets.length > 0 && env.NODE_ENV !== "test") {
    logger.warn("development secrets: listening on loopback only; set them to serve other machines", {
      generated: env.generatedSecrets,
      file: path.resolve(env.DATA_DIR, DEV_SECRETS_FILE),
    });
  }
  const setupToken = await issueSetupToken(deps);
  if (setupToken)
    logger.warn("no user yet: create the first admin in the dashboard; from another machine it asks for this one-time setup token", { setupToken });

  return {
    url,
    deps,
    realtime,
    // Graceful: stop accepting, let the workers finish the round in hand (what they have not
    // claimed stays due for the other instances), send devices elsewhere (1001), let
    // in-flight requests finish within a grace period, then let go of everything.
    close: async () => {
      stopMaintenance();
      stopRevocationFeed();
      const drained = new Promise<void>((resolve) => server.close(() => resolve()));
      // Keep-alive connections: a request still arriving on one is answered with
      // `Connection: close`, and each is closed as soon as it is idle (its response sent),
      // not when its keep-alive timeout ends, long after the grace period.
      server.prependListener("request", (_req, res) => res.setHeader("Connection", "close"));
      server.closeIdleConnections();
      const idleSweep = setInterval(() => server.closeIdleConnections(), 100);
      await Promise.all([deliveryWorker.stop(), mailWorker.stop(), webhookWorker.stop(), policyWorker.stop(), recomputeWorker.stop()]);
      await realtime.close();
      const cutOff = setTimeout(() => server.closeAllConnections(), SHUTDOWN_GRACE_MS);
      await drained;
      clearTimeout(cutOff);
      clearInterval(idleSweep);
      // Heartbeats and command moves still waiting for their batch are written (and token lookups read) before the pool closes.
      await Promise.all([heartbeatCommitOf(deps).drain(), deviceTokenLookupsOf(deps).drain(), transitionsOf(deps).drain()]);
      await deps.bus.close();
      deps.redis?.disconnect();
      await deps.db.$disconnect();
      await embedded?.stop();
    },
  };
}

/** SIGTERM and SIGINT close the server gracefully, then end the process (0, or 1 if closing failed). */
export function exitGracefullyOnSignals(running: RunningServer): void {
  const shutdown = () => {
    running.deps.logger.info("shutting down");
    running.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once("SIGTERM", shutdown);
  process.once("SIGINT", shutdown);
}

if (require.main === module) {
  let env: Env;
  try {
    loadEnvFile();
    env = parseEnv();
  } catch (error) {
    console.error(error instanceof Error ? error.message : error);
    process.exit(1);
  }
  startServer(env).then(
    (running) => exitGracefullyOnSignals(running),
    (error) => {
      console.error("failed to start:", error instanceof Error ? error.message : error);
      process.exit(1);
    },
  );
}
