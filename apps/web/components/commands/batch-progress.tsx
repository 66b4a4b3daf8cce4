"use client";

import type { CommandBatch, CommandStatus } from "@mdm/contracts";
import { XIcon } from "lucide-react";
import { Badge } from "@/components/ui/badge";
import { Button } from "@/components/ui/button";
import { Card, CardContent, CardDescription, CardHeader, CardTitle } from "@/components/ui/card";
import { Skeleton } from "@/components/ui/skeleton";
import { batchTargetText, commandStatusVariant, commandTypeLabels } from "@/lib/commands";
import { formatDateTime } from "@/lib/format";
import { cn } from "@/lib/utils";

const SEGMENTS: Array<{ status: CommandStatus; className: string }> = [
  { status: "succeeded", className: "bg-success" },
  { status: "failed", className: "bg-destructive" },
  { status: "expired", className: "bg-warning" },
  { status: "cancelled", className: "bg-muted-foreground" },
  { status: "acknowledged", className: "bg-chart-2" },
  { status: "sent", className: "bg-chart-2/50" },
];

/** Live progress of a bulk command: a stacked bar and counts by status (of the batch as the commands view shows it). */
export function BatchProgress({
  batch,
  error,
  onClose,
  onCancel,
}: {
  batch: CommandBatch | undefined;
  error?: React.ReactNode;
  onClose: () => void;
  onCancel?: () => void;
}) {
  if (error && !batch) return <div data-testid="batch-progress">{error}</div>;
  if (!batch) return <Skeleton className="h-32 w-full" data-testid="batch-progress-loading" />;
  const finished = batch.counts.succeeded + batch.counts.failed + batch.counts.expired + batch.counts.cancelled;
  const type = batch.type as keyof typeof commandTypeLabels;

  return (
    <Card aria-live="polite" data-testid="batch-progress">
      <CardHeader className="flex-row items-start justify-between">
        <div className="flex flex-col gap-1">
          <CardTitle>
            {commandTypeLabels[type] ?? batch.type} to {batchTargetText(batch.target)}
          </CardTitle>
          <CardDescription>
            <span data-testid="batch-state">{batch.done ? "Finished" : "In progress"}</span> ·{" "}
            <span data-testid="batch-finished-count">
              {finished} of {batch.total} done
            </span>{" "}
            · started {formatDateTime(batch.createdAt)}
          </CardDescription>
        </div>
        <div className="flex items-center gap-2">
          {onCancel && !batch.done ? (
            <Button variant="outline" size="sm" onClick={onCancel}>
              Cancel batch
            </Button>
          ) : null}
          <Button variant="ghost" size="icon" onClick={onClose} aria-label="Close batch progress">
            <XIcon />
          </Button>
        </div>
      </CardHeader>
      <CardContent className="flex flex-col gap-3">
        <div
          className="flex h-3 w-full overflow-hidden rounded-full bg-muted"
          role="progressbar"
          aria-valuemin={0}
          aria-valuemax={batch.total}
          aria-valuenow={finished}
          aria-label="Batch progress"
        >
          {SEGMENTS.map(({ status, className }) =>
            batch.counts[status] > 0 ? (
              <div
                key={status}
                className={cn("h-full transition-all", className)}
                style={{ width: `${(batch.counts[status] / Math.max(batch.total, 1)) * 100}%` }}
              />
            ) : null,
          )}
        </div>
        <div className="flex flex-wrap gap-2">
          {(Object.entries(batch.counts) as Array<[CommandStatus, number]>)
            .filter(([, count]) => count > 0)
            .map(([status, count]) => (
              <Badge key={status} variant={commandStatusVariant[status]} data-testid={`batch-${status}`}>
                {status}: {count}
              </Badge>
            ))}
        </div>
      </CardContent>
    </Card>
  );
}
