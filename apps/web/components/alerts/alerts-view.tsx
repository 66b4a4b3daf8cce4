"use client";

import { type AlertSettings, UpdateAlertSettingsRequest } from "@mdm/contracts";
import Link from "next/link";
import { useEffect, useState } from "react";
import { usePermissions } from "@/components/layout/session-context";
import { IncidentsSection } from "@/components/alerts/incidents-section";
import { MailStatusBadge } from "@/components/mail/mail-status-badge";
import { PageHeader } from "@/components/page-header";
import { EmptyState, ErrorState } from "@/components/states";
import { Badge } from "@/components/ui/badge";
import { Button } from "@/components/ui/button";
import { Card, CardContent, CardDescription, CardHeader, CardTitle } from "@/components/ui/card";
import { Checkbox } from "@/components/ui/checkbox";
import { Input } from "@/components/ui/input";
import { Label } from "@/components/ui/label";
import { Skeleton } from "@/components/ui/skeleton";
import { toast } from "@/components/ui/sonner";
import { Table, TableBody, TableCell, TableHead, TableHeader, TableRow } from "@/components/ui/table";
import { Textarea } from "@/components/ui/textarea";
import { errorMessage } from "@/lib/api";
import { formatDateTime, shortId } from "@/lib/format";
import { updateAlertSettings, useAlertSettings } from "@/lib/swr/use-alert-settings";
import { useAlerts } from "@/lib/swr/use-alerts";

type SettingsForm = {
  enabled: boolean;
  offlineSeconds: string;
  recipients: string;
  groupShareOn: boolean;
  groupShare: string;
  cooldownMinutes: string;
  windowMinutes: string;
  lowBatteryOn: boolean;
  lowBattery: string;
};

function toForm(settings: AlertSettings): SettingsForm {
  return {
    enabled: settings.enabled,
    // Seconds, as the API keeps it: the default (two missed heartbeats and a grace, 150 s)
    // is no whole number of minutes, and a form in minutes changed it on every save.
    offlineSeconds: String(settings.offlineAfterSeconds),
    recipients: settings.recipients.join("\n"),
    groupShareOn: settings.groupOfflinePercent !== null,
    groupShare: String(settings.groupOfflinePercent ?? 50),
    cooldownMinutes: String(settings.cooldownMinutes),
    windowMinutes: String(settings.alertWindowMinutes),
    lowBatteryOn: settings.lowBatteryPercent !== null,
    lowBattery: String(settings.lowBatteryPercent ?? 15),
  };
}

function SettingsCard({ settings, editable }: { settings: AlertSettings; editable: boolean }) {
  const [form, setForm] = useState(() => toForm(settings));
  const [error, setError] = useState<string>();
  const [saving, setSaving] = useState(false);
  useEffect(() => setForm(toForm(settings)), [settings]);
  const set = (changes: Partial<SettingsForm>) => setForm((current) => ({ ...current, ...changes }));

  const save = async (event: React.FormEvent) => {
    event.preventDefault();
    const body = UpdateAlertSettingsRequest.safeParse({
      enabled: form.enabled,
      offlineAfterSeconds: Number(form.offlineSeconds),
      recipients: form.recipients
        .split(/[\s,;]+/)
        .map((recipient) => recipient.trim())
        .filter(Boolean),
      groupOfflinePercent: form.groupShareOn ? Number(form.groupShare) : null,
      cooldownMinutes: Number(form.cooldownMinutes),
      alertWindowMinutes: Number(form.windowMinutes),
      lowBatteryPercent: form.lowBatteryOn ? Number(form.lowBattery) : null,
    });
    if (!body.success) {
      const issue = body.error.issues[0];
      return setError(issue ? `${issue.path.join(".")}: ${issue.message}` : "Invalid settings");
    }
    setSaving(true);
    setError(undefined);
    try {
      await updateAlertSettings(body.data);
      toast.success("Alert settings saved");
    } catch (caught) {
      setError(errorMessage(caught));
    } finally {
      setSaving(false);
    }
  };

  return (
    <Card>
      <CardHeader>
        <CardTitle>Alert settings</CardTitle>
        <CardDescription>
          One digest mail per alert window lists the devices that went offline, came back or ran low on battery; a group alert when too much of a group is
          offline.
        </CardDescription>
      </CardHeader>
      <CardContent>
        <form onSubmit={save}>
          <fieldset disabled={!editable} className="grid gap-4 sm:grid-cols-2">
            <Label className="sm:col-span-2">
              <Checkbox checked={form.enabled} onCheckedChange={(checked) => set({ enabled: checked === true })} />
              Send alert mails
            </Label>
            <div className="flex flex-col gap-2">
              <Label htmlFor="offline-seconds">A device is offline after (seconds without heartbeat)</Label>
              <Input
                id="offline-seconds"
                type="number"
                min={60}
                max={604_800}
                value={form.offlineSeconds}
                onChange={(event) => set({ offlineSeconds: event.target.value })}
              />
            </div>
            <div className="flex flex-col gap-2">
              <Label htmlFor="window-minutes">Alert window: one digest mail at most every (minutes)</Label>
              <Input
                id="window-minutes"
                type="number"
                min={1}
                max={1440}
                value={form.windowMinutes}
                onChange={(event) => set({ windowMinutes: event.target.value })}
              />
            </div>
            <div className="flex flex-col gap-2">
              <Label htmlFor="cooldown-minutes">At most one group alert per group every (minutes)</Label>
              <Input
                id="cooldown-minutes"
                type="number"
                min={1}
                max={10_080}
                value={form.cooldownMinutes}
                onChange={(event) => set({ cooldownMinutes: event.target.value })}
              />
            </div>
            <div className="flex flex-col gap-2 sm:col-span-2">
              <Label htmlFor="recipients">Recipients (one per line; empty: every active admin)</Label>
              <Textarea id="recipients" value={form.recipients} onChange={(event) => set({ recipients: event.target.value })} placeholder="ops@example.com" />
            </div>
            <OptionalPercent
              label="Alert when this share of a group is offline"
              inputLabel="Group offline share in percent"
              max={100}
              on={form.groupShareOn}
              value={form.groupShare}
              onToggle={(groupShareOn) => set({ groupShareOn })}
              onChange={(groupShare) => set({ groupShare })}
            />
            <OptionalPercent
              label="Alert when a device's battery is below"
              inputLabel="Low battery threshold in percent"
              max={99}
              on={form.lowBatteryOn}
              value={form.lowBattery}
              onToggle={(lowBatteryOn) => set({ lowBatteryOn })}
              onChange={(lowBattery) => set({ lowBattery })}
            />
          </fieldset>
          {error ? (
            <p role="alert" className="mt-3 text-sm text-destructive">
              {error}
            </p>
          ) : null}
          {editable ? (
            <Button type="submit" className="mt-4" disabled={saving}>
              {saving ? "Saving…" : "Save settings"}
            </Button>
          ) : null}
        </form>
      </CardContent>
    </Card>
  );
}

const ALERT_KINDS = { digest: "digest", device_offline: "device offline", group_offline: "group offline" } as const;

export function AlertsView() {
  const { canManageSettings, canAcknowledgeIncidents } = usePermissions();
  const settings = useAlertSettings();
  const alerts = useAlerts();

  return (
    <div className="flex flex-col gap-6">
      <PageHeader title="Alerts" description="Incidents when devices go quiet or run low, and who gets told." />
      <IncidentsSection canAcknowledge={canAcknowledgeIncidents} />
      {settings.error && !settings.data ? (
        <ErrorState error={settings.error} onRetry={() => void settings.mutate()} />
      ) : settings.data ? (
        <SettingsCard settings={settings.data} editable={canManageSettings} />
      ) : (
        <Skeleton className="h-72 w-full" />
      )}
      <section className="flex flex-col gap-3" aria-labelledby="raised-alerts">
        <h2 id="raised-alerts" className="text-lg font-semibold">
          Alerts raised
        </h2>
        <div className="rounded-lg border">
          {alerts.error && !alerts.data ? (
            <ErrorState error={alerts.error} onRetry={() => void alerts.mutate()} />
          ) : !alerts.data ? (
            <Skeleton className="m-2 h-20" />
          ) : alerts.data.alerts.length === 0 ? (
            <EmptyState title="No alert raised yet" />
          ) : (
            <Table>
              <TableHeader>
                <TableRow>
                  <TableHead>Raised</TableHead>
                  <TableHead>Kind</TableHead>
                  <TableHead className="hidden md:table-cell">About</TableHead>
                  <TableHead>Subject</TableHead>
                  <TableHead className="hidden md:table-cell">Recipients</TableHead>
                  <TableHead>Mail</TableHead>
                </TableRow>
              </TableHeader>
              <TableBody>
                {alerts.data.alerts.map((alert) => (
                  <TableRow key={alert.id} data-testid="alert-row">
                    <TableCell>{formatDateTime(alert.raisedAt)}</TableCell>
                    <TableCell>
                      <Badge variant={alert.kind === "group_offline" ? "warning" : "secondary"}>{ALERT_KINDS[alert.kind]}</Badge>
                    </TableCell>
                    <TableCell className="hidden md:table-cell">
                      {alert.deviceId ? (
                        <Link className="font-mono text-xs hover:underline" href={`/devices/${alert.deviceId}`} prefetch={false}>
                          {shortId(alert.deviceId)}
                        </Link>
                      ) : (
                        (alert.group ?? "—")
                      )}
                    </TableCell>
                    <TableCell className="max-w-md whitespace-normal">{alert.subject}</TableCell>
                    <TableCell className="hidden text-muted-foreground md:table-cell">{alert.recipients.join(", ")}</TableCell>
                    <TableCell>{alert.mail ? <MailStatusBadge status={alert.mail.status} /> : <span className="text-muted-foreground">—</span>}</TableCell>
                  </TableRow>
                ))}
              </TableBody>
            </Table>
          )}
        </div>
      </section>
    </div>
  );
}

/** A percentage threshold that a checkbox turns on and off. */
function OptionalPercent(props: {
  label: string;
  inputLabel: string;
  max: number;
  on: boolean;
  value: string;
  onToggle: (on: boolean) => void;
  onChange: (value: string) => void;
}) {
  return (
    <div className="flex flex-col gap-2 sm:col-span-2">
      <Label>
        <Checkbox checked={props.on} onCheckedChange={(checked) => props.onToggle(checked === true)} />
        {props.label}
      </Label>
      <div className="flex items-center gap-2">
        <Input
          aria-label={props.inputLabel}
          type="number"
          min={1}
          max={props.max}
          className="w-24"
          value={props.value}
          disabled={!props.on}
          onChange={(event) => props.onChange(event.target.value)}
        />
        <span className="text-sm text-muted-foreground">%</span>
      </div>
    </div>
  );
}
