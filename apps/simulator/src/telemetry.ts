import type { AppStatus, HeartbeatRequest, NetworkType } from "@mdm/contracts";

/** The kiosk app every simulated device runs in the foreground. */
export const KIOSK_APP = "com.example.kiosk";

/** A source of numbers in [0, 1), so drift can be replayed in tests. */
export type Random = () => number;

/** mulberry32: small, fast, good enough to make a fleet look varied and a test repeatable. */
export function seededRandom(seed: number): Random {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export type DeviceState = {
  /** Level as a float, so a slow drain accumulates between heartbeats; reported rounded. */
  battery: { level: number; charging: boolean; drainPerSecond: number };
  memory: { total: number; available: number };
  storage: { total: number; available: number };
  network: { type: NetworkType; signal: number; ip: string };
  apps: AppStatus[];
  bootedAt: number;
};

const GB = 1024 ** 3;
const pick = <T>(random: Random, items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
const clamp = (value: number, min: number, max: number) => Math.min(max, Math.max(min, value));
const between = (random: Random, min: number, max: number) => min + random() * (max - min);
/** Probability that an event with the given mean interval happens within `seconds`. */
const happens = (random: Random, seconds: number, meanSeconds: number) => random() < 1 - Math.exp(-seconds / meanSeconds);

export const MEMORY_FREE_RANGE = [0.08, 0.85] as const;
export const STORAGE_MIN_FREE = 0.02;
export const SIGNAL_RANGE: Record<"wifi" | "cellular", readonly [number, number]> = { wifi: [-90, -30], cellular: [-120, -60] };
const CHARGE_PER_SECOND = 0.05;

function ipFor(type: NetworkType, random: Random): string {
  const octet = () => Math.floor(random() * 254) + 1;
  return type === "cellular" ? `100.64.${octet()}.${octet()}` : `10.0.${octet()}.${octet()}`;
}

export function initialState(random: Random, now: number): DeviceState {
  const memoryTotal = pick(random, [2, 3, 4, 6, 8]) * GB;
  const storageTotal = pick(random, [32, 64, 128]) * GB;
  const type: NetworkType = random() < 0.85 ? "wifi" : "cellular";
  const [low, high] = SIGNAL_RANGE[type as "wifi" | "cellular"];
  return {
    battery: { level: between(random, 30, 100), charging: random() < 0.2, drainPerSecond: between(random, 0.003, 0.02) },
    memory: { total: memoryTotal, available: Math.round(memoryTotal * between(random, 0.3, 0.6)) },
    storage: { total: storageTotal, available: Math.round(storageTotal * between(random, 0.2, 0.7)) },
    network: { type, signal: Math.round(between(random, low, high)), ip: ipFor(type, random) },
    apps: [{ packageName: KIOSK_APP, versionName: "2.1.0", versionCode: 210, running: true, foreground: true }],
    bootedAt: now - Math.round(between(random, 600, 7 * 24 * 3600)) * 1000,
  };
}

/**
 * The state `seconds` later: the battery drains slowly and flips to charging (nearly always
 * when low, rarely otherwise), memory and signal wander within their ranges, storage fills
 * up slowly, and now and then the device changes network.
 */
export function drift(state: DeviceState, seconds: number, random: Random): DeviceState {
  const battery = { ...state.battery };
  battery.level = clamp(battery.level + (battery.charging ? CHARGE_PER_SECOND : -battery.drainPerSecond) * seconds, 0, 100);
  if (!battery.charging && battery.level <= 20 && happens(random, seconds, 120)) battery.charging = true;
  else if (battery.charging && battery.level >= 100 && happens(random, seconds, 300)) battery.charging = false;
  else if (happens(random, seconds, 3 * 3600)) battery.charging = !battery.charging;

  const swing = Math.sqrt(Math.max(seconds, 0) / 60);
  const memory = {
    total: state.memory.total,
    available: Math.round(
      clamp(
        state.memory.available + state.memory.total * 0.03 * swing * (random() * 2 - 1),
        state.memory.total * MEMORY_FREE_RANGE[0],
        state.memory.total * MEMORY_FREE_RANGE[1],
      ),
    ),
  };
  // Caches grow by up to ~1 MB a second; a cleanup now and then gives some back.
  const freed = happens(random, seconds, 6 * 3600) ? state.storage.total * 0.02 : 0;
  const storage = {
    total: state.storage.total,
    available: Math.round(
      clamp(state.storage.available - random() * 1024 * 1024 * seconds + freed, state.storage.total * STORAGE_MIN_FREE, state.storage.total),
    ),
  };

  let network = { ...state.network };
  if (happens(random, seconds, 2 * 3600)) {
    const type: NetworkType = network.type === "wifi" ? "cellular" : "wifi";
    const [low, high] = SIGNAL_RANGE[type as "wifi" | "cellular"];
    network = { type, signal: Math.round(between(random, low, high)), ip: ipFor(type, random) };
  } else {
    const [low, high] = SIGNAL_RANGE[network.type as "wifi" | "cellular"];
    network.signal = Math.round(clamp(network.signal + 4 * swing * (random() * 2 - 1), low, high));
  }
  return { ...state, battery, memory, storage, network };
}

/** The heartbeat a device in this state sends at `now`. */
export function toHeartbeat(state: DeviceState, now: number, extra: { appVersion?: string; fcmToken?: string } = {}): HeartbeatRequest {
  return {
    deviceTime: new Date(now).toISOString(),
    battery: { level: Math.round(state.battery.level), charging: state.battery.charging },
    memory: { ...state.memory },
    storage: { ...state.storage },
    network: { ...state.network },
    apps: state.apps.map((app) => ({ ...app })),
    uptimeSeconds: Math.max(0, Math.floor((now - state.bootedAt) / 1000)),
    ...extra,
  };
}
