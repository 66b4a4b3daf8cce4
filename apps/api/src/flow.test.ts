import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { CommandPushData, RegisterResponse, signAdminRequest, verifyCommandSignature } from "@mdm/contracts";
import { parseEnv } from "./config/env";
import type { LocalPushGateway } from "./push/local-push-gateway";
import { type RunningServer, startServer } from "./server";
import { TEST_ADMIN_KEY, TEST_HMAC_SECRET, TEST_SECRETS, createTestDatabase, heartbeatBody, describeWithPostgres } from "./test";

// The whole V1 control loop through a real listening server, as a device and an admin
// see it: register → heartbeat → admin command (push recorded, signed) → action-result.

function serverEnv(extra: Record<string, string>) {
  return parseEnv({ NODE_ENV: "test", PORT: "0", HOST: "127.0.0.1", ...TEST_SECRETS, ADMISSION_MAX_EVENT_LOOP_LAG_MS: "0", ...extra });
}

async function call(server: RunningServer, method: string, pathWithQuery: string, options: { body?: unknown; admin?: boolean; token?: string } = {}) {
  const body = options.body === undefined ? undefined : JSON.stringify(options.body);
  const headers: Record<string, string> = body ? { "Content-Type": "application/json" } : {};
  if (options.admin)
    Object.assign(
      headers,
      await signAdminRequest({
        adminKey: TEST_ADMIN_KEY,
        hmacSecret: TEST_HMAC_SECRET,
        method,
        host: new URL(server.url).host,
        pathWithQuery,
        body: body ?? "",
      }),
    );
  if (options.token) headers.Authorization = `Bearer ${options.token}`;
  const res = await fetch(`${server.url}${pathWithQuery}`, { method, headers, body });
  // Untyped on purpose: each test asserts the fields it cares about.
  // biome-ignore lint/suspicious/noExplicitAny: see above
  return { status: res.status, body: (await res.json()) as any };
}

async function waitFor<T>(read: () => Promise<T>, done: (value: T) => boolean, what: string): Promise<T> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    if (Date.now() > deadline) throw new Error(`${what} did not happen; last: ${JSON.stringify(value)}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

async function runControlLoop(server: RunningServer) {
  const token = await call(server, "POST", "/admin/enrollment-tokens", { admin: true, body: { maxUses: 1, label: "flow" } });
  expect(token.status).toBe(201);

  const registered = await call(server, "POST", "/v1/register", {
    body: { enrollmentToken: token.body.token, device: { model: "Pixel 8", fcmToken: "fcm-flow" } },
  });
  expect(registered.status).toBe(201);
  const device = RegisterResponse.parse(registered.body);

  const heartbeat = await call(server, "POST", "/v1/heartbeat", { token: device.deviceToken, body: heartbeatBody() });
  expect(heartbeat).toMatchObject({ status: 200, body: { commands: [] } });

  const command = await call(server, "POST", "/admin/command", {
    admin: true,
    body: { deviceId: device.deviceId, type: "launch_app", payload: { packageName: "com.example.kiosk" } },
  });
  expect(command).toMatchObject({ status: 201, body: { status: "queued" } });
  // No FCM credentials here: the delivery worker's push is recorded, and the command says
  // so instead of claiming it was sent.
  const attempted = await waitFor(
    () => call(server, "GET", `/admin/commands/${command.body.requestId}`, { admin: true }),
    (res) => res.body.push.outcome !== null,
    "the delivery attempt",
  );
  expect(attempted.body).toMatchObject({ status: "queued", push: { outcome: "recorded", attempts: 1 } });
  expect(attempted.body.events.at(-1)).toMatchObject({ status: "queued", detail: expect.stringMatching(/^push recorded, not sent/) });
  const pushed = (server.deps.push as LocalPushGateway).sent.at(-1)!;
  const data = CommandPushData.parse(pushed.data);
  expect(data.requestId).toBe(command.body.requestId);
  expect(await verifyCommandSignature(device.commandKey, { ...data, payload: JSON.parse(data.payload) })).toBe(true);

  const report = (status: string) => call(server, "POST", "/v1/action-result", { token: device.deviceToken, body: { requestId: data.requestId, status } });
  expect((await report("acknowledged")).body).toEqual({ requestId: data.requestId, status: "acknowledged", changed: true });
  expect((await report("succeeded")).body).toEqual({ requestId: data.requestId, status: "succeeded", changed: true });
  expect((await report("succeeded")).body).toEqual({ requestId: data.requestId, status: "succeeded", changed: false });

  const final = await call(server, "GET", `/admin/commands/${data.requestId}`, { admin: true });
  expect(final.body.events.map((event: { status: string }) => event.status)).toEqual(["queued", "queued", "acknowledged", "succeeded"]);
  const listed = await call(server, "GET", "/admin/devices", { admin: true });
  expect(listed.body.devices[0]).toMatchObject({ id: device.deviceId, state: { battery: { level: 81 } } });
  return device;
}

const realPostgres = describeWithPostgres;

realPostgres("the control loop on real PostgreSQL", () => {
  it("registers, heartbeats, pushes a signed command and records its result", async () => {
    const database = await createTestDatabase();
    const server = await startServer(serverEnv({ DATABASE_URL: database.url }));
    try {
      await runControlLoop(server);
      // The delivery gauges, and the recorded push counted as such rather than as sent.
      const metrics = await (await fetch(`${server.url}/api/metrics`)).text();
      expect(metrics).toMatch(/^mdm_command_send_total\{outcome="recorded"\} 1$/m);
      expect(metrics).not.toMatch(/^mdm_command_send_total\{outcome="sent"\}/m);
      expect(metrics).toMatch(/^mdm_devices_online 1$/m);
      expect(metrics).toMatch(/^mdm_device_sockets_open 0$/m);
      expect(metrics).toMatch(/^mdm_commands_due 0$/m);
      expect(metrics).toMatch(/^mdm_commands_due_oldest_age_seconds 0$/m);
    } finally {
      await server.close();
      await database.close();
    }
  });
});

describe("the control loop on the embedded database (no DATABASE_URL)", () => {
  it("works end to end, and the data survives a restart", async () => {
    const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), "mdm-embedded-"));
    const first = await startServer(serverEnv({ DATA_DIR: dataDir }));
    let deviceId: string;
    try {
      deviceId = (await runControlLoop(first)).deviceId;
    } finally {
      await first.close();
    }
    expect(fs.existsSync(path.join(dataDir, "pglite"))).toBe(true);
    const second = await startServer(serverEnv({ DATA_DIR: dataDir }));
    try {
      const device = await call(second, "GET", `/admin/devices/${deviceId}`, { admin: true });
      expect(device).toMatchObject({ status: 200, body: { id: deviceId, model: "Pixel 8" } });
    } finally {
      await second.close();
      fs.rmSync(dataDir, { recursive: true, force: true });
    }
    // Two starts of the WASM database, each applying every migration: slow on a busy machine.
  }, 120_000);
});
