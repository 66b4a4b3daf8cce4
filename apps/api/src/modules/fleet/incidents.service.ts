import type { AlertIncident as IncidentView, AlertIncidentDetail, ListIncidentsQuery, ListIncidentsResponse } from "@mdm/contracts";
import type { AppDeps } from "../../deps";
import type { AlertIncident } from "../../generated/prisma/client";
import { recordAudit } from "../../lib/audit";
import { HttpError } from "../../lib/http-error";
import { deviceDisplayName } from "./fleet-monitor";

const DEVICES_LISTED = 1000;

type Counts = { deviceCount: number; returnedCount: number; retiredCount: number };
const NO_DEVICES: Counts = { deviceCount: 0, returnedCount: 0, retiredCount: 0 };

function toView(incident: AlertIncident, { deviceCount, returnedCount, retiredCount }: Counts): IncidentView {
  const plural = `${deviceCount} device${deviceCount === 1 ? "" : "s"}`;
  return {
    id: incident.id,
    kind: incident.kind,
    // What happened, true for as long as the incident is listed (the counts say how it stands).
    title: incident.kind === "offline" ? `${plural} went offline` : `${plural} ran low on battery`,
    openedAt: incident.openedAt.toISOString(),
    resolvedAt: incident.resolvedAt?.toISOString() ?? null,
    acknowledgedAt: incident.acknowledgedAt?.toISOString() ?? null,
    acknowledgedBy: incident.acknowledgedBy,
    deviceCount,
    returnedCount,
    retiredCount,
  };
}

async function countsOf({ db }: Pick<AppDeps, "db">, incidentIds: string[]): Promise<Map<string, Counts>> {
  if (incidentIds.length === 0) return new Map();
  const rows = await db.$queryRaw<Array<{ incidentId: string } & Counts>>`
    SELECT "incidentId", count(*)::int AS "deviceCount",
      (count("returnedAt") FILTER (WHERE NOT retired))::int AS "returnedCount", (count(*) FILTER (WHERE retired))::int AS "retiredCount"
    FROM "AlertIncidentDevice" WHERE "incidentId" = ANY(${incidentIds}::uuid[]) GROUP BY "incidentId"`;
  return new Map(rows.map((row) => [row.incidentId, row]));
}

export async function listIncidents(deps: Pick<AppDeps, "db">, query: ListIncidentsQuery): Promise<ListIncidentsResponse> {
  const where = query.status === "open" ? { resolvedAt: null } : query.status === "resolved" ? { resolvedAt: { not: null } } : {};
  const incidents = await deps.db.alertIncident.findMany({ where, orderBy: [{ openedAt: "desc" }, { id: "desc" }], take: query.limit });
  const counts = await countsOf(
    deps,
    incidents.map((incident) => incident.id),
  );
  return { incidents: incidents.map((incident) => toView(incident, counts.get(incident.id) ?? NO_DEVICES)) };
}

export async function getIncident(deps: Pick<AppDeps, "db">, incidentId: string): Promise<AlertIncidentDetail> {
  const incident = await deps.db.alertIncident.findUnique({ where: { id: incidentId } });
  if (!incident) throw new HttpError("not_found", "No incident has this id");
  const members = await deps.db.alertIncidentDevice.findMany({
    where: { incidentId },
    // Those still away first, then by when they left.
    orderBy: [{ returnedAt: { sort: "desc", nulls: "first" } }, { since: "asc" }, { deviceId: "asc" }],
    take: DEVICES_LISTED,
  });
  const names = await deps.db.device.findMany({
    where: { id: { in: members.map((member) => member.deviceId) } },
    select: { id: true, alias: true, serialNumber: true, model: true },
  });
  const byId = new Map(names.map((device) => [device.id, device]));
  const counts = (await countsOf(deps, [incidentId])).get(incidentId) ?? NO_DEVICES;
  return {
    ...toView(incident, counts),
    devices: members.map((member) => ({
      deviceId: member.deviceId,
      // A device deleted since: the name it had when it joined.
      name: deviceDisplayName(byId.get(member.deviceId), member.name ?? member.deviceId),
      since: member.since.toISOString(),
      returnedAt: member.retired ? null : (member.returnedAt?.toISOString() ?? null),
      retiredAt: member.retired ? (member.returnedAt?.toISOString() ?? null) : null,
      batteryLevel: member.batteryLevel,
    })),
  };
}

/** Records who acknowledged the incident and when (once: a second acknowledgement is a 409), and audits it. */
export async function acknowledgeIncident(
  deps: Pick<AppDeps, "db" | "clock">,
  incidentId: string,
  actor: { name: string; ip?: string },
): Promise<IncidentView> {
  const now = deps.clock.now();
  const { count } = await deps.db.alertIncident.updateMany({
    where: { id: incidentId, acknowledgedAt: null },
    data: { acknowledgedAt: now, acknowledgedBy: actor.name },
  });
  if (count === 0) {
    const existing = await deps.db.alertIncident.findUnique({ where: { id: incidentId }, select: { acknowledgedBy: true } });
    if (!existing) throw new HttpError("not_found", "No incident has this id");
    throw new HttpError("conflict", `This incident was already acknowledged by ${existing.acknowledgedBy}`);
  }
  await recordAudit(deps.db, { actor: actor.name, action: "alert_incident.acknowledge", targetType: "alert_incident", targetId: incidentId, ip: actor.ip });
  const incident = await deps.db.alertIncident.findUniqueOrThrow({ where: { id: incidentId } });
  return toView(incident, (await countsOf(deps, [incidentId])).get(incidentId) ?? NO_DEVICES);
}
