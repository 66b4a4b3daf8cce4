import { z } from "zod";
import { ActionResultRequest, CommandStatus, DeviceCommand } from "./commands";
import { HeartbeatRequest } from "./devices";
import { DevicePolicy, IgnoredPolicyFailures } from "./policies";
import { DateTime, Uuid } from "./primitives";

// ---- Device channel: /ws/devices (and the legacy /ws/{deviceId}) -------------------

/** Subprotocol a device offers first; the token rides in a second one: `bearer.<deviceToken>`. */
export const DEVICE_WS_PROTOCOL = "mdm.device.v1";
export const DASHBOARD_WS_PROTOCOL = "mdm.dashboard.v1";
export const BEARER_PROTOCOL_PREFIX = "bearer.";

/** Close codes: 1008 for a frame that breaks the contract; 4001-4004 are ours. */
export const WsCloseCode = {
  normal: 1000,
  goingAway: 1001,
  policyViolation: 1008,
  /** Too many frames waiting to be processed on this socket: reconnect after a pause. */
  tryAgainLater: 1013,
  /** Another connection of the same device replaced this one. */
  replaced: 4001,
  /** The session or token stopped being valid (for a device: a completed rotation replaced the token this socket was opened with). */
  unauthorized: 4003,
  /** The device was retired (or deleted) by an admin: its token is refused from now on; do not reconnect. */
  retired: 4004,
} as const;

export const DeviceClientFrame = z.discriminatedUnion("type", [
  z.object({ type: z.literal("heartbeat"), heartbeat: HeartbeatRequest }),
  z.object({ type: z.literal("command_ack"), requestId: Uuid }).describe("The command arrived; the device will execute it."),
  z.object({ type: z.literal("command_result"), result: ActionResultRequest }),
]);
export type DeviceClientFrame = z.infer<typeof DeviceClientFrame>;

export const DeviceServerFrame = z.discriminatedUnion("type", [
  z.object({ type: z.literal("hello"), deviceId: Uuid, serverTime: DateTime, heartbeatIntervalSeconds: z.int() }),
  z.object({ type: z.literal("command"), command: DeviceCommand }),
  z.object({ type: z.literal("heartbeat_ok"), serverTime: DateTime, ignoredPolicyFailures: IgnoredPolicyFailures.optional() }),
  z
    .object({ type: z.literal("policy"), policy: DevicePolicy })
    .describe("The device's effective policy changed (or it has not reported applying it): apply it, then report its hash."),
  z.object({ type: z.literal("result_ok"), requestId: Uuid, status: CommandStatus, changed: z.boolean() }),
  z.object({ type: z.literal("error"), code: z.string(), message: z.string(), requestId: Uuid.optional() }),
]);
export type DeviceServerFrame = z.infer<typeof DeviceServerFrame>;

// ---- Dashboard channel: /ws/dashboard ------------------------------------------------

export const DeviceLiveState = z.object({
  deviceId: Uuid,
  online: z.boolean(),
  lastSeenAt: DateTime.nullable(),
  connected: z.boolean().describe("Holds an open WebSocket to the server, apart from whether it heartbeats."),
  connectedSince: DateTime.nullable(),
  disconnectedSince: DateTime.nullable(),
  batteryLevel: z.int().nullable(),
  batteryCharging: z.boolean().nullable(),
  memoryAvailable: z.number().nullable(),
  networkType: z.string().nullable(),
});
export type DeviceLiveState = z.infer<typeof DeviceLiveState>;

export const CommandStatusChange = z.object({
  requestId: Uuid,
  deviceId: Uuid,
  batchId: Uuid.nullable(),
  status: CommandStatus,
  at: DateTime,
});
export type CommandStatusChange = z.infer<typeof CommandStatusChange>;

/**
 * What the server streams to a dashboard. Updates are coalesced per client: at most one
 * `update` frame per flush interval, carrying the latest state of each device that
 * changed and every command status change since the previous frame.
 */
export const DashboardServerFrame = z.discriminatedUnion("type", [
  z.object({ type: z.literal("hello"), serverTime: DateTime, flushIntervalMs: z.int() }),
  z.object({
    type: z.literal("update"),
    devices: z.array(DeviceLiveState),
    commands: z.array(CommandStatusChange),
  }),
]);
export type DashboardServerFrame = z.infer<typeof DashboardServerFrame>;

/** Dashboards only listen; the one frame they may send keeps proxies from idling out. */
export const DashboardClientFrame = z.discriminatedUnion("type", [z.object({ type: z.literal("ping") })]);
export type DashboardClientFrame = z.infer<typeof DashboardClientFrame>;
