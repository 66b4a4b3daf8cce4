import { BatteryChargingIcon, BatteryIcon, BatteryLowIcon, PlugIcon, PlugZapIcon } from "lucide-react";
import { Badge } from "@/components/ui/badge";
import { formatDateTime, formatRelative } from "@/lib/format";
import { cn } from "@/lib/utils";

export const LOW_BATTERY_PERCENT = 20;

export function OnlineBadge({ online }: { online: boolean }) {
  return (
    <Badge variant={online ? "success" : "secondary"}>
      <span className={cn("size-1.5 rounded-full", online ? "bg-success" : "bg-muted-foreground")} aria-hidden />
      {online ? "Online" : "Offline"}
    </Badge>
  );
}

export function BatteryLevel({ level, charging }: { level: number | null | undefined; charging: boolean | null | undefined }) {
  if (level === null || level === undefined) return <span className="text-muted-foreground">—</span>;
  const low = level < LOW_BATTERY_PERCENT;
  const Icon = charging ? BatteryChargingIcon : low ? BatteryLowIcon : BatteryIcon;
  return (
    <span className={cn("inline-flex items-center gap-1 tabular-nums", low && !charging && "text-destructive")}>
      <Icon className="size-4" aria-hidden />
      {level}%<span className="sr-only">{charging ? " (charging)" : ""}</span>
    </span>
  );
}

/**
 * Whether the device holds its WebSocket, apart from heartbeats: a device that closed its
 * socket shows "Disconnected" at once, while it stays Online until heartbeats stop.
 */
export function SocketBadge({ device, now }: { device: { connected: boolean; connectedSince: string | null; disconnectedSince: string | null }; now: number }) {
  if (device.connected) {
    return (
      <span
        className="inline-flex items-center gap-1 text-xs text-muted-foreground"
        data-testid="socket-state"
        data-connected="true"
        title={device.connectedSince ? `Socket open since ${formatDateTime(device.connectedSince)}` : undefined}
      >
        <PlugZapIcon className="size-3.5 text-success" aria-hidden />
        Connected
      </span>
    );
  }
  return (
    <span
      className="inline-flex items-center gap-1 text-xs text-muted-foreground"
      data-testid="socket-state"
      data-connected="false"
      title={device.disconnectedSince ? formatDateTime(device.disconnectedSince) : undefined}
    >
      <PlugIcon className="size-3.5" aria-hidden />
      {device.disconnectedSince ? `Disconnected ${formatRelative(device.disconnectedSince, now)}` : "No socket"}
    </span>
  );
}

/** A device's name for people: its alias, else its model and serial number (which tell same-model devices apart), else its short id. */
export function deviceName(device: { alias: string | null; model: string | null; serialNumber?: string | null; id: string }): string {
  if (device.alias) return device.alias;
  const described = [device.model, device.serialNumber].filter(Boolean).join(" · ");
  return described || device.id.slice(0, 8);
}

/** The model, led by the manufacturer unless the model already names it ("Google Pixel 8", not "Google Google Pixel 8"). */
export function modelText(device: { manufacturer: string | null; model: string | null }): string {
  const { manufacturer, model } = device;
  if (!model) return manufacturer ?? "—";
  if (!manufacturer || model.toLowerCase().startsWith(manufacturer.toLowerCase())) return model;
  return `${manufacturer} ${model}`;
}
