"use client";

import { useEffect, useState } from "react";
import { Tooltip, TooltipContent, TooltipTrigger } from "@/components/ui/tooltip";
import { useLiveStatus } from "@/lib/live/live-updates";
import { cn } from "@/lib/utils";

function useSecondsUntil(time: number | undefined): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    if (time === undefined) return;
    const timer = setInterval(() => setNow(Date.now()), 1000);
    return () => clearInterval(timer);
  }, [time]);
  return time === undefined ? 0 : Math.max(0, Math.ceil((time - now) / 1000));
}

/** Whether the live socket is up; while it is down, when the next attempt is and a way to try now. */
export function ConnectionIndicator() {
  const { status, reconnectNow } = useLiveStatus();
  const seconds = useSecondsUntil(status.state === "reconnecting" ? status.retryAt : undefined);
  const label =
    status.state === "live" ? "Live" : status.state === "connecting" ? "Connecting…" : seconds > 0 ? `Reconnecting in ${seconds}s` : "Reconnecting…";
  const help =
    status.state === "live"
      ? "Changes on devices appear here as they happen."
      : status.state === "connecting"
        ? "Opening the live connection to the server."
        : "The live connection dropped. What you see may be out of date. Click to retry now.";

  return (
    <Tooltip>
      <TooltipTrigger asChild>
        <button
          type="button"
          onClick={reconnectNow}
          disabled={status.state !== "reconnecting"}
          data-testid="connection-indicator"
          data-state={status.state}
          className="inline-flex items-center gap-2 rounded-md px-2 py-1 text-xs text-muted-foreground hover:bg-accent focus-visible:ring-[3px] focus-visible:ring-ring/50 focus-visible:outline-none disabled:cursor-default disabled:hover:bg-transparent"
        >
          <span
            aria-hidden
            className={cn(
              "size-2 rounded-full",
              status.state === "live" && "bg-success",
              status.state === "connecting" && "animate-pulse bg-muted-foreground",
              status.state === "reconnecting" && "animate-pulse bg-warning",
            )}
          />
          <span role="status">{label}</span>
        </button>
      </TooltipTrigger>
      <TooltipContent side="right">{help}</TooltipContent>
    </Tooltip>
  );
}
