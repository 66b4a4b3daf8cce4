import { ActionResultRequest, ActionResultResponse, Command, CreateCommandRequest, RequestIdParams } from "./commands";
import {
  DeviceIdParams,
  DeviceView,
  HeartbeatRequest,
  HeartbeatResponse,
  LegacyHeartbeatRequest,
  LegacyHeartbeatResponse,
  ListDevicesQuery,
  ListDevicesResponse,
  RegisterRequest,
  RegisterResponse,
} from "./devices";
import { CreateEnrollmentTokenRequest, CreateEnrollmentTokenResponse } from "./enrollment";
import type { ErrorCode } from "./errors";
import type { ApiRoute } from "./route-types";
import { HealthResponse } from "./system";

export const apiRoutes = {
  register: {
    method: "post",
    path: "/v1/register",
    tag: "Devices",
    auth: "none",
    summary: "Enroll a device with an enrollment token",
    description:
      "Consumes one use of the enrollment token and returns the device's id, its bearer token and its command key, each shown only this once.",
    body: RegisterRequest,
    responses: { 201: { description: "Enrolled.", schema: RegisterResponse } },
    errors: ["unauthorized"],
  },
  heartbeat: {
    method: "post",
    path: "/v1/heartbeat",
    tag: "Devices",
    auth: "device",
    summary: "Report live state; receive pending commands",
    body: HeartbeatRequest,
    responses: { 200: { description: "Recorded.", schema: HeartbeatResponse } },
  },
  actionResult: {
    method: "post",
    path: "/v1/action-result",
    tag: "Devices",
    auth: "device",
    summary: "Report a command's outcome",
    description:
      "Idempotent: repeating a recorded result answers 200 with `changed: false`. A command of another device, or an unknown one, is 404; a result contradicting a final one, or arriving after the command expired or was cancelled, is 409.",
    body: ActionResultRequest,
    responses: { 200: { description: "Recorded (or already recorded).", schema: ActionResultResponse } },
    errors: ["not_found", "conflict"],
  },
  legacyHeartbeat: {
    method: "post",
    path: "/api/devices/heartbeat",
    tag: "Legacy",
    auth: "legacy",
    summary: "Legacy heartbeat that enrolls unknown devices on first sight",
    description:
      "Disabled (404) unless the operator sets `LEGACY_ENROLLMENT_KEY`. Authenticated by `X-Enrollment-Key: <LEGACY_ENROLLMENT_KEY>`; the device names itself by `deviceId`.",
    body: LegacyHeartbeatRequest,
    responses: { 200: { description: "Recorded.", schema: LegacyHeartbeatResponse } },
    errors: ["not_found"],
  },
  createEnrollmentToken: {
    method: "post",
    path: "/admin/enrollment-tokens",
    tag: "Admin",
    auth: "admin",
    summary: "Create an enrollment token",
    body: CreateEnrollmentTokenRequest,
    responses: { 201: { description: "Created.", schema: CreateEnrollmentTokenResponse } },
  },
  listDevices: {
    method: "get",
    path: "/admin/devices",
    tag: "Admin",
    auth: "admin",
    summary: "List devices, most recently enrolled first",
    query: ListDevicesQuery,
    responses: { 200: { description: "A page of devices.", schema: ListDevicesResponse } },
  },
  getDevice: {
    method: "get",
    path: "/admin/devices/{deviceId}",
    tag: "Admin",
    auth: "admin",
    summary: "Get one device",
    params: DeviceIdParams,
    responses: { 200: { description: "The device.", schema: DeviceView } },
    errors: ["not_found"],
  },
  createCommand: {
    method: "post",
    path: "/admin/command",
    tag: "Admin",
    auth: "admin",
    summary: "Queue a command for a device and push it",
    description:
      "Stores the command with a new `requestId`, then sends a high-priority FCM data message (when the device has a push token). The response shows the push outcome; a device without push receives the command in its next heartbeat.",
    body: CreateCommandRequest,
    responses: { 201: { description: "Queued.", schema: Command } },
    errors: ["not_found"],
  },
  getCommand: {
    method: "get",
    path: "/admin/commands/{requestId}",
    tag: "Admin",
    auth: "admin",
    summary: "Get a command with its status history",
    params: RequestIdParams,
    responses: { 200: { description: "The command.", schema: Command } },
    errors: ["not_found"],
  },
  health: {
    method: "get",
    path: "/api/health",
    tag: "System",
    auth: "none",
    summary: "Liveness and database check",
    responses: {
      200: { description: "Healthy.", schema: HealthResponse },
      503: { description: "The database is unreachable.", schema: HealthResponse },
    },
  },
  metrics: {
    method: "get",
    path: "/api/metrics",
    tag: "System",
    auth: "none",
    summary: "Prometheus metrics",
    responses: { 200: { description: "Prometheus text exposition format.", contentType: "text/plain" } },
  },
  openapi: {
    method: "get",
    path: "/api/openapi.json",
    tag: "System",
    auth: "none",
    summary: "This OpenAPI document",
    responses: { 200: { description: "OpenAPI 3.1 document.", contentType: "application/json" } },
  },
  docs: {
    method: "get",
    path: "/api/docs",
    tag: "System",
    auth: "none",
    summary: "Rendered API reference",
    responses: { 200: { description: "HTML page.", contentType: "text/html" } },
  },
} satisfies Record<string, ApiRoute>;

export type ApiRouteName = keyof typeof apiRoutes;

/** Every error a route can answer with: its own plus those its inputs and auth imply. */
export function routeErrors(route: ApiRoute): ErrorCode[] {
  const codes = new Set<ErrorCode>(route.errors ?? []);
  if (route.body || route.query || route.params) codes.add("validation_failed");
  if (route.body) {
    codes.add("invalid_json");
    codes.add("payload_too_large");
    codes.add("unsupported_media_type");
  }
  if (route.auth !== "none") codes.add("unauthorized");
  codes.add("rate_limited");
  codes.add("internal_error");
  return [...codes];
}
