import {
  type Command,
  type CommandStatus,
  type CommandStatusChange,
  type DeviceLiveState,
  type DeviceView,
  type ListCommandsResponse,
  type ListDevicesResponse,
  type TelemetryResponse,
  finalCommandStatuses,
} from "@mdm/contracts";

// Pure functions that fold live frames into cached API responses. They return the same
// object when nothing changed, so SWR does not re-render for frames about other things.

/**
 * A device with the latest live state from the dashboard socket applied; a state older
 * than the device as fetched (a frame held while the device was refetched) changes nothing.
 */
export function patchDevice(device: DeviceView, live: DeviceLiveState): DeviceView {
  if (live.lastSeenAt && device.lastSeenAt && Date.parse(live.lastSeenAt) < Date.parse(device.lastSeenAt)) return device;
  const wentOffline = device.online && !live.online;
  return {
    ...device,
    online: live.online,
    offlineSince: live.online ? null : wentOffline ? new Date().toISOString() : device.offlineSince,
    lastSeenAt: live.lastSeenAt ?? device.lastSeenAt,
    connected: live.connected,
    connectedSince: live.connectedSince,
    disconnectedSince: live.disconnectedSince,
    state: {
      ...device.state,
      battery: live.batteryLevel === null ? device.state.battery : { level: live.batteryLevel, charging: live.batteryCharging },
      memory: live.memoryAvailable === null || !device.state.memory ? device.state.memory : { ...device.state.memory, available: live.memoryAvailable },
      network: live.networkType === null ? device.state.network : { signal: null, ip: null, ...device.state.network, type: live.networkType },
    },
  };
}

export function patchDeviceList(list: ListDevicesResponse, states: ReadonlyMap<string, DeviceLiveState>): ListDevicesResponse {
  const devices = list.devices.map((device) => (states.has(device.id) ? patchDevice(device, states.get(device.id)!) : device));
  return devices.some((device, index) => device !== list.devices[index]) ? { ...list, devices } : list;
}

const timestampOfStatus = {
  sent: "sentAt",
  acknowledged: "acknowledgedAt",
  succeeded: "completedAt",
  failed: "completedAt",
  expired: "completedAt",
  cancelled: "completedAt",
} as const;

const progressOf = (status: CommandStatus) => (finalCommandStatuses.includes(status) ? 3 : ["queued", "sent", "acknowledged"].indexOf(status));

/**
 * A command with a status change applied and recorded as one more event in its history. A
 * change the history already holds changes nothing. One behind the command's status (frames
 * from several API instances may arrive out of order) is recorded, in time order, with its
 * timestamp if the command lacks it, and leaves the status as it is. Status order, not time,
 * decides which is behind: events are stamped by the clocks of several API instances.
 */
export function patchCommand(command: Command, change: CommandStatusChange): Command {
  if (command.events.some((event) => event.status === change.status && event.at === change.at)) return command;
  const behind = progressOf(change.status) < progressOf(command.status) || finalCommandStatuses.includes(command.status);
  const event = { status: change.status, at: change.at, detail: null };
  const events = behind ? [...command.events, event].sort((a, b) => Date.parse(a.at) - Date.parse(b.at)) : [...command.events, event];
  const patched: Command = { ...command, status: behind ? command.status : change.status, events };
  if (change.status !== "queued") {
    const field = timestampOfStatus[change.status];
    patched[field] = patched[field] ?? change.at;
  }
  return patched;
}

export function patchCommandList(list: ListCommandsResponse, changes: ReadonlyMap<string, CommandStatusChange>): ListCommandsResponse {
  const commands = list.commands.map((command) => (changes.has(command.requestId) ? patchCommand(command, changes.get(command.requestId)!) : command));
  return commands.some((command, index) => command !== list.commands[index]) ? { ...list, commands } : list;
}

/** Whether a command list fetched with this key could contain a command it does not show yet. */
export function commandListMayInclude(key: string, change: CommandStatusChange): boolean {
  const query = new URLSearchParams(key.split("?")[1] ?? "");
  if (query.has("deviceId") && query.get("deviceId") !== change.deviceId) return false;
  if (query.has("batchId") && query.get("batchId") !== change.batchId) return false;
  if (query.has("status") && query.get("status") !== change.status) return false;
  if (Number(query.get("offset") ?? 0) > 0) return false;
  return true;
}

/** The telemetry history with the reading of a live state appended, if it is newer. */
export function appendTelemetryPoint(history: TelemetryResponse, live: DeviceLiveState): TelemetryResponse {
  if (!live.lastSeenAt) return history;
  const last = history.points.at(-1);
  if (last && Date.parse(last.at) >= Date.parse(live.lastSeenAt)) return history;
  const point = {
    at: live.lastSeenAt,
    batteryLevel: live.batteryLevel,
    batteryCharging: live.batteryCharging,
    memoryTotal: last?.memoryTotal ?? null,
    memoryAvailable: live.memoryAvailable,
    storageAvailable: last?.storageAvailable ?? null,
    networkType: live.networkType,
    samples: 1,
  };
  // The rest of the answer (bucketSeconds, appChanges) stays as fetched.
  return { ...history, points: [...history.points, point] };
}
