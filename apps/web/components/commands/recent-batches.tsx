"use client";

import type { CommandBatch } from "@mdm/contracts";
import Link from "next/link";
import { EmptyState, TableStatusRows } from "@/components/states";
import { Badge } from "@/components/ui/badge";
import { Card, CardContent, CardHeader, CardTitle } from "@/components/ui/card";
import { Table, TableBody, TableCell, TableHead, TableHeader, TableRow } from "@/components/ui/table";
import { batchTargetText, commandTypeLabels } from "@/lib/commands";
import { formatDateTime, formatRelative } from "@/lib/format";
import { useNow } from "@/lib/hooks/use-now";
import { useBatches } from "@/lib/swr/use-batches";
import { cn } from "@/lib/utils";

const COLUMNS = 5;

/** The latest bulk commands with their progress; each opens the batch view. `shown` is the batch open above, as it shows it. */
export function RecentBatches({ shown }: { shown?: CommandBatch }) {
  const { data, error, isLoading, mutate } = useBatches();
  const now = useNow();
  const batches = data?.batches.map((batch) => (shown && batch.batchId === shown.batchId ? shown : batch));

  return (
    <Card>
      <CardHeader>
        <CardTitle>Recent bulk commands</CardTitle>
      </CardHeader>
      <CardContent>
        <div className="rounded-lg border">
          <Table>
            <TableHeader>
              <TableRow>
                <TableHead>Command</TableHead>
                <TableHead className="hidden sm:table-cell">Target</TableHead>
                <TableHead>Progress</TableHead>
                <TableHead>Status</TableHead>
                <TableHead className="hidden sm:table-cell">Started</TableHead>
              </TableRow>
            </TableHeader>
            <TableBody>
              {!batches || batches.length === 0 ? (
                <TableStatusRows
                  columns={COLUMNS}
                  error={error}
                  loading={isLoading}
                  onRetry={() => void mutate()}
                  skeletonRows={2}
                  empty={<EmptyState title="No bulk commands yet" />}
                />
              ) : (
                batches.map((batch) => (
                  <TableRow key={batch.batchId} data-testid="batch-row" data-batch-id={batch.batchId}>
                    <TableCell className="whitespace-normal">
                      <Link href={`/commands?batch=${batch.batchId}`} prefetch={false} className="font-medium hover:underline">
                        {commandTypeLabels[batch.type as keyof typeof commandTypeLabels] ?? batch.type}
                      </Link>
                    </TableCell>
                    <TableCell className="hidden sm:table-cell">{batchTargetText(batch.target)}</TableCell>
                    {/* Wraps at its separators: on a phone the status must stay beside it. */}
                    <TableCell className="whitespace-normal tabular-nums" data-testid="batch-row-progress">
                      <span className="whitespace-nowrap text-success">{batch.counts.succeeded} succeeded</span>
                      {" · "}
                      <span className={cn("whitespace-nowrap", batch.counts.failed > 0 ? "text-destructive" : "text-muted-foreground")}>
                        {batch.counts.failed} failed
                      </span>
                      {" · "}
                      <span className="whitespace-nowrap text-muted-foreground">{batch.total} total</span>
                    </TableCell>
                    <TableCell>
                      <Badge variant={batch.done ? "secondary" : "outline"} data-testid="batch-row-status">
                        {batch.done ? "done" : "in progress"}
                      </Badge>
                    </TableCell>
                    <TableCell className="hidden text-muted-foreground sm:table-cell" title={formatDateTime(batch.createdAt)}>
                      {formatRelative(batch.createdAt, now)}
                    </TableCell>
                  </TableRow>
                ))
              )}
            </TableBody>
          </Table>
        </div>
      </CardContent>
    </Card>
  );
}
