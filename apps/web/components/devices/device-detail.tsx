"use client";

import type { DeviceView } from "@mdm/contracts";
import { ArrowLeftIcon, SendIcon } from "lucide-react";
import Link from "next/link";
import { useState } from "react";
import { CommandsTable } from "@/components/commands/commands-table";
import { SendCommandDialog } from "@/components/commands/send-command-dialog";
import { NotFoundInPage } from "@/components/layout/not-found-in-page";
import { usePermissions } from "@/components/layout/session-context";
import { ErrorState } from "@/components/states";
import { Badge } from "@/components/ui/badge";
import { Button } from "@/components/ui/button";
import { Card, CardContent, CardHeader, CardTitle } from "@/components/ui/card";
import { Skeleton } from "@/components/ui/skeleton";
import { Table, TableBody, TableCell, TableHead, TableHeader, TableRow } from "@/components/ui/table";
import { ApiError } from "@/lib/api";
import { formatBytes, formatDateTime, formatDuration, formatRelative } from "@/lib/format";
import { useDocumentTitle } from "@/lib/hooks/use-document-title";
import { useNow } from "@/lib/hooks/use-now";
import { useCommands } from "@/lib/swr/use-commands";
import { useDevice } from "@/lib/swr/use-device";
import { DeviceDetailsForm } from "./device-details-form";
import { DeviceEffectivePolicy } from "./device-effective-policy";
import { DeviceLifecycle } from "./device-lifecycle";
import { DevicePolicies } from "./device-policies";
import { BatteryLevel, OnlineBadge, SocketBadge, deviceName, modelText } from "./device-status";
import { DeviceTelemetry } from "./device-telemetry";

function Fact({ label, children }: { label: string; children: React.ReactNode }) {
  return (
    <div className="flex flex-col gap-0.5">
      <dt className="text-xs text-muted-foreground">{label}</dt>
      <dd className="text-sm">{children}</dd>
    </div>
  );
}

function usage(total: number | undefined, available: number | undefined): string {
  if (!total || available === undefined) return "—";
  return `${formatBytes(total - available)} of ${formatBytes(total)} used`;
}

function LiveState({ device }: { device: DeviceView }) {
  const now = useNow();
  const { state } = device;
  return (
    <Card>
      <CardHeader>
        <CardTitle>Live state</CardTitle>
      </CardHeader>
      <CardContent>
        <dl className="grid grid-cols-2 gap-4 sm:grid-cols-3">
          <Fact label="Battery">
            <span data-testid="device-battery">
              <BatteryLevel level={state.battery?.level} charging={state.battery?.charging} />
            </span>
            {state.battery?.charging ? <span className="ml-1 text-xs text-muted-foreground">charging</span> : null}
          </Fact>
          <Fact label="Memory">{usage(state.memory?.total, state.memory?.available)}</Fact>
          <Fact label="Storage">{usage(state.storage?.total, state.storage?.available)}</Fact>
          <Fact label="Network">
            {state.network
              ? `${state.network.type}${state.network.signal !== null ? ` (${state.network.signal})` : ""}${state.network.ip ? ` · ${state.network.ip}` : ""}`
              : "—"}
          </Fact>
          <Fact label="Uptime">{formatDuration(state.uptimeSeconds)}</Fact>
          <Fact label="Last seen">
            <span title={formatDateTime(device.lastSeenAt)}>{formatRelative(device.lastSeenAt, now)}</span>
          </Fact>
          <Fact label="Socket">
            <SocketBadge device={device} now={now} />
          </Fact>
          <Fact label="Model">{modelText(device)}</Fact>
          <Fact label="Android">{device.osVersion ? `${device.osVersion}${device.sdkInt ? ` (SDK ${device.sdkInt})` : ""}` : "—"}</Fact>
          <Fact label="Agent version">{device.appVersion ?? "—"}</Fact>
          <Fact label="Serial">{device.serialNumber ?? "—"}</Fact>
          <Fact label="Enrolled">{formatDateTime(device.enrolledAt)}</Fact>
          <Fact label="Push">{device.push.invalidSince ? "token invalid" : device.push.registered ? "registered" : "none"}</Fact>
        </dl>
      </CardContent>
    </Card>
  );
}

function AppsCard({ device }: { device: DeviceView }) {
  return (
    <Card>
      <CardHeader>
        <CardTitle>Apps</CardTitle>
      </CardHeader>
      <CardContent>
        {device.state.apps.length === 0 ? (
          <p className="text-sm text-muted-foreground">The device has not reported any apps.</p>
        ) : (
          <Table>
            <TableHeader>
              <TableRow>
                <TableHead>Package</TableHead>
                <TableHead>Version</TableHead>
                <TableHead>State</TableHead>
              </TableRow>
            </TableHeader>
            <TableBody>
              {device.state.apps.map((app) => (
                <TableRow key={app.packageName}>
                  <TableCell className="font-mono text-xs">{app.packageName}</TableCell>
                  <TableCell>{app.versionName ?? app.versionCode ?? "—"}</TableCell>
                  <TableCell>
                    <Badge variant={app.running ? "success" : "secondary"}>{app.foreground ? "foreground" : app.running ? "running" : "stopped"}</Badge>
                  </TableCell>
                </TableRow>
              ))}
            </TableBody>
          </Table>
        )}
      </CardContent>
    </Card>
  );
}

function CommandHistory({ deviceId }: { deviceId: string }) {
  const { data, error, isLoading, mutate } = useCommands({ deviceId, limit: 50 });
  return (
    <section className="flex flex-col gap-3" aria-labelledby="command-history">
      <h2 id="command-history" className="text-lg font-semibold">
        Command history
      </h2>
      <CommandsTable
        commands={data?.commands}
        error={error}
        isLoading={isLoading}
        onRetry={() => void mutate()}
        showDevice={false}
        emptyText="No command sent to this device yet"
      />
    </section>
  );
}

export function DeviceDetail({ deviceId }: { deviceId: string }) {
  const { data: device, error, isLoading, mutate } = useDevice(deviceId);
  const { canSendCommands, canManageDevices, canManagePolicies, canRetireDevices, canDeleteDevices } = usePermissions();
  const [sendOpen, setSendOpen] = useState(false);
  useDocumentTitle(device ? deviceName(device) : undefined);

  if (error && !device) {
    if (error instanceof ApiError && (error.status === 404 || error.code === "validation_failed")) return <NotFoundInPage />;
    return <ErrorState error={error} onRetry={() => void mutate()} />;
  }
  if (isLoading || !device) {
    return (
      <div className="flex flex-col gap-4" aria-busy>
        <Skeleton className="h-8 w-64" />
        <Skeleton className="h-48 w-full" />
        <Skeleton className="h-64 w-full" />
      </div>
    );
  }

  return (
    <div className="flex flex-col gap-6">
      <div className="flex flex-wrap items-start justify-between gap-3">
        <div className="flex flex-col gap-1">
          <Link href="/" className="inline-flex items-center gap-1 text-sm text-muted-foreground hover:text-foreground">
            <ArrowLeftIcon className="size-4" /> Overview
          </Link>
          <div className="flex items-center gap-3">
            <h1 className="text-2xl font-semibold tracking-tight">{deviceName(device)}</h1>
            <span data-testid="device-online">
              <OnlineBadge online={device.online} />
            </span>
          </div>
          <p className="font-mono text-xs text-muted-foreground">{device.id}</p>
        </div>
        {canSendCommands && !device.retiredAt ? (
          <Button onClick={() => setSendOpen(true)}>
            <SendIcon /> Send command
          </Button>
        ) : null}
      </div>

      <div className="grid gap-4 lg:grid-cols-2">
        <LiveState device={device} />
        <DeviceTelemetry deviceId={device.id} />
        <DeviceDetailsForm device={device} editable={canManageDevices} />
        <DevicePolicies device={device} editable={canManagePolicies} />
        <DeviceLifecycle device={device} canSend={canSendCommands} canManage={canRetireDevices} canDelete={canDeleteDevices} />
      </div>
      <DeviceEffectivePolicy deviceId={device.id} />
      <AppsCard device={device} />
      <CommandHistory deviceId={device.id} />

      {canSendCommands ? (
        <SendCommandDialog open={sendOpen} onOpenChange={setSendOpen} target={{ kind: "devices", deviceIds: [device.id], label: deviceName(device) }} />
      ) : null}
    </div>
  );
}
