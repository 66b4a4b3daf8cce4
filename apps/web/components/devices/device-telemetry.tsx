"use client";

import { useState } from "react";
import { ErrorState } from "@/components/states";
import { Card, CardContent, CardHeader, CardTitle } from "@/components/ui/card";
import { Select, SelectContent, SelectItem, SelectTrigger, SelectValue } from "@/components/ui/select";
import { Skeleton } from "@/components/ui/skeleton";
import { useDeviceTelemetry } from "@/lib/swr/use-device-telemetry";
import { TelemetryChart } from "./telemetry-chart";

const PERIODS = [6, 24, 48] as const;

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
          </>
        )}
      </CardContent>
    </Card>
  );
}
