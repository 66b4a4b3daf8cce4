import {
  type Command,
  type CommandStatusChange,
  type DashboardServerFrame,
  type DeviceLiveState,
  type DeviceView,
  type ListCommandsResponse,
  type ListDevicesResponse,
  type TelemetryResponse,
  apiRoutes,
} from "@mdm/contracts";
import { apiPath } from "@/lib/api";
import { batchKey } from "@/lib/swr/use-batch";
import { batchesKey } from "@/lib/swr/use-batches";
import { isCommandListKey } from "@/lib/swr/use-commands";
import { deviceKey } from "@/lib/swr/use-device";
import { isTelemetryKey } from "@/lib/swr/use-device-telemetry";
import { isDeviceListKey } from "@/lib/swr/use-devices";
import { fleetSummaryKey } from "@/lib/swr/use-fleet-summary";
import { groupsKey } from "@/lib/swr/use-groups";
import type { CachePatcher } from "./cache-patcher";
import { appendTelemetryPoint, commandListMayInclude, patchCommand, patchCommandList, patchDevice, patchDeviceList } from "./patch-cache";
import type { RevalidationScheduler } from "./revalidation-scheduler";

type UpdateFrame = Extract<DashboardServerFrame, { type: "update" }>;

// Counts and list membership depend on the whole fleet, which frames do not carry: those
// are refetched, at most once per interval. Everything a frame does describe is patched.
const LIST_REFRESH_MS = 3_000;
const BATCH_REFRESH_MS = 1_000;

function applyDeviceStates(states: DeviceLiveState[], patcher: CachePatcher, scheduler: RevalidationScheduler): void {
  if (states.length === 0) return;
  const byId = new Map(states.map((state) => [state.deviceId, state]));

  const lists = patcher.patch<ListDevicesResponse>(isDeviceListKey, (list) => patchDeviceList(list, byId));
  const listedOnline = new Map(lists.flatMap((list) => list.devices.map((device) => [device.id, device.online] as const)));
  for (const state of states) {
    patcher.patch<DeviceView>(
      (key) => key === deviceKey(state.deviceId),
      (device) => patchDevice(device, state),
    );
    patcher.patch<TelemetryResponse>(
      (key) => isTelemetryKey(key, state.deviceId),
      (history) => appendTelemetryPoint(history, state),
    );
  }

  // A device no list shows may be new; one that went on- or offline changes counts and filters.
  if (states.some((state) => listedOnline.get(state.deviceId) !== state.online)) {
    scheduler.schedule("device-lists", isDeviceListKey, LIST_REFRESH_MS);
    scheduler.schedule("fleet-counts", (key) => key === fleetSummaryKey || key === groupsKey, LIST_REFRESH_MS);
  }
}

function applyCommandChanges(changes: CommandStatusChange[], patcher: CachePatcher, scheduler: RevalidationScheduler): void {
  if (changes.length === 0) return;
  const byId = new Map(changes.map((change) => [change.requestId, change]));

  const listKeys = [...patcher.cache.keys()].filter(isCommandListKey);
  const lists = patcher.patch<ListCommandsResponse>(isCommandListKey, (list) => patchCommandList(list, byId));
  const listed = new Set(lists.flatMap((list) => list.commands.map((command) => command.requestId)));
  for (const change of changes) {
    const key = apiPath(apiRoutes.getCommand, { params: { requestId: change.requestId } });
    patcher.patch<Command>(
      (candidate) => candidate === key,
      (command) => patchCommand(command, change),
    );
  }

  const unseen = changes.filter((change) => !listed.has(change.requestId));
  if (unseen.some((change) => listKeys.some((key) => commandListMayInclude(key, change)))) {
    scheduler.schedule("command-lists", isCommandListKey, BATCH_REFRESH_MS);
  }
  const batchIds = new Set(changes.map((change) => change.batchId).filter((id): id is string => id !== null));
  for (const batchId of batchIds) {
    const key = batchKey(batchId);
    if (patcher.cache.get(key)) scheduler.schedule(key, (candidate) => candidate === key, BATCH_REFRESH_MS);
  }
  // The recent list counts each batch's commands too: refetched with the batches it shows.
  if (batchIds.size > 0 && patcher.cache.get(batchesKey)) scheduler.schedule(batchesKey, (candidate) => candidate === batchesKey, BATCH_REFRESH_MS);
  scheduler.schedule("fleet-counts", (key) => key === fleetSummaryKey || key === groupsKey, LIST_REFRESH_MS);
}

/** Folds one `update` frame from /ws/dashboard into every cached response it affects. */
export function applyUpdateFrame(frame: UpdateFrame, patcher: CachePatcher, scheduler: RevalidationScheduler): void {
  applyDeviceStates(frame.devices, patcher, scheduler);
  applyCommandChanges(frame.commands, patcher, scheduler);
}
