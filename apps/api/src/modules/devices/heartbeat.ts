import type { HeartbeatRequest, HeartbeatResponse, IgnoredPolicyFailure } from "@mdm/contracts";
import type { AppDeps } from "../../deps";
import { takePendingCommands } from "../commands/commands.service";
import { enforceAppPolicies } from "../fleet/fleet-monitor";
import { toLiveState } from "../fleet/fleet.service";
import { pendingPolicy } from "../policies/policies.service";
import { type RecordedHeartbeat, recordHeartbeat } from "./devices.service";

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
  const folded = foldPolicyFailures(heartbeat);
  const recorded = await recordHeartbeat(deps, deviceId, folded.heartbeat);
  const ignored = ignoredPolicyFailures(folded.heartbeat, folded.at, recorded);
  deps.metrics.heartbeat.inc({ source: channel });
  if (deps.dashboards.watched) deps.bus.publish({ kind: "device_state", state: toLiveState(recorded.device) });
  const relaunches = heartbeat.apps && recorded.mustRun.length > 0 ? await enforceAppPolicies(deps, deviceId, recorded.mustRun, heartbeat.apps) : [];
  const detail = channel === "v1" ? "heartbeat" : channel;
  return {
    serverTime: deps.clock.now().toISOString(),
    heartbeatIntervalSeconds: deps.env.HEARTBEAT_INTERVAL_SECONDS,
    commands: recorded.hasPending || relaunches.length > 0 ? await takePendingCommands(deps, deviceId, detail, relaunches) : [],
    // Until the device reports applying its effective policy, every answer carries it.
    policy: pendingPolicy(recorded.device),
    ...(ignored.length > 0 && { ignoredPolicyFailures: ignored }),
  };
}

/**
 * A policy report's failures must name settings of the device's effective policy (the
 * paths of policySettingEntries: `kiosk.statusBar`, `systemUpdate`...). Those that do not
 * are left out of what is kept (by the heartbeat statement itself, against the policy on
 * the row it updates) and named in the answer, rather than refusing the heartbeat with 400:
 * an agent repeats its report in every heartbeat, so one bad entry would refuse all of them
 * (telemetry lost, the device seen offline, its commands held back), and over the socket
 * close it at every heartbeat (1008). Paths name entries of the report as the device sent it.
 */
function ignoredPolicyFailures(folded: HeartbeatRequest, at: number[], recorded: RecordedHeartbeat): IgnoredPolicyFailure[] {
  const failures = folded.policy?.failures ?? [];
  return recorded.ignoredFailures.map((index) => {
    const setting = failures[index]?.setting;
    return {
      path: `policy.failures.${at[index] ?? index}.setting`,
      message: recorded.hasPolicy
        ? `${setting} is not a setting of the device's effective policy`
        : `The device has no effective policy: ${setting} is not one of its settings`,
    };
  });
}

/**
 * Several entries of a report for one setting are kept as one, with the last entry's reason,
 * where the setting first came: an agent appending as it retries must not read as several
 * failures. `at` maps each kept entry to its index in the report.
 */
function foldPolicyFailures(heartbeat: HeartbeatRequest): { heartbeat: HeartbeatRequest; at: number[] } {
  const failures = heartbeat.policy?.failures ?? [];
  // A Map keeps each setting where it first came; setting it again keeps that place.
  const bySetting = new Map<string, { failure: (typeof failures)[number]; at: number }>();
  for (const [index, failure] of failures.entries()) bySetting.set(failure.setting, { failure, at: bySetting.get(failure.setting)?.at ?? index });
  const kept = [...bySetting.values()];
  if (kept.length === failures.length) return { heartbeat, at: kept.map((entry) => entry.at) };
  return { heartbeat: { ...heartbeat, policy: { ...heartbeat.policy!, failures: kept.map((entry) => entry.failure) } }, at: kept.map((entry) => entry.at) };
}
