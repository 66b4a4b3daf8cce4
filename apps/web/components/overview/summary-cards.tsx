"use client";

import { BatteryLowIcon, SendIcon, WifiIcon, WifiOffIcon } from "lucide-react";
import Link from "next/link";
import { Card, CardContent, CardHeader, CardTitle } from "@/components/ui/card";
import { Skeleton } from "@/components/ui/skeleton";
import { useFleetSummary } from "@/lib/swr/use-fleet-summary";

function SummaryCard({ title, value, icon, href, hint }: { title: string; value: number | undefined; icon: React.ReactNode; href: string; hint?: string }) {
  return (
    <Link
      href={href}
      prefetch={false}
      className="h-full rounded-xl focus-visible:ring-[3px] focus-visible:ring-ring/50 focus-visible:outline-none"
      data-testid="summary-card"
    >
      <Card className="h-full gap-2 transition-colors hover:bg-accent/50">
        <CardHeader className="flex-row items-center justify-between">
          <CardTitle className="text-sm font-medium text-muted-foreground">{title}</CardTitle>
          <span className="text-muted-foreground [&_svg]:size-4" aria-hidden>
            {icon}
          </span>
        </CardHeader>
        <CardContent>
          {value === undefined ? (
            <Skeleton className="h-8 w-16" />
          ) : (
            <div className="text-3xl font-semibold tabular-nums" data-testid={`summary-${title.toLowerCase().replace(/\s+/g, "-")}`}>
              {value}
            </div>
          )}
          {/* Every card keeps the hint's line, so a row of cards is even. */}
          <p className="mt-1 min-h-4 text-xs text-muted-foreground">{hint ?? "\u00a0"}</p>
        </CardContent>
      </Card>
    </Link>
  );
}

export function SummaryCards() {
  const { data, error } = useFleetSummary();
  if (error && !data) return <p className="text-sm text-destructive">Could not load the fleet summary.</p>;
  return (
    <div className="grid grid-cols-2 gap-3 lg:grid-cols-4">
      <SummaryCard title="Online" value={data?.online} icon={<WifiIcon />} href="/?status=online" hint={data ? `of ${data.total} devices` : undefined} />
      <SummaryCard title="Offline" value={data?.offline} icon={<WifiOffIcon />} href="/?status=offline" />
      <SummaryCard title="Low battery" value={data?.lowBattery} icon={<BatteryLowIcon />} href="/?battery=20" hint="below 20%" />
      <SummaryCard title="Commands in flight" value={data?.commandsInFlight} icon={<SendIcon />} href="/commands" />
    </div>
  );
}
