import http from "node:http";
import type { AddressInfo } from "node:net";
import { adminSignature } from "@mdm/contracts";
import { AdminClient } from "./admin-client";
import { ApiError } from "./http";

const credentials = { adminKey: "admin-key-0123456789abcdef0123456789", hmacSecret: "h".repeat(64) };
const DEVICE = "3f6c2a1e-8b4d-4c7a-9e21-5d0b7f9a2c44";

type Seen = { method: string; url: string; headers: http.IncomingHttpHeaders; body: string };

describe("AdminClient", () => {
  const seen: Seen[] = [];
  let server: http.Server;
  let client: AdminClient;

  beforeAll(async () => {
    // Records each request and refuses it as the API refuses an unknown id.
    server = http.createServer((req, res) => {
      let body = "";
      req.on("data", (chunk) => (body += chunk));
      req.on("end", () => {
        seen.push({ method: req.method!, url: req.url!, headers: req.headers, body });
        res.writeHead(404, { "Content-Type": "application/json" }).end(JSON.stringify({ error: { code: "not_found", message: "No such thing" } }));
      });
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    client = new AdminClient(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, credentials);
  });
  afterAll(() => new Promise((resolve) => server.close(resolve)));

  it("signs every call as the README says, on the route it names, and surfaces the API's error", async () => {
    const calls: Array<[string, string, () => Promise<unknown>]> = [
      ["POST", "/admin/enrollment-tokens", () => client.createEnrollmentToken({ label: "store" })],
      ["POST", "/admin/command", () => client.createCommand({ deviceId: DEVICE, type: "ping" })],
      ["POST", "/admin/commands/bulk", () => client.createBulkCommand({ target: { all: true }, type: "ping" })],
      ["GET", `/admin/commands/${DEVICE}`, () => client.getCommand(DEVICE)],
      ["GET", "/admin/commands?deviceId=x&limit=5", () => client.listCommands({ deviceId: "x", limit: 5 })],
      ["GET", "/admin/commands", () => client.listCommands()],
      ["GET", `/admin/batches/${DEVICE}`, () => client.getBatch(DEVICE)],
      ["GET", `/admin/devices/${DEVICE}`, () => client.getDevice(DEVICE)],
      ["POST", "/admin/device-policies", () => client.createDevicePolicy({ name: "Kiosk", settings: {} })],
      ["PATCH", `/admin/device-policies/${DEVICE}`, () => client.updateDevicePolicy(DEVICE, { description: "x" })],
      ["POST", `/admin/device-policies/${DEVICE}/assignments`, () => client.assignDevicePolicy(DEVICE, { group: "stores" })],
      ["GET", `/admin/devices/${DEVICE}/policy`, () => client.getEffectivePolicy(DEVICE)],
      ["POST", `/admin/devices/${DEVICE}/retire`, () => client.retireDevice(DEVICE)],
    ];
    for (const [method, url, call] of calls) {
      const error = await call().then(
        () => undefined,
        (caught: unknown) => caught,
      );
      expect(error).toBeInstanceOf(ApiError);
      expect((error as ApiError).status).toBe(404);
      const request = seen.at(-1)!;
      expect([request.method, request.url]).toEqual([method, url]);
      expect(request.headers["x-admin"]).toBe(credentials.adminKey);
      const expected = await adminSignature(credentials.hmacSecret, {
        timestamp: String(request.headers["x-timestamp"]),
        nonce: String(request.headers["x-nonce"]),
        method,
        host: String(request.headers.host),
        pathWithQuery: url,
        body: request.body,
      });
      expect(request.headers["x-signature"]).toBe(expected);
    }
    expect(new Set(seen.map((request) => request.headers["x-nonce"])).size).toBe(seen.length);
  });
});
