"use client";

import type { AlertIncident } from "@mdm/contracts";
import Link from "next/link";
import { useState } from "react";
import { EmptyState, ErrorState } from "@/components/states";
import { Badge } from "@/components/ui/badge";
import { Button } from "@/components/ui/button";
import { Skeleton } from "@/components/ui/skeleton";
import { toast } from "@/components/ui/sonner";
import { errorMessage } from "@/lib/api";
import { formatDateTime } from "@/lib/format";
import { type IncidentFilter, acknowledgeIncident, useIncident, useIncidents } from "@/lib/swr/use-incidents";

const FILTERS: Array<{ value: IncidentFilter; label: string }> = [
  { value: "open", label: "Open" },
  { value: "resolved", label: "Resolved" },
  { value: "all", label: "All" },
];

function IncidentDevices({ incidentId }: { incidentId: string }) {
  const incident = useIncident(incidentId);
  if (incident.error && !incident.data) return <ErrorState error={incident.error} onRetry={() => void incident.mutate()} />;
  const detail = incident.data;
  if (!detail) return <Skeleton className="h-16 w-full" />;
  return (
    <ul className="flex flex-col divide-y rounded-md border text-sm" aria-label="Devices of this incident">
      {detail.devices.map((device) => (
        <li key={device.deviceId} data-testid="incident-device" className="flex flex-wrap items-center justify-between gap-x-4 gap-y-1 px-3 py-2">
          <Link className="font-medium hover:underline" href={`/devices/${device.deviceId}`} prefetch={false}>
            {device.name}
          </Link>
          <span className="text-muted-foreground">
            {detail.kind === "low_battery" && device.batteryLevel !== null ? `battery ${device.batteryLevel}% · ` : ""}
            since {formatDateTime(device.since)}
            {" · "}
            {device.retiredAt ? (
              `retired ${formatDateTime(device.retiredAt)}`
            ) : device.returnedAt ? (
              `${detail.kind === "low_battery" ? "charged" : "back"} ${formatDateTime(device.returnedAt)}`
            ) : (
              <span className="text-foreground">still away</span>
            )}
          </span>
        </li>
      ))}
    </ul>
  );
}

/** "3 of 5 back, 1 retired": devices that left the fleet while away are not counted as back. */
export function incidentProgress(incident: AlertIncident): string {
  const back = `${incident.returnedCount} of ${incident.deviceCount} ${incident.kind === "low_battery" ? "charged" : "back"}`;
  return incident.retiredCount > 0 ? `${back}, ${incident.retiredCount} retired` : back;
}

function IncidentCard({ incident, canAcknowledge }: { incident: AlertIncident; canAcknowledge: boolean }) {
  const [expanded, setExpanded] = useState(false);
  const [acknowledging, setAcknowledging] = useState(false);
  const acknowledge = async () => {
    setAcknowledging(true);
    try {
      await acknowledgeIncident(incident.id);
      toast.success("Incident acknowledged");
    } catch (caught) {
      toast.error(errorMessage(caught));
    } finally {
      setAcknowledging(false);
    }
  };
  return (
    <li data-testid="incident" className="flex flex-col gap-3 rounded-lg border p-4">
      <div className="flex flex-wrap items-start justify-between gap-3">
        <div className="flex min-w-0 flex-col gap-1">
          <div className="flex flex-wrap items-center gap-2">
            <h3 className="font-semibold">{incident.title}</h3>
            <Badge variant={incident.resolvedAt ? "secondary" : "warning"}>{incident.resolvedAt ? "resolved" : "open"}</Badge>
          </div>
          <p className="text-sm text-muted-foreground">
            Opened {formatDateTime(incident.openedAt)}
            {incident.resolvedAt ? ` · resolved ${formatDateTime(incident.resolvedAt)}` : ""} · {incidentProgress(incident)}
          </p>
          <p className="text-sm text-muted-foreground">
            {incident.acknowledgedAt ? `Acknowledged by ${incident.acknowledgedBy} at ${formatDateTime(incident.acknowledgedAt)}` : "Not acknowledged"}
          </p>
        </div>
        <div className="flex shrink-0 gap-2">
          <Button variant="outline" size="sm" aria-expanded={expanded} onClick={() => setExpanded((open) => !open)}>
            {expanded ? "Hide devices" : "Show devices"}
          </Button>
          {canAcknowledge && !incident.acknowledgedAt ? (
            <Button size="sm" disabled={acknowledging} onClick={() => void acknowledge()}>
              {acknowledging ? "Acknowledging…" : "Acknowledge"}
            </Button>
          ) : null}
        </div>
      </div>
      {expanded ? <IncidentDevices incidentId={incident.id} /> : null}
    </li>
  );
}

/** Incidents: devices that went offline (or ran low on battery) together, until all are back. */
export function IncidentsSection({ canAcknowledge }: { canAcknowledge: boolean }) {
  const [filter, setFilter] = useState<IncidentFilter>("open");
  const incidents = useIncidents(filter);
  return (
    <section className="flex flex-col gap-3" aria-labelledby="incidents">
      <div className="flex flex-wrap items-center justify-between gap-2">
        <h2 id="incidents" className="text-lg font-semibold">
          Incidents
        </h2>
        <fieldset className="flex gap-1">
          <legend className="sr-only">Show incidents</legend>
          {FILTERS.map((option) => (
            <Button
              key={option.value}
              size="sm"
              variant={filter === option.value ? "default" : "outline"}
              aria-pressed={filter === option.value}
              onClick={() => setFilter(option.value)}
            >
              {option.label}
            </Button>
          ))}
        </fieldset>
      </div>
      {incidents.error && !incidents.data ? (
        <ErrorState error={incidents.error} onRetry={() => void incidents.mutate()} />
      ) : !incidents.data ? (
        <Skeleton className="h-20 w-full" />
      ) : incidents.data.incidents.length === 0 ? (
        <div className="rounded-lg border">
          <EmptyState title={filter === "open" ? "No open incident" : "No incident"} />
        </div>
      ) : (
        <ul className="flex flex-col gap-3">
          {incidents.data.incidents.map((incident) => (
            <IncidentCard key={incident.id} incident={incident} canAcknowledge={canAcknowledge} />
          ))}
        </ul>
      )}
    </section>
  );
}
