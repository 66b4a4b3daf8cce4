import {
  Command,
  CommandBatch,
  type CreateBulkCommandRequest,
  type CreateCommandRequest,
  type CreateEnrollmentTokenRequest,
  CreateEnrollmentTokenResponse,
  DeviceView,
  type ListCommandsQuery,
  ListCommandsResponse,
  signAdminRequest,
} from "@mdm/contracts";
import type { z } from "zod";
import { type JsonRequest, requestJson } from "./http";

/** The API's development credentials (`npm start`); production refuses them. */
export const DEV_ADMIN_KEY = "dev-admin-key-change-me";
export const DEV_HMAC_SECRET = "dev-hmac-secret-change-me";

export type AdminCredentials = { adminKey: string; hmacSecret: string };

/** The few admin calls the simulator and its tests need, each signed as the README says. */
export class AdminClient {
  constructor(
    readonly baseUrl: string,
    private readonly credentials: AdminCredentials = { adminKey: DEV_ADMIN_KEY, hmacSecret: DEV_HMAC_SECRET },
  ) {}

  private async send<Schema extends z.ZodType>(method: JsonRequest["method"], path: string, body: unknown, schema: Schema): Promise<z.output<Schema>> {
    const raw = body === undefined ? undefined : JSON.stringify(body);
    const headers = await signAdminRequest({ ...this.credentials, method, pathWithQuery: path, body: raw ?? "" });
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
}
