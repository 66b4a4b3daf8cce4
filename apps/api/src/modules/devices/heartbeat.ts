import type { HeartbeatRequest, HeartbeatResponse } from "@mdm/contracts";
import type { AppDeps } from "../../deps";
import { takePendingCommands } from "../commands/commands.service";
import { enforceAppPolicies } from "../fleet/fleet-monitor";
import { toLiveState } from "../fleet/fleet.service";
import { pendingPolicy } from "../policies/policies.service";
import { recordHeartbeat } from "./devices.service";

/** The transport a heartbeat came by; also its label in metrics. */
export type HeartbeatChannel = "v1" | "websocket" | "legacy";

/**
 * Everything a heartbeat does, whichever transport brought it: records the state, tells
 * dashboards, enforces app policies, and answers with the commands waiting for the device
 * (and its effective policy while the device has not reported applying it),
 * including a relaunch this very heartbeat called for. No network call leaves the server
 * here: pushes are the delivery worker's job.
 */
export async function handleHeartbeat(deps: AppDeps, deviceId: string, heartbeat: HeartbeatRequest, channel: HeartbeatChannel): Promise<HeartbeatResponse> {
  const recorded = await recordHeartbeat(deps, deviceId, heartbeat);
  deps.metrics.heartbeat.inc({ source: channel });
  deps.bus.publish({ kind: "device_state", state: toLiveState(recorded.device) });
  const relaunches = heartbeat.apps && recorded.mustRun.length > 0 ? await enforceAppPolicies(deps, deviceId, recorded.mustRun, heartbeat.apps) : [];
  const detail = channel === "v1" ? "heartbeat" : channel;
  return {
    serverTime: deps.clock.now().toISOString(),
    heartbeatIntervalSeconds: deps.env.HEARTBEAT_INTERVAL_SECONDS,
    commands: recorded.hasPending || relaunches.length > 0 ? await takePendingCommands(deps, deviceId, detail, relaunches) : [],
    // Until the device reports applying its effective policy, every answer carries it.
    policy: pendingPolicy(recorded.device),
  };
}
