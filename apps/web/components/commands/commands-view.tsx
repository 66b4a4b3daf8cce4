"use client";

import { CommandStatus, CommandType, apiRoutes } from "@mdm/contracts";
import { ChevronLeftIcon, ChevronRightIcon, SendIcon } from "lucide-react";
import { usePathname, useRouter, useSearchParams } from "next/navigation";
import { useState } from "react";
import { usePermissions } from "@/components/layout/session-context";
import { ExportButtons } from "@/components/integrations/export-buttons";
import { PageHeader } from "@/components/page-header";
import { Button } from "@/components/ui/button";
import { Select, SelectContent, SelectItem, SelectTrigger, SelectValue } from "@/components/ui/select";
import { ErrorState } from "@/components/states";
import { toast } from "@/components/ui/sonner";
import { errorMessage } from "@/lib/api";
import { batchAsListed, commandTypeLabels } from "@/lib/commands";
import { useBatch } from "@/lib/swr/use-batch";
import { cancelBatch } from "@/lib/swr/use-device-lifecycle";
import { useCommands } from "@/lib/swr/use-commands";
import { BatchProgress } from "./batch-progress";
import { CommandsTable } from "./commands-table";
import { RecentBatches } from "./recent-batches";
import { SendCommandDialog } from "./send-command-dialog";

const ANY = "any";
const PAGE_SIZE = 50;

export function CommandsView() {
  const searchParams = useSearchParams();
  const router = useRouter();
  const pathname = usePathname();
  const { canSendCommands, canCancelBatches } = usePermissions();
  const [sendOpen, setSendOpen] = useState(false);

  const batchId = searchParams.get("batch") ?? undefined;
  const statusParam = CommandStatus.safeParse(searchParams.get("status"));
  const typeParam = CommandType.safeParse(searchParams.get("type"));
  const status = statusParam.success ? statusParam.data : undefined;
  const type = typeParam.success ? typeParam.data : undefined;
  const page = Math.max(1, Number(searchParams.get("page")) || 1);

  const { data, error, isLoading, mutate } = useCommands({ batchId, status, type, limit: PAGE_SIZE, offset: (page - 1) * PAGE_SIZE });
  const pageCount = Math.max(1, Math.ceil((data?.total ?? 0) / PAGE_SIZE));
  // One source for the progress card, the table and the recent list: the batch's own rows
  // when the table holds all of them, else the batch as the API counts it.
  const batchResult = useBatch(batchId);
  const shownBatch = batchResult.data ? batchAsListed(batchResult.data, page === 1 && !status && !type ? data : undefined) : undefined;

  const setParam = (changes: Record<string, string | undefined>) => {
    const next = new URLSearchParams(searchParams);
    for (const [key, value] of Object.entries(changes)) {
      if (value) next.set(key, value);
      else next.delete(key);
    }
    if (!("page" in changes)) next.delete("page");
    const text = next.toString();
    router.replace(text ? `${pathname}?${text}` : pathname, { scroll: false });
  };

  return (
    <div className="flex flex-col gap-6">
      <PageHeader
        title="Commands"
        description="Every command and its status, live. Expand a row for its history."
        actions={
          <div className="flex flex-wrap gap-2">
            <ExportButtons route={apiRoutes.exportCommands} label="the command history" />
            {canSendCommands ? (
              <Button onClick={() => setSendOpen(true)}>
                <SendIcon /> Send command
              </Button>
            ) : null}
          </div>
        }
      />
      {batchId ? (
        <BatchProgress
          batch={shownBatch}
          error={batchResult.error ? <ErrorState error={batchResult.error} onRetry={() => void batchResult.mutate()} /> : undefined}
          onClose={() => setParam({ batch: undefined })}
          onCancel={
            canCancelBatches && batchId
              ? () =>
                  cancelBatch(batchId)
                    .then((batch) => {
                      toast.success(`Batch cancelled: ${batch.counts.cancelled} ${batch.counts.cancelled === 1 ? "command" : "commands"} cancelled`);
                      return batchResult.mutate();
                    })
                    .catch((caught: unknown) => toast.error(errorMessage(caught)))
              : undefined
          }
        />
      ) : null}
      <div className="flex flex-wrap items-center gap-2">
        <Select value={status ?? ANY} onValueChange={(value) => setParam({ status: value === ANY ? undefined : value })}>
          <SelectTrigger className="w-40" aria-label="Status">
            <SelectValue />
          </SelectTrigger>
          <SelectContent>
            <SelectItem value={ANY}>Any status</SelectItem>
            {CommandStatus.options.map((option) => (
              <SelectItem key={option} value={option}>
                {option}
              </SelectItem>
            ))}
          </SelectContent>
        </Select>
        <Select value={type ?? ANY} onValueChange={(value) => setParam({ type: value === ANY ? undefined : value })}>
          <SelectTrigger className="w-44" aria-label="Command type">
            <SelectValue />
          </SelectTrigger>
          <SelectContent>
            <SelectItem value={ANY}>Any command</SelectItem>
            {CommandType.options.map((option) => (
              <SelectItem key={option} value={option}>
                {commandTypeLabels[option]}
              </SelectItem>
            ))}
          </SelectContent>
        </Select>
        {batchId ? <span className="text-sm text-muted-foreground">Showing this batch only</span> : null}
      </div>
      <CommandsTable commands={data?.commands} error={error} isLoading={isLoading} onRetry={() => void mutate()} />
      <div className="flex items-center justify-between text-sm text-muted-foreground">
        <span>{data ? `${data.total} ${data.total === 1 ? "command" : "commands"}` : ""}</span>
        <div className="flex items-center gap-2">
          <Button
            variant="outline"
            size="icon"
            className="size-8"
            disabled={page <= 1}
            onClick={() => setParam({ page: String(page - 1) })}
            aria-label="Previous page"
          >
            <ChevronLeftIcon />
          </Button>
          <span className="tabular-nums">
            {page} / {pageCount}
          </span>
          <Button
            variant="outline"
            size="icon"
            className="size-8"
            disabled={page >= pageCount}
            onClick={() => setParam({ page: String(page + 1) })}
            aria-label="Next page"
          >
            <ChevronRightIcon />
          </Button>
        </div>
      </div>
      <RecentBatches shown={shownBatch} />
      {canSendCommands ? (
        <SendCommandDialog
          open={sendOpen}
          onOpenChange={setSendOpen}
          target={{ kind: "choose" }}
          onSent={(sent) => {
            if (sent.kind === "batch") setParam({ batch: sent.batch.batchId });
          }}
        />
      ) : null}
    </div>
  );
}
