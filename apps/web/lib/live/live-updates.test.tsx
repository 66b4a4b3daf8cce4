/** @jest-environment jsdom */
import type { DashboardServerFrame, DeviceLiveState, DeviceView, ListDevicesResponse } from "@mdm/contracts";
import { act, fireEvent, render, screen, waitFor } from "@testing-library/react";
import { SWRConfig, useSWRConfig } from "swr";
import { isDeviceListKey, useDevices } from "@/lib/swr/use-devices";
import { LiveUpdatesProvider, useLiveStatus } from "./live-updates";

// The live pipeline as a page sees it: socket frame → contract parse → SWR cache → render.

const DEVICE_ID = "0b8f5d2a-3c1e-4f7a-9b6d-2e4c8a1f3b5d";

class FakeSocket {
  static readonly CONNECTING = 0;
  static readonly OPEN = 1;
  static readonly CLOSED = 3;
  static opened: FakeSocket[] = [];
  readyState = FakeSocket.CONNECTING;
  onopen?: () => void;
  onmessage?: (event: { data: string }) => void;
  onclose?: () => void;

  constructor(
    readonly url: string,
    readonly protocols: string[],
  ) {
    FakeSocket.opened.push(this);
  }

  send(): void {}

  close(): void {
    this.readyState = FakeSocket.CLOSED;
  }

  receive(frame: DashboardServerFrame): void {
    act(() => this.onmessage?.({ data: JSON.stringify(frame) }));
  }

  drop(): void {
    this.readyState = FakeSocket.CLOSED;
    act(() => this.onclose?.());
  }
}

const device: DeviceView = {
  id: DEVICE_ID,
  legacyId: null,
  alias: "Front desk",
  notes: null,
  groups: [],
  online: true,
  offlineSince: null,
  connected: true,
  connectedSince: null,
  disconnectedSince: null,
  model: "Pixel 8",
  manufacturer: null,
  osVersion: null,
  sdkInt: null,
  appVersion: null,
  serialNumber: null,
  enrolledAt: "2026-11-25T10:00:00.000Z",
  lastSeenAt: "2026-11-25T10:05:00.000Z",
  push: { registered: false, invalidSince: null },
  state: { battery: { level: 80, charging: false }, memory: null, storage: null, network: null, apps: [], uptimeSeconds: null, deviceTime: null },
};

let tickets = 0;
let listFetches = 0;
// The device as the server holds it, and a gate that list answers wait on when set.
let serverDevice: DeviceView = device;
let listGate: Promise<void> | undefined;

// jsdom has no Response; the client reads only these three members.
function reply(body: unknown, status = 200) {
  return { ok: status < 300, status, json: async () => body } as Response;
}

beforeEach(() => {
  FakeSocket.opened = [];
  tickets = 0;
  listFetches = 0;
  serverDevice = device;
  listGate = undefined;
  Object.assign(globalThis, { WebSocket: FakeSocket });
  globalThis.fetch = (async (input: RequestInfo | URL) => {
    const path = String(input);
    if (path === "/auth/ws-ticket") {
      tickets += 1;
      return reply({ ticket: `ticket-${tickets}`, expiresAt: "2026-11-25T10:06:00.000Z" });
    }
    if (path.startsWith("/admin/devices?")) {
      listFetches += 1;
      const list: ListDevicesResponse = { devices: [serverDevice], total: 1, limit: 50, offset: 0 };
      await listGate;
      return reply(list);
    }
    return reply({ error: { code: "not_found", message: path, requestId: "test" } }, 404);
  }) as typeof fetch;
});

function Battery() {
  const { data } = useDevices({ limit: 50 });
  const { status } = useLiveStatus();
  const { mutate } = useSWRConfig();
  return (
    <>
      <p>{data ? `battery ${data.devices[0]?.state.battery?.level}` : "loading"}</p>
      <p>{data ? `named ${data.devices[0]?.alias}` : null}</p>
      <p>{status.state}</p>
      <button type="button" onClick={() => void mutate(isDeviceListKey)}>
        refresh
      </button>
    </>
  );
}

function renderLive() {
  return render(
    <SWRConfig value={{ provider: () => new Map(), dedupingInterval: 0 }}>
      <LiveUpdatesProvider>
        <Battery />
      </LiveUpdatesProvider>
    </SWRConfig>,
  );
}

const frameAbout = (overrides: Partial<DeviceLiveState>): DashboardServerFrame => ({
  type: "update",
  devices: [
    {
      deviceId: DEVICE_ID,
      online: true,
      lastSeenAt: "2026-11-25T10:06:00.000Z",
      connected: true,
      connectedSince: null,
      disconnectedSince: null,
      batteryLevel: 42,
      batteryCharging: false,
      memoryAvailable: null,
      networkType: null,
      ...overrides,
    },
  ],
  commands: [],
});

test("a frame about a listed device updates what is shown, without refetching", async () => {
  renderLive();
  await screen.findByText("battery 80");
  await waitFor(() => expect(FakeSocket.opened).toHaveLength(1));
  const socket = FakeSocket.opened[0]!;
  expect(socket.protocols).toEqual(["mdm.dashboard.v1", "ticket.ticket-1"]);

  socket.receive({ type: "hello", serverTime: "2026-11-25T10:05:00.000Z", flushIntervalMs: 250 });
  await screen.findByText("live");
  socket.receive(frameAbout({ batteryLevel: 42 }));
  await screen.findByText("battery 42");
  expect(listFetches).toBe(1);
});

/** The provider rendered, its socket open and greeted. */
async function liveSocket(): Promise<FakeSocket> {
  renderLive();
  await screen.findByText("battery 80");
  await waitFor(() => expect(FakeSocket.opened).toHaveLength(1));
  const socket = FakeSocket.opened[0]!;
  socket.receive({ type: "hello", serverTime: "2026-11-25T10:05:00.000Z", flushIntervalMs: 250 });
  await screen.findByText("live");
  return socket;
}

/** Refetches the list with `changed` as the server's device; returns what lets its answer go. */
async function slowRefetch(changed: DeviceView): Promise<() => Promise<void>> {
  serverDevice = changed;
  let answer = () => {};
  listGate = new Promise((resolve) => {
    answer = resolve;
  });
  fireEvent.click(screen.getByRole("button", { name: "refresh" }));
  await waitFor(() => expect(listFetches).toBe(2));
  return () => act(async () => answer());
}

test("a refetch that a frame overlaps still lands, with the frame applied to what it brought", async () => {
  const socket = await liveSocket();
  // An admin renamed the device; the list is refetched, and answers slowly.
  const answer = await slowRefetch({ ...device, alias: "Till-001" });
  socket.receive(frameAbout({ batteryLevel: 42 }));
  await answer();

  await screen.findByText("named Till-001");
  expect(screen.getByText("battery 42")).toBeTruthy();
});

test("a frame older than the refetched device does not undo it", async () => {
  const socket = await liveSocket();
  const answer = await slowRefetch({ ...device, lastSeenAt: "2026-11-25T10:07:00.000Z", state: { ...device.state, battery: { level: 30, charging: false } } });
  socket.receive(frameAbout({ batteryLevel: 42, lastSeenAt: "2026-11-25T10:06:00.000Z" }));
  await answer();

  await screen.findByText("battery 30");
});

test("a dropped socket reconnects with a fresh ticket", async () => {
  renderLive();
  await waitFor(() => expect(FakeSocket.opened).toHaveLength(1));
  FakeSocket.opened[0]!.receive({ type: "hello", serverTime: "2026-11-25T10:05:00.000Z", flushIntervalMs: 250 });
  FakeSocket.opened[0]!.drop();
  await screen.findByText("reconnecting");
  await waitFor(() => expect(FakeSocket.opened).toHaveLength(2), { timeout: 3000 });
  expect(FakeSocket.opened[1]!.protocols).toEqual(["mdm.dashboard.v1", "ticket.ticket-2"]);
});
