import { BatteryChargingIcon, BatteryIcon, BatteryLowIcon } from "lucide-react";
import { Badge } from "@/components/ui/badge";
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

/** A device's name for people: its alias, else its model, else its short id. */
export function deviceName(device: { alias: string | null; model: string | null; id: string }): string {
  return device.alias || device.model || device.id.slice(0, 8);
}
