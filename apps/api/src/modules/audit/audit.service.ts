import type { AuditLogEntry, AuditLogQuery, ListAuditLogResponse } from "@mdm/contracts";
import type { AppDeps } from "../../deps";
import type { AuditLog, Prisma } from "../../generated/prisma/client";
import { HttpError } from "../../lib/http-error";

function toEntry(row: AuditLog): AuditLogEntry {
  return {
    id: row.id.toString(),
    at: row.at.toISOString(),
    actor: row.actor,
    action: row.action,
    targetType: row.targetType,
    targetId: row.targetId,
    ip: row.ip,
    details: (row.details as Record<string, unknown> | null) ?? null,
  };
}

/** Audit entries, newest first, filtered; keyset pagination on (at, id), so deep pages stay fast and stable. */
export async function listAuditLog({ db }: Pick<AppDeps, "db">, query: AuditLogQuery): Promise<ListAuditLogResponse> {
  const cursor = query.cursor ? await db.auditLog.findUnique({ where: { id: BigInt(query.cursor) }, select: { id: true, at: true } }) : undefined;
  if (query.cursor && !cursor) throw new HttpError("validation_failed", "Unknown cursor", [{ path: "query.cursor", message: "No audit entry has this id" }]);
  const filters: Prisma.AuditLogWhereInput[] = [
    ...(query.actor ? [{ actor: query.actor }] : []),
    ...(query.action ? [{ action: query.action }] : []),
    ...(query.targetType ? [{ targetType: query.targetType }] : []),
    ...(query.targetId ? [{ targetId: query.targetId }] : []),
    ...(query.from ? [{ at: { gte: new Date(query.from) } }] : []),
    ...(query.to ? [{ at: { lt: new Date(query.to) } }] : []),
    ...(cursor ? [{ OR: [{ at: { lt: cursor.at } }, { at: cursor.at, id: { lt: cursor.id } }] }] : []),
  ];
  const rows = await db.auditLog.findMany({
    where: { AND: filters },
    orderBy: [{ at: "desc" }, { id: "desc" }],
    take: query.limit + 1,
  });
  const page = rows.slice(0, query.limit);
  return { entries: page.map(toEntry), nextCursor: rows.length > query.limit ? page[page.length - 1]!.id.toString() : null };
}
