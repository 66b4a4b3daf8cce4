import type { Command, DeviceLiveState, DeviceView } from "@mdm/contracts";
import { appendTelemetryPoint, commandListMayInclude, patchCommand, patchCommandList, patchDevice, patchDeviceList } from "./patch-cache";

const DEVICE_ID = "0b8f5d2a-3c1e-4f7a-9b6d-2e4c8a1f3b5d";
const REQUEST_ID = "7d3e9a1c-5b2f-4e8d-a6c4-1f9b3d7e5a2c";

function device(overrides: Partial<DeviceView> = {}): DeviceView {
  return {
    id: DEVICE_ID,
    legacyId: null,
    alias: "Front desk",
    notes: null,
    groups: [],
    online: true,
    offlineSince: null,
    connected: true,
    connectedSince: "2026-11-25T10:00:00.000Z",
    disconnectedSince: null,
    model: "Pixel 8",
    manufacturer: "Google",
    osVersion: "14",
    sdkInt: 34,
    appVersion: "1.0.0",
    serialNumber: null,
    enrolledAt: "2026-11-25T10:00:00.000Z",
    lastSeenAt: "2026-11-25T10:05:00.000Z",
    push: { registered: false, invalidSince: null },
    state: {
      battery: { level: 80, charging: false },
      memory: { total: 4096, available: 2048 },
      storage: null,
      network: { type: "wifi", signal: -50, ip: "10.0.0.2" },
      apps: [],
      uptimeSeconds: 100,
      deviceTime: null,
    },
    ...overrides,
  };
}

function live(overrides: Partial<DeviceLiveState> = {}): DeviceLiveState {
  return {
    deviceId: DEVICE_ID,
    online: true,
    lastSeenAt: "2026-11-25T10:06:00.000Z",
    connected: true,
    connectedSince: "2026-11-25T10:00:00.000Z",
    disconnectedSince: null,
    batteryLevel: 79,
    batteryCharging: true,
    memoryAvailable: 1024,
    networkType: "cellular",
    ...overrides,
  };
}

function command(overrides: Partial<Command> = {}): Command {
  return {
    requestId: REQUEST_ID,
    deviceId: DEVICE_ID,
    device: null,
    type: "ping",
    payload: {},
    status: "queued",
    createdAt: "2026-11-25T10:00:00.000Z",
    expiresAt: "2026-11-26T10:00:00.000Z",
    sentAt: null,
    acknowledgedAt: null,
    completedAt: null,
    push: { outcome: null, messageId: null, error: null, attempts: 0 },
    result: null,
    errorMessage: null,
    batchId: null,
    delivery: "auto",
    createdBy: null,
    events: [{ status: "queued", at: "2026-11-25T10:00:00.000Z", detail: null }],
    ...overrides,
  };
}

describe("patchDevice", () => {
  test("takes battery, memory, network and last seen from the live state and keeps the rest", () => {
    const patched = patchDevice(device(), live());
    expect(patched.state.battery).toEqual({ level: 79, charging: true });
    expect(patched.state.memory).toEqual({ total: 4096, available: 1024 });
    expect(patched.state.network).toEqual({ type: "cellular", signal: -50, ip: "10.0.0.2" });
    expect(patched.lastSeenAt).toBe("2026-11-25T10:06:00.000Z");
    expect(patched.alias).toBe("Front desk");
  });

  test("keeps the known reading when the live state has none", () => {
    const patched = patchDevice(device(), live({ batteryLevel: null, batteryCharging: null, memoryAvailable: null, networkType: null }));
    expect(patched.state.battery).toEqual({ level: 80, charging: false });
    expect(patched.state.memory?.available).toBe(2048);
    expect(patched.state.network?.type).toBe("wifi");
  });

  test("marks a device that goes offline with an offline time, and clears it when it comes back", () => {
    const offline = patchDevice(device(), live({ online: false }));
    expect(offline.online).toBe(false);
    expect(offline.offlineSince).not.toBeNull();
    expect(patchDevice(offline, live({ online: true })).offlineSince).toBeNull();
  });

  test("a state older than the device as fetched changes nothing", () => {
    const fetched = device({ lastSeenAt: "2026-11-25T10:07:00.000Z" });
    expect(patchDevice(fetched, live({ lastSeenAt: "2026-11-25T10:06:00.000Z", online: false }))).toBe(fetched);
    expect(patchDevice(fetched, live({ lastSeenAt: "2026-11-25T10:07:00.000Z", connected: false })).connected).toBe(false);
  });
});

describe("patchDeviceList", () => {
  test("returns the same list when no device in it changed, so nothing re-renders", () => {
    const list = { devices: [device()], total: 1, limit: 50, offset: 0 };
    expect(patchDeviceList(list, new Map([["another", live({ deviceId: "another" })]]))).toBe(list);
  });

  test("patches the devices it holds", () => {
    const list = { devices: [device()], total: 1, limit: 50, offset: 0 };
    expect(patchDeviceList(list, new Map([[DEVICE_ID, live()]])).devices[0]?.state.battery?.level).toBe(79);
  });
});

describe("patchCommand", () => {
  test("records each transition once, with its time", () => {
    const sent = patchCommand(command(), { requestId: REQUEST_ID, deviceId: DEVICE_ID, batchId: null, status: "sent", at: "2026-11-25T10:00:01.000Z" });
    const succeeded = patchCommand(sent, { requestId: REQUEST_ID, deviceId: DEVICE_ID, batchId: null, status: "succeeded", at: "2026-11-25T10:00:02.000Z" });
    expect(succeeded.status).toBe("succeeded");
    expect(succeeded.events.map((event) => event.status)).toEqual(["queued", "sent", "succeeded"]);
    expect(succeeded.sentAt).toBe("2026-11-25T10:00:01.000Z");
    expect(succeeded.completedAt).toBe("2026-11-25T10:00:02.000Z");
    const repeated = patchCommand(succeeded, {
      requestId: REQUEST_ID,
      deviceId: DEVICE_ID,
      batchId: null,
      status: "succeeded",
      at: "2026-11-25T10:00:02.000Z",
    });
    expect(repeated).toBe(succeeded);
  });

  test("frames held during a refetch, whose changes the fetched history holds, change nothing", () => {
    const fetched = command({
      status: "succeeded",
      events: [
        { status: "queued", at: "2026-11-25T10:00:00.000Z", detail: null },
        { status: "sent", at: "2026-11-25T10:00:01.000Z", detail: null },
        { status: "acknowledged", at: "2026-11-25T10:00:02.000Z", detail: null },
        { status: "succeeded", at: "2026-11-25T10:00:03.000Z", detail: null },
      ],
    });
    const sent = { requestId: REQUEST_ID, deviceId: DEVICE_ID, batchId: null, status: "sent" as const, at: "2026-11-25T10:00:01.000Z" };
    const acknowledged = { ...sent, status: "acknowledged" as const, at: "2026-11-25T10:00:02.000Z" };
    expect(patchCommand(fetched, sent)).toBe(fetched);
    expect(patchCommand(fetched, acknowledged)).toBe(fetched);
    const list = { commands: [fetched], total: 1 };
    expect(patchCommandList(list, new Map([[REQUEST_ID, acknowledged]]))).toBe(list);
  });

  test("a change arriving after a later one is recorded in time order, with its timestamp, and keeps the later status", () => {
    const acknowledged = patchCommand(command(), {
      requestId: REQUEST_ID,
      deviceId: DEVICE_ID,
      batchId: null,
      status: "acknowledged",
      at: "2026-11-25T10:00:02.000Z",
    });
    const late = patchCommand(acknowledged, { requestId: REQUEST_ID, deviceId: DEVICE_ID, batchId: null, status: "sent", at: "2026-11-25T10:00:01.000Z" });
    expect(late.status).toBe("acknowledged");
    expect(late.sentAt).toBe("2026-11-25T10:00:01.000Z");
    expect(late.events.map((event) => event.status)).toEqual(["queued", "sent", "acknowledged"]);
  });

  test("a change ahead of the command's status applies even when its clock is behind the last event's", () => {
    const sent = command({
      status: "sent",
      events: [
        { status: "queued", at: "2026-11-25T10:00:00.000Z", detail: null },
        { status: "sent", at: "2026-11-25T10:00:01.000Z", detail: null },
      ],
    });
    const succeeded = { requestId: REQUEST_ID, deviceId: DEVICE_ID, batchId: null, status: "succeeded" as const, at: "2026-11-25T10:00:00.950Z" };
    expect(patchCommand(sent, succeeded).status).toBe("succeeded");
  });

  test("patchCommandList leaves lists without the command untouched", () => {
    const list = { commands: [command()], total: 1 };
    const change = {
      requestId: "11111111-1111-4111-8111-111111111111",
      deviceId: DEVICE_ID,
      batchId: null,
      status: "sent" as const,
      at: "2026-11-25T10:00:01.000Z",
    };
    expect(patchCommandList(list, new Map([[change.requestId, change]]))).toBe(list);
  });
});

describe("commandListMayInclude", () => {
  const change = { requestId: REQUEST_ID, deviceId: DEVICE_ID, batchId: null, status: "sent" as const, at: "2026-11-25T10:00:01.000Z" };

  test("a list of another device, or a later page, cannot gain this command", () => {
    expect(commandListMayInclude("/admin/commands?deviceId=someone-else", change)).toBe(false);
    expect(commandListMayInclude("/admin/commands?limit=50&offset=50", change)).toBe(false);
    expect(commandListMayInclude("/admin/commands?status=failed", change)).toBe(false);
  });

  test("the first page of an unfiltered or matching list can", () => {
    expect(commandListMayInclude("/admin/commands?limit=50&offset=0", change)).toBe(true);
    expect(commandListMayInclude(`/admin/commands?deviceId=${DEVICE_ID}`, change)).toBe(true);
  });
});

describe("appendTelemetryPoint", () => {
  test("adds a newer reading and ignores an older or repeated one", () => {
    const history = {
      points: [
        {
          at: "2026-11-25T10:05:00.000Z",
          batteryLevel: 80,
          batteryCharging: false,
          memoryTotal: 4096,
          memoryAvailable: 2048,
          storageAvailable: null,
          networkType: "wifi",
        },
      ],
      bucketSeconds: 60,
      appChanges: [],
    };
    const appended = appendTelemetryPoint(history, live());
    expect(appended.points).toHaveLength(2);
    // The live reading's network too: without it the history showed a change to "unknown".
    expect(appended.points[1]).toMatchObject({ batteryLevel: 79, memoryTotal: 4096, memoryAvailable: 1024, networkType: live().networkType });
    expect(appended).toMatchObject({ bucketSeconds: 60, appChanges: [] });
    expect(appendTelemetryPoint(appended, live())).toBe(appended);
    expect(appendTelemetryPoint(history, live({ lastSeenAt: "2026-11-25T10:00:00.000Z" }))).toBe(history);
  });
});

test("a live frame carries the socket state apart from the heartbeat status", () => {
  const closed = patchDevice(device(), live({ connected: false, connectedSince: null, disconnectedSince: "2026-11-25T10:07:00.000Z" }));
  expect(closed).toMatchObject({ online: true, connected: false, disconnectedSince: "2026-11-25T10:07:00.000Z", connectedSince: null });
});
