"use client";

import type { TelemetryResponse } from "@mdm/contracts";
import { useState } from "react";
import { ErrorState } from "@/components/states";
import { Card, CardContent, CardHeader, CardTitle } from "@/components/ui/card";
import { Select, SelectContent, SelectItem, SelectTrigger, SelectValue } from "@/components/ui/select";
import { Skeleton } from "@/components/ui/skeleton";
import { formatDateTime } from "@/lib/format";
import { useDeviceTelemetry } from "@/lib/swr/use-device-telemetry";
import { TelemetryChart } from "./telemetry-chart";

const PERIODS = [6, 24, 48] as const;

type Point = TelemetryResponse["points"][number];

/** The network type over the window: one entry per change, so hours on wifi are one line, not sixty. */
function networkSpans(points: Point[]): Array<{ from: string; type: string }> {
  const spans: Array<{ from: string; type: string }> = [];
  for (const point of points) {
    const type = point.networkType ?? "unknown";
    if (spans.at(-1)?.type !== type) spans.push({ from: point.at, type });
  }
  return spans;
}

function NetworkHistory({ points }: { points: Point[] }) {
  const spans = networkSpans(points);
  return (
    <section aria-label="Network history" className="flex flex-col gap-2">
      <h3 className="text-sm font-medium">Network</h3>
      <ol className="flex flex-col gap-1 text-sm">
        {spans.map((span) => (
          <li key={span.from} data-testid="network-span" className="flex gap-3">
            <span className="w-44 shrink-0 text-muted-foreground">{formatDateTime(span.from)}</span>
            <span>{span.type}</span>
          </li>
        ))}
      </ol>
    </section>
  );
}

function AppChanges({ changes }: { changes: NonNullable<TelemetryResponse["appChanges"]> }) {
  return (
    <section aria-label="App list changes" className="flex flex-col gap-2">
      <h3 className="text-sm font-medium">App list changes</h3>
      {changes.length === 0 ? (
        <p className="text-sm text-muted-foreground">The app list did not change in this period.</p>
      ) : (
        <ol className="flex flex-col gap-2 text-sm">
          {[...changes].reverse().map((change) => (
            <li key={change.at} data-testid="app-change">
              <span className="text-muted-foreground">{formatDateTime(change.at)}</span>{" "}
              {change.apps.map((app) => `${app.packageName}${app.versionName ? ` ${app.versionName}` : ""}${app.running ? "" : " (stopped)"}`).join(", ") ||
                "no apps"}
            </li>
          ))}
        </ol>
      )}
    </section>
  );
}

export function DeviceTelemetry({ deviceId }: { deviceId: string }) {
  const [hours, setHours] = useState<number>(24);
  const { data, error, isLoading, mutate } = useDeviceTelemetry(deviceId, hours);
  const points = data?.points ?? [];
  const battery = points.map((point) => ({ at: point.at, value: point.batteryLevel }));
  const memoryUsed = points.map((point) => ({
    at: point.at,
    value: point.memoryTotal && point.memoryAvailable !== null ? (1 - point.memoryAvailable / point.memoryTotal) * 100 : null,
  }));

  return (
    <Card>
      <CardHeader className="flex-row items-center justify-between">
        <CardTitle>History</CardTitle>
        <Select value={String(hours)} onValueChange={(value) => setHours(Number(value))}>
          <SelectTrigger className="h-8 w-32" aria-label="Period">
            <SelectValue />
          </SelectTrigger>
          <SelectContent>
            {PERIODS.map((period) => (
              <SelectItem key={period} value={String(period)}>
                Last {period} hours
              </SelectItem>
            ))}
          </SelectContent>
        </Select>
      </CardHeader>
      <CardContent className="flex flex-col gap-6">
        {error && !data ? (
          <ErrorState error={error} onRetry={() => void mutate()} />
        ) : isLoading && !data ? (
          <Skeleton className="h-40 w-full" />
        ) : points.length === 0 ? (
          <p className="py-8 text-center text-sm text-muted-foreground">No heartbeats in this period yet.</p>
        ) : (
          <>
            <TelemetryChart label="Battery" points={battery} max={100} unit="%" color="var(--chart-1)" />
            <TelemetryChart label="Memory used" points={memoryUsed} max={100} unit="%" color="var(--chart-2)" />
            <NetworkHistory points={points} />
            <AppChanges changes={data?.appChanges ?? []} />
          </>
        )}
      </CardContent>
    </Card>
  );
}
