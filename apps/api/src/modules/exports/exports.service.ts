import { once } from "node:events";
import type { AuditLogEntry, DeviceView, ExportAuditLogQuery, ExportCommandsQuery, ExportDevicesQuery, ExportFormat } from "@mdm/contracts";
import type { Response } from "express";
import type { AppDeps } from "../../deps";
import { type AuditLog, type Command, type Device, Prisma } from "../../generated/prisma/client";
import { HttpError } from "../../lib/http-error";
import { deviceFilters, devicesOf, sortColumnOf, toDeviceView } from "../devices/devices.service";
import { csvLine } from "./csv";

// Exports stream rows from a PostgreSQL cursor to the response: FETCH a batch, write it,
// wait for the socket to drain when its buffer is full, FETCH the next. Memory stays at
// one batch whatever the table's size, and a slow client slows the reads instead of
// filling the server's memory. The cursor lives in a read-only transaction (one snapshot
// for the whole file), which holds one connection of the instance's shared pool for the
// download's duration. So that downloads can never take the pool from heartbeats and
// everything else: at most EXPORT_MAX_CONCURRENT run at once per instance (503 past it,
// before any connection is taken), and a client that stops reading for
// EXPORT_STALL_TIMEOUT_SECONDS is cut off, which ends the transaction and returns the
// connection. (Reading page by page outside a transaction would free the connection
// between pages but give up the single snapshot: a device whose sort key changes during
// the download could appear twice or not at all.)

const FETCH_BATCH = 500;
/** A download may take a while on a slow link; past this the transaction ends and the response is cut. */
const EXPORT_TIMEOUT_MS = 30 * 60_000;
/** What a refused export is told to wait: a running export takes seconds to minutes. */
export const EXPORT_RETRY_AFTER_SECONDS = 10;

type Column<Row> = [header: string, value: (row: Row) => unknown];

type ExportSpec<Row> = { name: string; sql: Prisma.Sql; columns: Column<Row>[]; json: (row: Row) => unknown };

type ExportDeps = Pick<AppDeps, "db" | "logger" | "env">;

class ClientGone extends Error {}
class ClientStalled extends Error {}

/** Exports running on this instance, per app (an app's deps stand for its instance). */
const running = new WeakMap<object, number>();

/**
 * Writes `chunk`, waiting for the socket to drain when its buffer is full; throws when the
 * client went away, or has not taken anything for `stallMs`.
 */
async function write(res: Response, chunk: string, stallMs: number): Promise<void> {
  if (res.destroyed || res.writableEnded) throw new ClientGone();
  if (res.write(chunk)) return;
  const ac = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      once(res, "drain", { signal: ac.signal }),
      once(res, "close", { signal: ac.signal }).then(() => Promise.reject(new ClientGone())),
      new Promise((_resolve, reject) => {
        timer = setTimeout(() => reject(new ClientStalled()), stallMs);
      }),
    ]);
  } finally {
    clearTimeout(timer);
    ac.abort();
  }
}

async function streamExport<Row>(deps: ExportDeps, res: Response, format: ExportFormat, spec: ExportSpec<Row>): Promise<void> {
  const { env } = deps;
  const inFlight = running.get(deps) ?? 0;
  if (inFlight >= env.EXPORT_MAX_CONCURRENT) {
    throw new HttpError("service_unavailable", `${inFlight} exports are already running on this instance; retry later`, undefined, {
      "Retry-After": String(EXPORT_RETRY_AFTER_SECONDS),
    });
  }
  running.set(deps, inFlight + 1);
  try {
    await sendExport(deps, res, format, spec);
  } finally {
    running.set(deps, (running.get(deps) ?? 1) - 1);
  }
}

async function sendExport<Row>({ db, logger, env }: ExportDeps, res: Response, format: ExportFormat, spec: ExportSpec<Row>): Promise<void> {
  const stamp = new Date().toISOString().slice(0, 19).replace(/[:T]/g, "-");
  const stallMs = env.EXPORT_STALL_TIMEOUT_SECONDS * 1000;
  res.status(200);
  res.setHeader("Content-Type", format === "csv" ? "text/csv; charset=utf-8" : "application/x-ndjson; charset=utf-8");
  res.setHeader("Content-Disposition", `attachment; filename="${spec.name}-${stamp}.${format}"`);
  let rows = 0;
  try {
    await db.$transaction(
      async (tx) => {
        await tx.$executeRawUnsafe("SET TRANSACTION READ ONLY");
        await tx.$executeRaw`DECLARE export_rows NO SCROLL CURSOR FOR ${spec.sql}`;
        if (format === "csv") await write(res, csvLine(spec.columns.map(([header]) => header)), stallMs);
        for (;;) {
          const batch = await tx.$queryRawUnsafe<Row[]>(`FETCH ${FETCH_BATCH} FROM export_rows`);
          if (batch.length === 0) break;
          let chunk = "";
          for (const row of batch) chunk += format === "csv" ? csvLine(spec.columns.map(([, value]) => value(row))) : `${JSON.stringify(spec.json(row))}\n`;
          await write(res, chunk, stallMs);
          rows += batch.length;
        }
      },
      { timeout: EXPORT_TIMEOUT_MS, maxWait: 10_000 },
    );
    res.end();
  } catch (error) {
    // The status line is sent: an error can only cut the download short.
    if (error instanceof ClientStalled) logger.warn("export cut: the client stopped reading", { export: spec.name, rows, stallMs });
    else if (!(error instanceof ClientGone))
      logger.error("export failed", { export: spec.name, rows, message: error instanceof Error ? error.message : String(error) });
    res.destroy();
  }
}

const DEVICE_COLUMNS: Column<DeviceView>[] = [
  ["id", (d) => d.id],
  ["alias", (d) => d.alias],
  ["model", (d) => d.model],
  ["manufacturer", (d) => d.manufacturer],
  ["osVersion", (d) => d.osVersion],
  ["serialNumber", (d) => d.serialNumber],
  ["appVersion", (d) => d.appVersion],
  ["groups", (d) => d.groups.join(";")],
  ["online", (d) => d.online],
  ["lastSeenAt", (d) => d.lastSeenAt],
  ["batteryLevel", (d) => d.state.battery?.level],
  ["batteryCharging", (d) => d.state.battery?.charging],
  ["networkType", (d) => d.state.network?.type],
  ["ipAddress", (d) => d.state.network?.ip],
  ["enrolledAt", (d) => d.enrolledAt],
];

export function exportDevices(deps: ExportDeps, res: Response, query: ExportDevicesQuery): Promise<void> {
  const sql = devicesOf(Prisma.sql`SELECT id, ${sortColumnOf(query)} FROM "DeviceListing" WHERE ${deviceFilters(query)}`, query);
  return streamExport<Device>(deps, res, query.format, {
    name: "devices",
    sql,
    columns: DEVICE_COLUMNS.map(([header, value]) => [header, (row: Device) => value(toDeviceView(row))]),
    json: toDeviceView,
  });
}

const commandJson = (c: Command) => ({
  requestId: c.requestId,
  deviceId: c.deviceId,
  type: c.type,
  status: c.status,
  payload: c.payload,
  createdBy: c.createdBy,
  createdAt: c.createdAt.toISOString(),
  sentAt: c.sentAt?.toISOString() ?? null,
  acknowledgedAt: c.acknowledgedAt?.toISOString() ?? null,
  completedAt: c.completedAt?.toISOString() ?? null,
  batchId: c.batchId,
  pushOutcome: c.pushOutcome,
  result: c.result,
  errorMessage: c.errorMessage,
});

export function exportCommands(deps: ExportDeps, res: Response, query: ExportCommandsQuery): Promise<void> {
  const filters: Prisma.Sql[] = [Prisma.sql`TRUE`];
  if (query.deviceId) filters.push(Prisma.sql`"deviceId" = ${query.deviceId}::uuid`);
  if (query.batchId) filters.push(Prisma.sql`"batchId" = ${query.batchId}::uuid`);
  if (query.status) filters.push(Prisma.sql`status = ${query.status}::"CommandStatus"`);
  if (query.type) filters.push(Prisma.sql`type = ${query.type}::"CommandType"`);
  const sql = Prisma.sql`SELECT * FROM "Command" WHERE ${Prisma.join(filters, " AND ")} ORDER BY "createdAt" DESC, "requestId"`;
  const keys = Object.keys(commandJson({ createdAt: new Date() } as Command)) as Array<keyof ReturnType<typeof commandJson>>;
  return streamExport<Command>(deps, res, query.format, {
    name: "commands",
    sql,
    columns: keys.map((key) => [key, (row: Command) => commandJson(row)[key]]),
    json: commandJson,
  });
}

// The stored entry as is: names resolved for display (actorName, targetName) would cost a lookup per row of a streamed export.
const auditJson = (row: AuditLog): Omit<AuditLogEntry, "actorName" | "targetName"> => ({
  id: row.id.toString(),
  at: row.at.toISOString(),
  actor: row.actor,
  action: row.action,
  targetType: row.targetType,
  targetId: row.targetId,
  ip: row.ip,
  details: (row.details as Record<string, unknown> | null) ?? null,
});

export function exportAuditLog(deps: ExportDeps, res: Response, query: ExportAuditLogQuery): Promise<void> {
  const filters: Prisma.Sql[] = [Prisma.sql`TRUE`];
  if (query.actor) filters.push(Prisma.sql`actor = ${query.actor}`);
  if (query.action) filters.push(Prisma.sql`action = ${query.action}`);
  if (query.targetType) filters.push(Prisma.sql`"targetType" = ${query.targetType}`);
  if (query.targetId) filters.push(Prisma.sql`"targetId" = ${query.targetId}`);
  if (query.from) filters.push(Prisma.sql`at >= ${new Date(query.from)}`);
  if (query.to) filters.push(Prisma.sql`at < ${new Date(query.to)}`);
  const sql = Prisma.sql`SELECT * FROM "AuditLog" WHERE ${Prisma.join(filters, " AND ")} ORDER BY at DESC, id DESC`;
  const keys = ["id", "at", "actor", "action", "targetType", "targetId", "ip", "details"] as const;
  return streamExport<AuditLog>(deps, res, query.format, {
    name: "audit-log",
    sql,
    columns: keys.map((key) => [key, (row: AuditLog) => auditJson(row)[key]]),
    json: auditJson,
  });
}
