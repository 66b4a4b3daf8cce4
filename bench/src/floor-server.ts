// The floor: the least a server must do per heartbeat on this hardware. node:http and a pg
// pool; it parses the same body and makes the same writes as the API (the device row's live
// state and one telemetry row, in one statement), with no framework, auth or validation.
import http from "node:http";
import type { AddressInfo } from "node:net";
import { Pool } from "pg";
import { jobOf } from "./common";

type Heartbeat = {
  deviceTime: string;
  battery: { level: number; charging: boolean };
  memory: { total: number; available: number };
  storage: { total: number; available: number };
  network: { type: string; signal: number; ip: string };
  uptimeSeconds: number;
  appVersion: string;
  apps: unknown[];
};

const SQL = `
  WITH updated AS (
    UPDATE "Device" SET "lastSeenAt" = now(), online = true, "deviceTime" = $2, "batteryLevel" = $3, "batteryCharging" = $4,
      "memoryTotal" = $5, "memoryAvailable" = $6, "storageTotal" = $7, "storageAvailable" = $8, "networkType" = $9,
      "networkSignal" = $10, "ipAddress" = $11, "uptimeSeconds" = $12, "appVersion" = $13, "appStatus" = $14::jsonb, "updatedAt" = now()
    WHERE id = $1 RETURNING id)
  INSERT INTO "TelemetryEvent" ("deviceId", "receivedAt", "deviceTime", "batteryLevel", "batteryCharging", "memoryTotal",
    "memoryAvailable", "storageTotal", "storageAvailable", "networkType")
  SELECT id, now(), $2, $3, $4, $5, $6, $7, $8, $9 FROM updated`;

const { databaseUrl } = jobOf<{ databaseUrl: string }>();
const pool = new Pool({ connectionString: databaseUrl, max: 20 });

const server = http.createServer((req, res) => {
  const chunks: Buffer[] = [];
  req.on("data", (chunk: Buffer) => chunks.push(chunk));
  req.on("end", () => {
    const deviceId = (req.headers.authorization ?? "").slice("Bearer ".length).split(".")[0];
    let hb: Heartbeat;
    try {
      hb = JSON.parse(Buffer.concat(chunks).toString()) as Heartbeat;
    } catch {
      res.writeHead(400);
      res.end();
      return;
    }
    const params = [
      deviceId,
      hb.deviceTime,
      hb.battery.level,
      hb.battery.charging,
      hb.memory.total,
      hb.memory.available,
      hb.storage.total,
      hb.storage.available,
      hb.network.type,
      hb.network.signal,
      hb.network.ip,
      hb.uptimeSeconds,
      hb.appVersion,
      JSON.stringify(hb.apps),
    ];
    pool.query(SQL, params).then(
      () => {
        res.writeHead(200, { "Content-Type": "application/json" });
        res.end(`{"serverTime":"${new Date().toISOString()}","commands":[]}`);
      },
      () => {
        res.writeHead(500);
        res.end();
      },
    );
  });
});

server.listen(0, "127.0.0.1", () => {
  console.log(JSON.stringify({ url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` }));
});
process.on("SIGTERM", () => {
  server.close();
  void pool.end().then(() => process.exit(0));
});
