import type { AlertSettings, HeartbeatRequest } from "@mdm/contracts";
import { recordAudit } from "../../lib/audit";
import type { AppDeps } from "../../deps";
import type { Device } from "../../generated/prisma/client";
import { enqueueMail, mailDelivery, wakeMailWorker } from "../../mail/outbox";
import { claimJobRun } from "../../jobs/maintenance";
import { createCommand } from "../commands/commands.service";
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
    const command = await createCommand(deps, { deviceId, type: "relaunch_app", payload: { packageName }, delivery: "auto" }, { name: AUTO_RELAUNCH_ACTOR }, { handedOver: true });
    queued.push(command.requestId);
  }
  return queued;
}

/**
 * Marks devices whose last heartbeat is older than the threshold offline (the UPDATE is
 * the claim: with many instances, each device goes offline, and is alerted on, once),
 * tells dashboards, and queues the alert mails.
 */
export async function sweepOffline(deps: AppDeps): Promise<Device[]> {
  const settings = await getAlertSettings(deps);
  const now = deps.clock.now();
  const cutoff = new Date(now.getTime() - settings.offlineAfterSeconds * 1000);
  const wentOffline = await deps.db.$queryRaw<Device[]>`
    UPDATE "Device" SET online = false, "offlineSince" = ${now}
    WHERE online AND "lastSeenAt" < ${cutoff}
    RETURNING *`;
  for (const device of wentOffline) deps.bus.publish({ kind: "device_state", state: toLiveState(device) });
  if (wentOffline.length > 0 && settings.enabled) await sendOfflineAlerts(deps, settings, wentOffline);
  return wentOffline;
}

async function alertRecipients(deps: AppDeps, settings: AlertSettings): Promise<string[]> {
  if (settings.recipients.length > 0) return settings.recipients;
  const admins = await deps.db.user.findMany({ where: { role: "admin", disabledAt: null }, select: { email: true } });
  return admins.map((admin) => admin.email);
}

const LISTED_IN_MAIL = 50;

function describe(device: Device): string {
  const name = device.alias ?? device.model ?? "Device";
  return `${name} (${device.id}), last seen ${device.lastSeenAt?.toISOString() ?? "never"}`;
}

/**
 * One mail per sweep lists every device that went offline and was not alerted on within
 * the cooldown, so a flapping device does not spam and an outage is one mail, not 500.
 */
async function sendOfflineAlerts(deps: AppDeps, settings: AlertSettings, devices: Device[]): Promise<void> {
  const recipients = await alertRecipients(deps, settings);
  if (recipients.length === 0) {
    deps.logger.warn("offline alert skipped: no recipients and no admin users", { devices: devices.length });
    return;
  }
  const since = new Date(deps.clock.now().getTime() - settings.cooldownMinutes * 60_000);
  const recentlyAlerted = new Set(
    (
      await deps.db.alert.findMany({
        where: { kind: "device_offline", deviceId: { in: devices.map((device) => device.id) }, sentAt: { gte: since } },
        select: { deviceId: true },
      })
    ).map((alert) => alert.deviceId),
  );
  const toAlert = devices.filter((device) => !recentlyAlerted.has(device.id));
  if (toAlert.length > 0) {
    const subject = toAlert.length === 1 ? `Device offline: ${toAlert[0]!.alias ?? toAlert[0]!.model ?? toAlert[0]!.id}` : `${toAlert.length} devices went offline`;
    const lines = toAlert.slice(0, LISTED_IN_MAIL).map(describe);
    if (toAlert.length > LISTED_IN_MAIL) lines.push(`…and ${toAlert.length - LISTED_IN_MAIL} more.`);
    const text = `No heartbeat for more than ${Math.round(settings.offlineAfterSeconds / 60)} minutes:\n\n${lines.join("\n")}\n`;
    const mail = await deps.db.$transaction(async (tx) => {
      const queued = await enqueueMail(tx, "alert", { to: recipients, subject, text }, deps.clock.now());
      await tx.alert.createMany({
        data: toAlert.map((device) => ({ kind: "device_offline" as const, deviceId: device.id, subject, recipients, outboxMailId: queued.id })),
      });
      return queued;
    });
    wakeMailWorker(deps);
    await recordAudit(deps.db, {
      actor: ALERT_ACTOR,
      action: "alert.mail_sent",
      targetType: "alert",
      details: { kind: "device_offline", subject, recipients, mailId: mail.id.toString(), deviceIds: toAlert.slice(0, LISTED_IN_MAIL).map((device) => device.id), devices: toAlert.length },
    });
    deps.logger.info("offline alert raised", { devices: toAlert.length, mailId: mail.id.toString(), mail: mailDelivery(deps) });
  }
  if (settings.groupOfflinePercent !== null) await sendGroupAlerts(deps, settings, devices, recipients, since);
}

async function sendGroupAlerts(deps: AppDeps, settings: AlertSettings, devices: Device[], recipients: string[], since: Date): Promise<void> {
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
      const mail = await enqueueMail(tx, "alert", { to: recipients, subject, text: `${subject} (threshold ${settings.groupOfflinePercent}%).\n` }, deps.clock.now());
      await tx.alert.create({ data: { kind: "group_offline", group, subject, recipients, outboxMailId: mail.id } });
      return mail;
    });
    wakeMailWorker(deps);
    await recordAudit(deps.db, { actor: ALERT_ACTOR, action: "alert.mail_sent", targetType: "group", targetId: group, details: { kind: "group_offline", subject, recipients, mailId: mail.id.toString() } });
  }
}
