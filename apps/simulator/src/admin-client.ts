import {
  Command,
  CommandBatch,
  type CreateBulkCommandRequest,
  type CreateCommandRequest,
  type CreateEnrollmentTokenRequest,
  CreateEnrollmentTokenResponse,
  type CreateDevicePolicyRequest,
  type CreatePolicyAssignmentRequest,
  DevicePolicyView,
  DeviceView,
  EffectivePolicyResponse,
  PolicyAssignment,
  type UpdateDevicePolicyRequest,
  type ListCommandsQuery,
  RetireDeviceResponse,
  RotateTokenResponse,
  ListCommandsResponse,
  signAdminRequest,
} from "@mdm/contracts";
import fs from "node:fs";
import path from "node:path";
import type { z } from "zod";
import { type JsonRequest, requestJson } from "./http";

export type AdminCredentials = { adminKey: string; hmacSecret: string };

// Where `npm start` keeps the development secrets it generated for this checkout (the
// API's DATA_DIR, apps/api/.data); from src/ and dist/ alike.
export const LOCAL_DEV_SECRETS_FILE = path.resolve(__dirname, "../../api/.data/dev-secrets.json");

/** The admin credentials of a local `npm start` API without configured secrets, if there is one. */
export function localDevCredentials(file = LOCAL_DEV_SECRETS_FILE): AdminCredentials | undefined {
  try {
    const stored = JSON.parse(fs.readFileSync(file, "utf8")) as { ADMIN_KEY?: unknown; HMAC_SECRET?: unknown };
    if (typeof stored.ADMIN_KEY !== "string" || typeof stored.HMAC_SECRET !== "string") return undefined;
    return { adminKey: stored.ADMIN_KEY, hmacSecret: stored.HMAC_SECRET };
  } catch {
    return undefined;
  }
}

/** The few admin calls the simulator and its tests need, each signed as the README says. */
export class AdminClient {
  constructor(
    readonly baseUrl: string,
    private readonly credentials: AdminCredentials,
  ) {}

  private async send<Schema extends z.ZodType>(method: JsonRequest["method"], path: string, body: unknown, schema: Schema): Promise<z.output<Schema>> {
    const raw = body === undefined ? undefined : JSON.stringify(body);
    const headers = await signAdminRequest({ ...this.credentials, method, host: new URL(this.baseUrl).host, pathWithQuery: path, body: raw ?? "" });
    return requestJson(this.baseUrl, { method, path, headers, body: raw }, schema);
  }

  createEnrollmentToken(input: z.input<typeof CreateEnrollmentTokenRequest> = {}): Promise<CreateEnrollmentTokenResponse> {
    return this.send("POST", "/admin/enrollment-tokens", input, CreateEnrollmentTokenResponse);
  }

  createCommand(input: z.input<typeof CreateCommandRequest>): Promise<Command> {
    return this.send("POST", "/admin/command", input, Command);
  }

  createBulkCommand(input: z.input<typeof CreateBulkCommandRequest>): Promise<CommandBatch> {
    return this.send("POST", "/admin/commands/bulk", input, CommandBatch);
  }

  getCommand(requestId: string): Promise<Command> {
    return this.send("GET", `/admin/commands/${encodeURIComponent(requestId)}`, undefined, Command);
  }

  listCommands(query: Partial<z.input<typeof ListCommandsQuery>> = {}): Promise<ListCommandsResponse> {
    const search = new URLSearchParams(Object.entries(query).map(([key, value]): [string, string] => [key, String(value)]));
    return this.send("GET", `/admin/commands${search.size > 0 ? `?${search}` : ""}`, undefined, ListCommandsResponse);
  }

  getBatch(batchId: string): Promise<CommandBatch> {
    return this.send("GET", `/admin/batches/${encodeURIComponent(batchId)}`, undefined, CommandBatch);
  }

  getDevice(deviceId: string): Promise<DeviceView> {
    return this.send("GET", `/admin/devices/${encodeURIComponent(deviceId)}`, undefined, DeviceView);
  }

  createDevicePolicy(input: z.input<typeof CreateDevicePolicyRequest>): Promise<DevicePolicyView> {
    return this.send("POST", "/admin/device-policies", input, DevicePolicyView);
  }

  updateDevicePolicy(policyId: string, input: z.input<typeof UpdateDevicePolicyRequest>): Promise<DevicePolicyView> {
    return this.send("PATCH", `/admin/device-policies/${encodeURIComponent(policyId)}`, input, DevicePolicyView);
  }

  assignDevicePolicy(policyId: string, input: z.input<typeof CreatePolicyAssignmentRequest>): Promise<PolicyAssignment> {
    return this.send("POST", `/admin/device-policies/${encodeURIComponent(policyId)}/assignments`, input, PolicyAssignment);
  }

  getEffectivePolicy(deviceId: string): Promise<EffectivePolicyResponse> {
    return this.send("GET", `/admin/devices/${encodeURIComponent(deviceId)}/policy`, undefined, EffectivePolicyResponse);
  }

  retireDevice(deviceId: string): Promise<RetireDeviceResponse> {
    return this.send("POST", `/admin/devices/${encodeURIComponent(deviceId)}/retire`, undefined, RetireDeviceResponse);
  }

  rotateDeviceToken(deviceId: string): Promise<RotateTokenResponse> {
    return this.send("POST", `/admin/devices/${encodeURIComponent(deviceId)}/rotate-token`, undefined, RotateTokenResponse);
  }
}
