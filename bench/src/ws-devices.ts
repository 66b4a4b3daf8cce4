// Simulated devices on WebSockets, in their own process. Two jobs:
//   heartbeats: `sockets` devices send heartbeat frames at an overall fixed rate; latency is
//               from a frame's send to its heartbeat_ok (frames on one socket answer in order);
//   fleet:      `sockets` devices stay connected and answer every command with an ack and a
//               `succeeded` result, until SIGTERM; prints a "ready" line once all are connected.
import { readFileSync } from "node:fs";
import { BEARER_PROTOCOL_PREFIX, DEVICE_WS_PROTOCOL, type DeviceServerFrame } from "@mdm/contracts";
import WebSocket from "ws";
import { appVersionOf, heartbeatBody, jobOf, percentile, round, shuffledIndexes } from "./common";

export type WsJob = { url: string; tokensFile: string; sockets: number; mode: "heartbeats" | "fleet"; rate?: number; seconds?: number };
export type WsHeartbeatResult = {
  sockets: number;
  connected: number;
  ok: number;
  errors: number;
  requestsPerSecond: number;
  p50: number;
  p99: number;
  max: number;
};
export type WsFleetReady = { ready: true; connected: number; failed: number; rssBytes: number };

const job = jobOf<WsJob>();
const CONNECT_CONCURRENCY = 100;

type Device = { socket: WebSocket; sentAt: number[]; appVersion: string };

async function connectAll(tokens: string[], onFrame: (device: Device, frame: DeviceServerFrame) => void): Promise<{ devices: Device[]; failed: number }> {
  const devices: Device[] = [];
  let failed = 0;
  let next = 0;
  const wsUrl = `${job.url.replace(/^http/, "ws")}/ws/devices`;
  const worker = async () => {
    while (next < tokens.length) {
      const index = next++;
      const token = tokens[index]!;
      await new Promise<void>((resolve) => {
        const socket = new WebSocket(wsUrl, [DEVICE_WS_PROTOCOL, `${BEARER_PROTOCOL_PREFIX}${token}`]);
        const device: Device = { socket, sentAt: [], appVersion: appVersionOf(index) };
        socket.on("message", (data) => {
          const frame = JSON.parse(data.toString()) as DeviceServerFrame;
          if (frame.type === "hello") {
            devices.push(device);
            resolve();
            return;
          }
          onFrame(device, frame);
        });
        socket.on("error", () => {
          failed++;
          resolve();
        });
      });
    }
  };
  await Promise.all(Array.from({ length: CONNECT_CONCURRENCY }, worker));
  return { devices, failed };
}

async function heartbeats(tokens: string[]) {
  const latencies: number[] = [];
  let errors = 0;
  const { devices, failed } = await connectAll(tokens, (device, frame) => {
    const sentAt = device.sentAt.shift();
    if (sentAt === undefined) return;
    if (frame.type === "heartbeat_ok") latencies.push(performance.now() - sentAt);
    else if (frame.type === "error") errors++;
  });
  for (const device of devices) device.socket.on("close", () => (errors += device.sentAt.splice(0).length));
  const order = shuffledIndexes(devices.length);
  const rate = job.rate ?? 1000;
  const seconds = job.seconds ?? 10;
  const total = rate * seconds;
  let sent = 0;
  let sequence = 0;
  const started = performance.now();
  await new Promise<void>((resolve) => {
    const timer = setInterval(() => {
      const due = Math.min(total, Math.floor(((performance.now() - started) / 1000) * rate));
      for (; sent < due; sent++) {
        const device = devices[order[sent % devices.length]!]!;
        device.sentAt.push(performance.now());
        device.socket.send(`{"type":"heartbeat","heartbeat":${heartbeatBody(sequence++, device.appVersion)}}`);
      }
      if (sent >= total) {
        clearInterval(timer);
        resolve();
      }
    }, 5);
  });
  // Wait for the last answers (bounded).
  const deadline = performance.now() + 30_000;
  while (latencies.length + errors < sent && performance.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  const elapsed = (performance.now() - started) / 1000;
  errors += sent - latencies.length - errors;
  latencies.sort((a, b) => a - b);
  const result: WsHeartbeatResult = {
    sockets: tokens.length,
    connected: devices.length,
    ok: latencies.length,
    errors: errors + failed,
    requestsPerSecond: Math.round(latencies.length / elapsed),
    p50: round(percentile(latencies, 50)),
    p99: round(percentile(latencies, 99)),
    max: round(latencies.at(-1) ?? 0),
  };
  for (const device of devices) device.socket.close();
  console.log(JSON.stringify(result));
  process.exit(0);
}

async function fleet(tokens: string[]) {
  let commands = 0;
  const { devices, failed } = await connectAll(tokens, (device, frame) => {
    if (frame.type !== "command") return;
    commands++;
    const requestId = frame.command.requestId;
    device.socket.send(JSON.stringify({ type: "command_ack", requestId }));
    device.socket.send(JSON.stringify({ type: "command_result", result: { requestId, status: "succeeded", completedAt: new Date().toISOString() } }));
  });
  const ready: WsFleetReady = { ready: true, connected: devices.length, failed, rssBytes: process.memoryUsage().rss };
  console.log(JSON.stringify(ready));
  process.on("SIGTERM", () => {
    for (const device of devices) device.socket.terminate();
    console.log(JSON.stringify({ commands }));
    process.exit(0);
  });
}

const tokens = readFileSync(job.tokensFile, "utf8").trim().split("\n").slice(0, job.sockets);
void (job.mode === "fleet" ? fleet(tokens) : heartbeats(tokens));
