import type { AlertSettings, HeartbeatRequest } from "@mdm/contracts";
import { recordAudit } from "../../lib/audit";
import type { AppDeps } from "../../deps";
import { randomUUID } from "node:crypto";
import { type Device, Prisma } from "../../generated/prisma/client";
import { enqueueMail, mailDelivery, wakeMailWorker } from "../../mail/outbox";
import { claimJobRun } from "../../jobs/maintenance";
import { createCommand } from "../commands/commands.service";
import { deviceEventData, emitWebhookEvents } from "../webhooks/webhook-events";
import { recordAlertEvents } from "./alert-events";
import { getAlertSettings, toLiveState } from "./fleet.service";

export const AUTO_RELAUNCH_ACTOR = "policy:auto-relaunch";
/** The audit actor of the mails the offline monitor sends by itself. */
export const ALERT_ACTOR = "system:offline-monitor";

/**
 * Auto-relaunch: for each app a policy says must run on this device (directly or through
 * one of its groups), a heartbeat reporting it stopped or missing queues a relaunch, at
 * most one per debounce window: the window is claimed atomically, so concurrent heartbeats
 * (or instances) queue one relaunch, not one each. The heartbeat's answer carries it.
 * Returns the requestIds it queued.
 */
export async function enforceAppPolicies(deps: AppDeps, deviceId: string, mustRun: string[], apps: NonNullable<HeartbeatRequest["apps"]>): Promise<string[]> {
  const queued: string[] = [];
  for (const packageName of mustRun) {
    if (apps.some((app) => app.packageName === packageName && app.running)) continue;
    if (!(await claimJobRun(deps, `auto-relaunch:${deviceId}:${packageName}`, deps.env.AUTO_RELAUNCH_DEBOUNCE_SECONDS * 1000))) continue;
    deps.logger.info("auto-relaunch", { deviceId, packageName });
    const command = await createCommand(
      deps,
      { deviceId, type: "relaunch_app", payload: { packageName }, delivery: "auto" },
      { name: AUTO_RELAUNCH_ACTOR },
      { handedOver: true },
    );
    queued.push(command.requestId);
  }
  return queued;
}

type Tx = Prisma.TransactionClient;

// Devices a sweep step takes, at most, of each kind (gone offline, battery low): a whole
// fleet going dark at once (a site's network, or the low-battery alert turned on over
// thousands of low batteries) is swept in steps, each a short transaction and a short turn
// of the event loop, instead of one holding 100,000 rows and their events in memory.
// A step holds the rows it marks offline locked until it commits (its events and incident
// rows are written first), and a heartbeat of one of them waits, with its whole batch: at
// 1,000 a step held them 250-400 ms, and heartbeats of devices coming back after a gap
// waited 130-280 ms (benchmark, 100,000 devices at 1,000 heartbeats/s).
export const SWEEP_STEP_DEVICES = 200;
// Devices one sweep marks offline at most, in steps; the rest go at the next sweep.
const SWEEP_MAX_STEPS = 100;

export type SweptDevice = Pick<Device, "id" | "groups">;

/**
 * One sweep, in steps of one transaction each: records the return of devices in open
 * offline incidents, marks devices whose last heartbeat is older than the threshold offline
 * (the UPDATE is the claim: with many instances, each device goes offline once) and groups
 * them into an incident (one for the whole wave, however many steps), does the same for low
 * batteries, resolves incidents whose devices are all back, then tells dashboards and mails
 * the alert digest once it is due. Returns the devices that went offline.
 */
export async function sweepOffline(deps: AppDeps, stepDevices = SWEEP_STEP_DEVICES): Promise<SweptDevice[]> {
  if (!Number.isInteger(stepDevices) || stepDevices < 1) throw new RangeError("stepDevices must be a positive integer");
  const settings = await getAlertSettings(deps);
  const now = deps.clock.now();
  const cutoff = new Date(now.getTime() - settings.offlineAfterSeconds * 1000);
  const wentOffline: SweptDevice[] = [];
  // Low batteries are read in id order, each step after the last one's: a step does not
  // read again the devices the steps before it put in the incident.
  let lowAfter: string | null = null;
  // Once a step finds fewer than a step's worth, none are left: the steps still marking
  // devices offline do not read them again (a pass over every low battery each time).
  let lowDone = false;
  // Found once per sweep, in one pass over the narrow DeviceListing (no index may hold
  // lastSeenAt: heartbeats must stay HOT updates), then taken a step at a time by id. A step
  // that searched for its own candidates scanned the table again each time, from its start
  // past the rows the steps before it had swept, holding the rows it had locked meanwhile.
  // (Should the listing have drifted from Device, each step's check on Device decides, and
  // the hourly listing repair puts the listing right.)
  const overdue = await deps.db.$queryRaw<Array<{ id: string }>>`
    SELECT id FROM "DeviceListing" WHERE online AND "lastSeenAt" < ${cutoff} LIMIT ${stepDevices * SWEEP_MAX_STEPS}`;
  for (let first = true, more = true, next = 0; more; first = false, next += stepDevices) {
    const candidates = overdue.slice(next, next + stepDevices).map((row) => row.id);
    const step = await deps.db.$transaction(async (tx) => {
      await lockAlertState(tx);
      // Returns and recoveries read every open incident device: once per sweep.
      if (first) {
        await recordReturns(tx, now);
        await recordBatteryRecoveries(tx, settings, now);
      }
      // The slower query comes first: the devices marked offline below stay locked until
      // commit, and a heartbeat of one of them waits that long (with its whole batch).
      const low = lowDone ? [] : await joinLowBatteries(tx, settings, now, { onlineSince: cutoff, after: lowAfter, limit: stepDevices });
      // A device whose row is locked right now (a heartbeat writing it, most often) is left
      // for the next sweep rather than waited for while this step holds the rows it claimed.
      // Each candidate's Device row decides, as it is now: a heartbeat may have written it
      // since the candidates were read.
      const offline = candidates.length === 0 ? [] : await tx.$queryRaw<Device[]>(markOffline(candidates, cutoff, now));
      await emitWebhookEvents(
        tx,
        offline.map((device) => ({
          type: "device.offline",
          at: now,
          data: { ...deviceEventData(device), lastSeenAt: device.lastSeenAt?.toISOString() ?? null, offlineSince: now.toISOString() },
        })),
      );
      await joinIncident(
        tx,
        "offline",
        offline.map((device) => ({ deviceId: device.id, batteryLevel: null })),
        settings,
        now,
      );
      const more = next + stepDevices < overdue.length || (!lowDone && low.length === stepDevices);
      if (!more)
        await tx.$executeRaw`
          UPDATE "AlertIncident" i SET "resolvedAt" = ${now}
          WHERE "resolvedAt" IS NULL AND NOT EXISTS (SELECT 1 FROM "AlertIncidentDevice" d WHERE d."incidentId" = i.id AND d."returnedAt" IS NULL)`;
      return { offline, lastLow: low.at(-1)?.deviceId, lowDone: low.length < stepDevices, more };
    });
    for (const device of step.offline) {
      deps.bus.publish({ kind: "device_state", state: toLiveState(device) });
      wentOffline.push({ id: device.id, groups: device.groups });
    }
    lowAfter = step.lastLow ?? lowAfter;
    lowDone ||= step.lowDone;
    more = step.more;
  }
  if (wentOffline.length > 0 && settings.enabled && settings.groupOfflinePercent !== null) {
    const recipients = await alertRecipients(deps, settings);
    if (recipients.length > 0) await sendGroupAlerts(deps, settings, wentOffline, recipients, new Date(now.getTime() - settings.cooldownMinutes * 60_000));
  }
  await sendDueAlertDigest(deps);
  return wentOffline;
}

/**
 * Serializes the sweeps and digests of all instances: both hold the alert settings' row
 * lock for their transaction, so two instances never open two incidents for one wave nor
 * mail one window's events twice.
 */
async function lockAlertState(tx: Tx): Promise<void> {
  await tx.$queryRaw`SELECT id FROM "AlertSettings" WHERE id = 1 FOR UPDATE`;
}

/** Devices of open offline incidents that heartbeat again (or were retired or deleted) are back. */
async function recordReturns(tx: Tx, now: Date): Promise<void> {
  const returned = await tx.$queryRaw<Array<{ deviceId: string; incidentId: string; returnedAt: Date }>>`
    UPDATE "AlertIncidentDevice" d SET "returnedAt" = COALESCE(GREATEST(v."lastSeenAt", d.since), ${now})
    FROM "AlertIncident" i, "Device" v
    WHERE i.id = d."incidentId" AND i.kind = 'offline' AND i."resolvedAt" IS NULL AND d."returnedAt" IS NULL
      AND v.id = d."deviceId" AND v.online
    RETURNING d."deviceId", d."incidentId", d."returnedAt"`;
  // A device retired or deleted while away never comes back: it no longer keeps its
  // incident (of either kind) open, and is counted apart from those that came back.
  const retired = await tx.$queryRaw<Array<{ deviceId: string; incidentId: string }>>`
    UPDATE "AlertIncidentDevice" d SET "returnedAt" = ${now}, retired = true
    WHERE d."returnedAt" IS NULL AND NOT EXISTS (SELECT 1 FROM "Device" v WHERE v.id = d."deviceId" AND v."retiredAt" IS NULL)
    RETURNING d."deviceId", d."incidentId"`;
  await recordAlertEvents(tx, [
    ...returned.map((row) => ({ type: "device.online" as const, deviceId: row.deviceId, incidentId: row.incidentId, at: row.returnedAt })),
    ...retired.map((row) => ({ type: "device.retired" as const, deviceId: row.deviceId, incidentId: row.incidentId, at: now })),
  ]);
}

/**
 * Marks offline those of `candidates` (device ids) still online and last heard before
 * `cutoff`, each found by its primary key (the outer `id = ANY` too: without it the
 * planner joined the locked rows to a scan of the whole table), skipping a row locked now.
 */
export function markOffline(candidates: string[], cutoff: Date, now: Date): Prisma.Sql {
  return Prisma.sql`
    UPDATE "Device" SET online = false, "offlineSince" = ${now}
    WHERE id = ANY(${candidates}::uuid[]) AND id IN (
      SELECT id FROM "Device" WHERE id = ANY(${candidates}::uuid[]) AND online AND "lastSeenAt" < ${cutoff}
      FOR NO KEY UPDATE SKIP LOCKED)
    RETURNING *`;
}

/**
 * Online devices below the battery threshold not already in an open low-battery incident
 * (those the same sweep is about to mark offline, last heard before `onlineSince`, are not),
 * in id order after `after`.
 * `OFFSET 0` keeps the NOT EXISTS a probe of the (deviceId, returnedAt) index per device:
 * flattened into an anti join, the planner, misled by statistics that lag a fast-growing
 * incident table, chose a nested loop over a materialized list of every open incident
 * device (83 million comparisons, 12 s, at 100,000 devices in the benchmark), and heartbeats
 * of the devices the sweep had just marked offline waited on it.
 */
export function lowBatteryCandidates(threshold: number, onlineSince: Date, after: string | null, limit: number): Prisma.Sql {
  return Prisma.sql`
    SELECT v.id AS "deviceId", v."batteryLevel" FROM "DeviceListing" v
    WHERE v.online AND v."lastSeenAt" >= ${onlineSince} AND v."batteryLevel" < ${threshold}::int
      AND (${after}::uuid IS NULL OR v.id > ${after}::uuid)
      AND NOT EXISTS (
        SELECT 1 FROM "AlertIncidentDevice" d JOIN "AlertIncident" i ON i.id = d."incidentId"
        WHERE d."deviceId" = v.id AND i.kind = 'low_battery' AND d."returnedAt" IS NULL
        OFFSET 0)
    ORDER BY v.id
    LIMIT ${limit}`;
}

/** Devices in open low-battery incidents charged back to the threshold (or with the alert turned off) recover. */
async function recordBatteryRecoveries(tx: Tx, settings: AlertSettings, now: Date): Promise<void> {
  const threshold = settings.lowBatteryPercent;
  const recovered = await tx.$queryRaw<Array<{ deviceId: string; incidentId: string }>>`
    UPDATE "AlertIncidentDevice" d SET "returnedAt" = ${now}
    FROM "AlertIncident" i, "Device" v
    WHERE i.id = d."incidentId" AND i.kind = 'low_battery' AND i."resolvedAt" IS NULL AND d."returnedAt" IS NULL
      AND v.id = d."deviceId" AND (${threshold}::int IS NULL OR v."batteryLevel" IS NULL OR v."batteryLevel" >= ${threshold}::int)
    RETURNING d."deviceId", d."incidentId"`;
  await recordAlertEvents(
    tx,
    recovered.map((row) => ({ type: "device.battery_recovered" as const, deviceId: row.deviceId, incidentId: row.incidentId, at: now })),
  );
}

/**
 * Up to `limit` online devices reporting a battery below the threshold (see
 * lowBatteryCandidates) join a low-battery incident, once until they recover. Returns them.
 */
async function joinLowBatteries(
  tx: Tx,
  settings: AlertSettings,
  now: Date,
  page: { onlineSince: Date; after: string | null; limit: number },
): Promise<Array<{ deviceId: string; batteryLevel: number }>> {
  if (settings.lowBatteryPercent === null) return [];
  const low = await tx.$queryRaw<Array<{ deviceId: string; batteryLevel: number }>>(
    lowBatteryCandidates(settings.lowBatteryPercent, page.onlineSince, page.after, page.limit),
  );
  await joinIncident(tx, "low_battery", low, settings, now);
  return low;
}

/**
 * Adds devices to the newest open incident of the kind whose latest device joined less
 * than one alert window ago, or opens one: a wave of devices going offline over several
 * sweeps is one incident. A device already in it (it came back and left again) is away again.
 */
async function joinIncident(
  tx: Tx,
  kind: "offline" | "low_battery",
  devices: Array<{ deviceId: string; batteryLevel: number | null }>,
  settings: AlertSettings,
  now: Date,
): Promise<void> {
  if (devices.length === 0) return;
  const windowStart = new Date(now.getTime() - settings.alertWindowMinutes * 60_000);
  const open = await tx.alertIncident.findFirst({ where: { kind, resolvedAt: null, lastJoinedAt: { gte: windowStart } }, orderBy: { lastJoinedAt: "desc" } });
  const incidentId = open?.id ?? randomUUID();
  if (open) await tx.alertIncident.update({ where: { id: open.id }, data: { lastJoinedAt: now } });
  else await tx.alertIncident.create({ data: { id: incidentId, kind, openedAt: now, lastJoinedAt: now } });
  await tx.$executeRaw`
    INSERT INTO "AlertIncidentDevice" ("incidentId", "deviceId", since, "batteryLevel", name)
    SELECT ${incidentId}::uuid, d."deviceId", ${now}, d."batteryLevel", COALESCE(v.alias, v."serialNumber", v.model)
    FROM unnest(${devices.map((device) => device.deviceId)}::uuid[], ${devices.map((device) => device.batteryLevel)}::int[]) AS d("deviceId", "batteryLevel")
      LEFT JOIN "Device" v ON v.id = d."deviceId"
    ON CONFLICT ("incidentId", "deviceId")
      DO UPDATE SET since = EXCLUDED.since, "returnedAt" = NULL, retired = false, "batteryLevel" = EXCLUDED."batteryLevel", name = EXCLUDED.name`;
  await recordAlertEvents(
    tx,
    devices.map((device) =>
      kind === "offline"
        ? { type: "device.offline" as const, deviceId: device.deviceId, incidentId, at: now }
        : { type: "device.battery_low" as const, deviceId: device.deviceId, incidentId, at: now, batteryLevel: device.batteryLevel ?? 0 },
    ),
  );
}

async function alertRecipients(deps: Pick<AppDeps, "db">, settings: AlertSettings): Promise<string[]> {
  if (settings.recipients.length > 0) return settings.recipients;
  const admins = await deps.db.user.findMany({ where: { role: "admin", disabledAt: null }, select: { email: true } });
  return admins.map((admin) => admin.email);
}

const LISTED_PER_SECTION = 50;
const EVENTS_PER_DIGEST = 5000;

const SECTIONS = [
  { kind: "device_offline", title: "Went offline" },
  { kind: "device_online", title: "Back online" },
  { kind: "battery_low", title: "Low battery" },
  { kind: "battery_recovered", title: "Battery recovered" },
  { kind: "device_retired", title: "Retired or deleted while away" },
] as const;

type DigestEvent = { kind: (typeof SECTIONS)[number]["kind"]; deviceId: string; at: Date; batteryLevel: number | null };
type DeviceName = { id: string; alias: string | null; serialNumber: string | null; model: string | null };

export function deviceDisplayName(device: DeviceName | undefined, deviceId: string): string {
  return device?.alias ?? device?.serialNumber ?? device?.model ?? deviceId;
}

/** The digest's subject and text: one section per kind of event, each listing at most 50 devices. */
export function composeDigest(events: DigestEvent[], names: Map<string, DeviceName>, windowMinutes: number, webUrl: string): { subject: string; text: string } {
  const counts = SECTIONS.map((section) => ({ ...section, events: events.filter((event) => event.kind === section.kind) })).filter(
    (section) => section.events.length > 0,
  );
  const plural = (count: number) => `${count} device${count === 1 ? "" : "s"}`;
  const subject = `Alerts: ${counts.map((section) => `${plural(section.events.length)} ${section.title.toLowerCase()}`).join(", ")}`;
  // Devices by name, each with its page's link rather than a bare id; times readable, in UTC.
  const lines = [`What happened in the last alert window (${windowMinutes} min). Incidents: ${webUrl}/alerts`, ""];
  for (const section of counts) {
    lines.push(`${section.title} (${section.events.length}):`);
    for (const event of section.events.slice(0, LISTED_PER_SECTION)) {
      const name = deviceDisplayName(names.get(event.deviceId), event.deviceId);
      const battery = event.kind === "battery_low" && event.batteryLevel !== null ? `, battery ${event.batteryLevel}%` : "";
      lines.push(`  ${name}, ${event.at.toISOString().slice(0, 19).replace("T", " ")} UTC${battery}`, `    ${webUrl}/devices/${event.deviceId}`);
    }
    if (section.events.length > LISTED_PER_SECTION) lines.push(`  …and ${section.events.length - LISTED_PER_SECTION} more.`);
    lines.push("");
  }
  return { subject, text: lines.join("\n") };
}

/**
 * Mails the pending alert events as one digest once the oldest is one alert window old
 * (then the next window starts with the next event). The events are rows and the mail is
 * written to the outbox in the same transaction that marks them digested, under the alert
 * state lock: with several instances, a window's events are mailed exactly once.
 * Returns the digest's alert id, if one was mailed.
 */
export async function sendDueAlertDigest(deps: AppDeps): Promise<string | null> {
  const settings = await getAlertSettings(deps);
  const recipients = settings.enabled ? await alertRecipients(deps, settings) : [];
  const now = deps.clock.now();
  const mailed = await deps.db.$transaction(async (tx) => {
    await lockAlertState(tx);
    const oldest = await tx.alertEvent.findFirst({ where: { digestedAt: null }, orderBy: { at: "asc" }, select: { at: true } });
    if (!oldest || oldest.at.getTime() > now.getTime() - settings.alertWindowMinutes * 60_000) return null;
    const events = await tx.alertEvent.findMany({ where: { digestedAt: null }, orderBy: { id: "asc" }, take: EVENTS_PER_DIGEST });
    const ids = events.map((event) => event.id);
    if (recipients.length === 0) {
      // Alert mails are off (or nobody would receive them): the events stay listed in their incidents.
      await tx.alertEvent.updateMany({ where: { id: { in: ids } }, data: { digestedAt: now } });
      return null;
    }
    const deviceIds = [...new Set(events.map((event) => event.deviceId))];
    const devices = await tx.device.findMany({ where: { id: { in: deviceIds } }, select: { id: true, alias: true, serialNumber: true, model: true } });
    const names = new Map<string, DeviceName>(devices.map((device) => [device.id, device]));
    // Deleted since: by the name the incident recorded when the device joined it.
    const deleted = deviceIds.filter((id) => !names.has(id));
    const remembered = await tx.alertIncidentDevice.findMany({
      where: { deviceId: { in: deleted }, name: { not: null } },
      select: { deviceId: true, name: true },
    });
    for (const { deviceId, name } of remembered) names.set(deviceId, { id: deviceId, alias: name, serialNumber: null, model: null });
    const { subject, text } = composeDigest(events, names, settings.alertWindowMinutes, deps.env.WEB_URL);
    const mail = await enqueueMail(tx, "alert", { to: recipients, subject, text }, now);
    const alert = await tx.alert.create({ data: { kind: "digest", subject, recipients, outboxMailId: mail.id, sentAt: now } });
    await tx.alertEvent.updateMany({ where: { id: { in: ids } }, data: { digestedAt: now, alertId: alert.id } });
    await recordAlertEvents(tx, [
      { type: "alert.sent", alertId: alert.id.toString(), subject, recipients, mailId: mail.id.toString(), at: now, events: events.length },
    ]);
    await recordAudit(tx, {
      actor: ALERT_ACTOR,
      action: "alert.mail_sent",
      targetType: "alert",
      targetId: alert.id.toString(),
      details: { kind: "digest", subject, recipients, mailId: mail.id.toString(), events: events.length },
    });
    return { alertId: alert.id.toString(), mailId: mail.id.toString(), events: events.length };
  });
  if (!mailed) return null;
  wakeMailWorker(deps);
  deps.logger.info("alert digest raised", { ...mailed, mail: mailDelivery(deps) });
  return mailed.alertId;
}
async function sendGroupAlerts(deps: AppDeps, settings: AlertSettings, devices: SweptDevice[], recipients: string[], since: Date): Promise<void> {
  const groups = [...new Set(devices.flatMap((device) => device.groups))];
  for (const group of groups) {
    const [total, offline] = await Promise.all([
      deps.db.device.count({ where: { groups: { has: group }, retiredAt: null } }),
      deps.db.device.count({ where: { groups: { has: group }, online: false, retiredAt: null } }),
    ]);
    if (total === 0 || (offline * 100) / total < settings.groupOfflinePercent!) continue;
    const recent = await deps.db.alert.findFirst({ where: { kind: "group_offline", group, sentAt: { gte: since } }, select: { id: true } });
    if (recent) continue;
    const subject = `Group ${group}: ${offline} of ${total} devices offline`;
    const mail = await deps.db.$transaction(async (tx) => {
      const mail = await enqueueMail(
        tx,
        "alert",
        { to: recipients, subject, text: `${subject} (threshold ${settings.groupOfflinePercent}%).\n` },
        deps.clock.now(),
      );
      await tx.alert.create({ data: { kind: "group_offline", group, subject, recipients, outboxMailId: mail.id } });
      return mail;
    });
    wakeMailWorker(deps);
    await recordAudit(deps.db, {
      actor: ALERT_ACTOR,
      action: "alert.mail_sent",
      targetType: "group",
      targetId: group,
      details: { kind: "group_offline", subject, recipients, mailId: mail.id.toString() },
    });
  }
}
