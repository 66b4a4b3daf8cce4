import type { IncomingMessage, Server } from "node:http";
import type { Duplex } from "node:stream";
import { BEARER_PROTOCOL_PREFIX, DASHBOARD_WS_PROTOCOL, DEVICE_WS_PROTOCOL, WsCloseCode } from "@mdm/contracts";
import { WebSocketServer } from "ws";
import type { AppDeps } from "../deps";
import { admissionOf } from "../lib/admission";
import { authFailuresOf } from "../lib/auth-failures";
import { addressKey, clientIpOf, compileTrustProxy } from "../lib/client-ip";
import { isDatabaseUnavailable } from "../db/client";
import { databaseUnavailable } from "../lib/error-handler";
import { HttpError } from "../lib/http-error";
import { endWithError } from "../lib/raw-response";
import { deviceBudget, deviceBudgetKey } from "../modules/devices/device-budget";
import { authenticateDeviceToken } from "../modules/devices/devices.service";
import { DashboardHub, type DashboardSession } from "./dashboard-hub";
import { DeviceHub } from "./device-hub";

const MAX_FRAME_BYTES = 64 * 1024;
const UPGRADE_DRAIN_MS = 2000;
const LEGACY_DEVICE_PATH = /^\/ws\/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/i;

/** The user session an upgrade request to /ws/dashboard carries, if it is valid. */
export type DashboardAuthenticator = (req: IncomingMessage, protocols: string[]) => Promise<DashboardSession | undefined>;

export type Realtime = { devices: DeviceHub; dashboards: DashboardHub; close: () => Promise<void> };

function offeredProtocols(req: IncomingMessage): string[] {
  return (req.headers["sec-websocket-protocol"] ?? "")
    .split(",")
    .map((protocol) => protocol.trim())
    .filter(Boolean);
}

/** The device token from `Authorization: Bearer …`, or from a `bearer.<token>` subprotocol. */
function deviceAuthorization(req: IncomingMessage, protocols: string[]): string | undefined {
  if (req.headers.authorization) return req.headers.authorization;
  const offered = protocols.find((protocol) => protocol.startsWith(BEARER_PROTOCOL_PREFIX));
  return offered ? `Bearer ${offered.slice(BEARER_PROTOCOL_PREFIX.length)}` : undefined;
}

/** Refuses an upgrade with a JSON error before any WebSocket exists. */
function refuse(socket: Duplex, error: HttpError): void {
  endWithError(socket, error.status, { error: { code: error.code, message: error.message, requestId: "websocket-upgrade" } }, error.headers);
}

/**
 * WebSocket channels on the HTTP server's upgrade: devices at /ws/devices (and the legacy
 * /ws/{deviceId}), dashboards at /ws/dashboard. Authentication happens before the
 * upgrade completes; a refused client gets an HTTP error, never a socket.
 */
export function attachRealtime(server: Server, deps: AppDeps, authenticateDashboard: DashboardAuthenticator): Realtime {
  const devices = new DeviceHub(deps);
  const dashboards = new DashboardHub(deps);
  const deviceServer = new WebSocketServer({
    noServer: true,
    maxPayload: MAX_FRAME_BYTES,
    handleProtocols: (protocols) => (protocols.has(DEVICE_WS_PROTOCOL) ? DEVICE_WS_PROTOCOL : false),
  });
  const dashboardServer = new WebSocketServer({
    noServer: true,
    maxPayload: MAX_FRAME_BYTES,
    handleProtocols: (protocols) => (protocols.has(DASHBOARD_WS_PROTOCOL) ? DASHBOARD_WS_PROTOCOL : false),
  });

  const authFailures = authFailuresOf(deps);
  const admission = admissionOf(deps);
  const trustProxy = compileTrustProxy(deps.env.TRUST_PROXY);
  // Device sockets per client address on this instance: a NAT of a large fleet fits, one
  // host opening sockets without end does not. A place is taken before the (awaited)
  // authentication, so concurrent upgrades cannot all slip past the cap, and given back
  // when the connection closes, whether it became a WebSocket or was refused.
  const socketsPerIp = new Map<string, number>();
  const takePlace = (ip: string, socket: Duplex): boolean => {
    const held = socketsPerIp.get(ip) ?? 0;
    if (held >= deps.env.WS_MAX_DEVICE_SOCKETS_PER_IP) return false;
    socketsPerIp.set(ip, held + 1);
    socket.once("close", () => {
      const left = (socketsPerIp.get(ip) ?? 1) - 1;
      if (left > 0) socketsPerIp.set(ip, left);
      else socketsPerIp.delete(ip);
    });
    return true;
  };

  const onUpgrade = async (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on("error", () => socket.destroy());
    try {
      const path = new URL(req.url ?? "/", "http://localhost").pathname;
      const protocols = offeredProtocols(req);
      const legacy = LEGACY_DEVICE_PATH.exec(path);
      if (path === "/ws/devices" || legacy) {
        const overloaded = admission.overloaded();
        if (overloaded) {
          deps.metrics.shed.inc({ reason: "websocket_upgrade" });
          throw new HttpError("service_unavailable", `This instance is overloaded (${overloaded}); retry later`, undefined, {
            "Retry-After": String(deps.env.ADMISSION_RETRY_AFTER_SECONDS),
          });
        }
        if (!takePlace(addressKey(clientIpOf(req, trustProxy)), socket)) {
          throw new HttpError("rate_limited", "Too many device sockets from this address", undefined, { "Retry-After": "30" });
        }
        const { deviceId, tokenHash } = await authenticateDeviceToken(deps, deviceAuthorization(req, protocols));
        if (legacy && legacy[1]!.toLowerCase() !== deviceId) throw new HttpError("unauthorized", "The token does not belong to this device");
        // Connecting spends the device's request budget too: reconnecting in a loop costs
        // writes and events, and must not be free.
        const budget = await deviceBudget(deps).consume(deviceBudgetKey(deviceId));
        if (!budget.allowed) {
          throw new HttpError("rate_limited", "Too many requests from this device; retry later", undefined, {
            "Retry-After": String(budget.retryAfterSeconds),
          });
        }
        deviceServer.handleUpgrade(req, socket, head, (ws) => {
          devices.connect(deviceId, ws, tokenHash).catch((error: unknown) => {
            const message = error instanceof Error ? error.message : String(error);
            // The database went away between authentication and the lease: come back later.
            if (isDatabaseUnavailable(error) || (error instanceof HttpError && error.code === "service_unavailable")) {
              deps.logger.warn("device connect failed: database unavailable", { deviceId });
              return ws.close(WsCloseCode.tryAgainLater, "database unavailable; retry shortly");
            }
            deps.logger.error("device connect failed", { deviceId, message });
            ws.terminate();
          });
        });
        return;
      }
      if (path === "/ws/dashboard") {
        const session = await authenticateDashboard(req, protocols);
        if (!session) throw new HttpError("unauthorized", "Sign in first: send the session cookie or an unused ticket from GET /auth/ws-ticket");
        if (dashboards.socketsOf(session.userId) >= deps.env.WS_MAX_SOCKETS_PER_USER) {
          throw new HttpError("rate_limited", `At most ${deps.env.WS_MAX_SOCKETS_PER_USER} dashboard sockets per user; close one first`, undefined, {
            "Retry-After": "30",
          });
        }
        dashboardServer.handleUpgrade(req, socket, head, (ws) => dashboards.add(ws, session));
        return;
      }
      throw new HttpError("not_found", `No WebSocket endpoint at ${path}`);
    } catch (error) {
      if (error instanceof HttpError) return refuse(socket, await authFailures.refusal(clientIpOf(req, trustProxy), error).catch(() => error));
      if (isDatabaseUnavailable(error)) return refuse(socket, databaseUnavailable());
      deps.logger.error("websocket upgrade failed", { message: error instanceof Error ? error.message : String(error) });
      refuse(socket, new HttpError("service_unavailable", "Try again shortly", undefined, { "Retry-After": "1" }));
    }
  };
  // Upgrades still authenticating when the instance shuts down: close() lets them finish, so
  // their devices get the hub's 1001 rather than a handshake aborted by a closed server.
  let upgrading = 0;
  const upgradeListener = (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    upgrading++;
    void onUpgrade(req, socket, head).finally(() => upgrading--);
  };
  server.on("upgrade", upgradeListener);

  const pinger = setInterval(() => {
    devices.pingAll();
    dashboards.pingAll();
  }, deps.env.WS_PING_INTERVAL_SECONDS * 1000);
  pinger.unref();

  return {
    devices,
    dashboards,
    close: async () => {
      clearInterval(pinger);
      server.off("upgrade", upgradeListener);
      dashboards.close();
      await devices.close();
      for (const deadline = Date.now() + UPGRADE_DRAIN_MS; upgrading > 0 && Date.now() < deadline; ) await new Promise((resolve) => setTimeout(resolve, 20));
      deviceServer.close();
      dashboardServer.close();
    },
  };
}
