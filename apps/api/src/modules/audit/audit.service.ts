import type { AuditLogEntry, AuditLogQuery, ListAuditLogResponse } from "@mdm/contracts";
import type { AppDeps } from "../../deps";
import type { AuditLog, Prisma } from "../../generated/prisma/client";
import { HttpError } from "../../lib/http-error";

function toEntry(row: AuditLog, names: Names): AuditLogEntry {
  return {
    id: row.id.toString(),
    at: row.at.toISOString(),
    actor: row.actor,
    actorName: actorName(row.actor, names),
    action: row.action,
    targetType: row.targetType,
    targetId: row.targetId,
    targetName: row.targetType && row.targetId ? (names.get(`${row.targetType}:${row.targetId}`) ?? null) : null,
    ip: row.ip,
    details: (row.details as Record<string, unknown> | null) ?? null,
  };
}

/** Names by `<type>:<id>`, for the targets and actors of a page of entries. */
type Names = Map<string, string>;

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

const SYSTEM_ACTORS: Record<string, string> = {
  "system:offline-monitor": "Offline monitor",
  "policy:auto-relaunch": "Auto-relaunch policy",
  "legacy-enrollment-key": "Legacy enrollment key",
  anonymous: "Anonymous",
};

function actorName(actor: string, names: Names): string {
  if (SYSTEM_ACTORS[actor]) return SYSTEM_ACTORS[actor];
  if (actor.startsWith("admin-key:")) return `Admin key (ADMIN_KEY ${actor.slice("admin-key:".length)})`;
  if (actor.startsWith("enrollment-token:")) {
    const label = names.get(`enrollment_token:${actor.slice("enrollment-token:".length)}`);
    return label ? `Enrollment token ${label}` : "Enrollment token";
  }
  return actor;
}

/** Looks up the names of a page's devices, users and enrollment tokens: three queries at most, whatever the page size. */
async function namesOf(db: AppDeps["db"], rows: AuditLog[]): Promise<Names> {
  const ids = (type: string) => [
    ...new Set(rows.filter((row) => row.targetType === type && row.targetId && UUID.test(row.targetId)).map((row) => row.targetId!)),
  ];
  const tokenIds = [
    ...new Set([
      ...ids("enrollment_token"),
      ...rows.map((row) => (row.actor.startsWith("enrollment-token:") ? row.actor.slice("enrollment-token:".length) : "")).filter((id) => UUID.test(id)),
    ]),
  ];
  const [devices, users, tokens] = await Promise.all([
    db.device.findMany({ where: { id: { in: ids("device") } }, select: { id: true, alias: true, serialNumber: true, model: true } }),
    db.user.findMany({ where: { id: { in: ids("user") } }, select: { id: true, email: true } }),
    db.enrollmentToken.findMany({ where: { id: { in: tokenIds } }, select: { id: true, label: true } }),
  ]);
  const names: Names = new Map();
  for (const device of devices) {
    const name = device.alias ?? device.serialNumber ?? device.model;
    if (name) names.set(`device:${device.id}`, name);
  }
  for (const user of users) names.set(`user:${user.id}`, user.email);
  for (const token of tokens) if (token.label) names.set(`enrollment_token:${token.id}`, token.label);
  return names;
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
  const names = await namesOf(db, page);
  return { entries: page.map((row) => toEntry(row, names)), nextCursor: rows.length > query.limit ? page[page.length - 1]!.id.toString() : null };
}
