"use client";

import type { Command } from "@mdm/contracts";
import { ChevronDownIcon, ChevronRightIcon } from "lucide-react";
import Link from "next/link";
import { Fragment, useState } from "react";
import { deviceName } from "@/components/devices/device-status";
import { usePermissions } from "@/components/layout/session-context";
import { EmptyState, TableStatusRows } from "@/components/states";
import {
  AlertDialog,
  AlertDialogAction,
  AlertDialogCancel,
  AlertDialogContent,
  AlertDialogDescription,
  AlertDialogFooter,
  AlertDialogHeader,
  AlertDialogTitle,
  AlertDialogTrigger,
} from "@/components/ui/alert-dialog";
import { Badge } from "@/components/ui/badge";
import { Button } from "@/components/ui/button";
import { toast } from "@/components/ui/sonner";
import { Table, TableBody, TableCell, TableHead, TableHeader, TableRow } from "@/components/ui/table";
import { errorMessage } from "@/lib/api";
import { commandStatusVariant, commandTypeLabels, isFinalStatus } from "@/lib/commands";
import { actorLabel, formatDateTime, formatRelative, formatTime, shortId } from "@/lib/format";
import { useNow } from "@/lib/hooks/use-now";
import { cancelCommand } from "@/lib/swr/use-commands";
import { cn } from "@/lib/utils";

export function CommandStatusBadge({ status }: { status: Command["status"] }) {
  return (
    <Badge variant={commandStatusVariant[status]} data-testid="command-status">
      {status}
    </Badge>
  );
}

function payloadSummary(command: Command): string {
  const { packageName, message, action } = command.payload as Record<string, unknown>;
  return [packageName, message, action].filter((value) => typeof value === "string").join(" · ");
}

function CommandEvents({ command }: { command: Command }) {
  return (
    <ol className="flex flex-col gap-1 py-1 text-sm" aria-label="Status history">
      {command.events.map((event, index) => (
        // biome-ignore lint/suspicious/noArrayIndexKey: a history is append-only; the index tells two identical events apart.
        <li key={`${event.status}-${event.at}-${index}`} className="flex items-baseline gap-3">
          <span className="w-20 font-mono text-xs text-muted-foreground" title={formatDateTime(event.at)}>
            {formatTime(event.at)}
          </span>
          <CommandStatusBadge status={event.status} />
          {event.detail ? <span className="text-muted-foreground">{event.detail}</span> : null}
        </li>
      ))}
      {command.errorMessage ? <li className="text-destructive">Error: {command.errorMessage}</li> : null}
      {command.result ? (
        <li className="font-mono text-xs break-all whitespace-pre-wrap text-muted-foreground">Result: {JSON.stringify(command.result)}</li>
      ) : null}
      <li className="text-xs text-muted-foreground">
        Request {command.requestId} · push{" "}
        {command.push.outcome === "recorded" ? "recorded, not sent (no FCM credentials)" : (command.push.outcome ?? "not attempted")} · expires{" "}
        {formatDateTime(command.expiresAt)}
        {command.createdBy ? ` · by ${actorLabel(command.createdBy)}` : ""}
      </li>
    </ol>
  );
}

function CancelCommandButton({ command }: { command: Command }) {
  const [busy, setBusy] = useState(false);
  return (
    <AlertDialog>
      <AlertDialogTrigger asChild>
        <Button variant="ghost" size="sm" disabled={busy}>
          Cancel
        </Button>
      </AlertDialogTrigger>
      <AlertDialogContent>
        <AlertDialogHeader>
          <AlertDialogTitle>Cancel this {commandTypeLabels[command.type].toLowerCase()} command?</AlertDialogTitle>
          <AlertDialogDescription>A device that already received it may still carry it out.</AlertDialogDescription>
        </AlertDialogHeader>
        <AlertDialogFooter>
          <AlertDialogCancel>Keep it</AlertDialogCancel>
          <AlertDialogAction
            onClick={async () => {
              setBusy(true);
              try {
                await cancelCommand(command.requestId);
                toast.success("Command cancelled");
              } catch (error) {
                toast.error(errorMessage(error));
              } finally {
                setBusy(false);
              }
            }}
          >
            Cancel command
          </AlertDialogAction>
        </AlertDialogFooter>
      </AlertDialogContent>
    </AlertDialog>
  );
}

// Columns that give way on a phone, so the command, its status and its Cancel stay on screen.
const WIDE_ONLY = "hidden sm:table-cell";

function DeviceLink({ command, testId }: { command: Command; testId?: string }) {
  return (
    <Link href={`/devices/${command.deviceId}`} prefetch={false} className="break-words hover:underline" data-testid={testId}>
      {command.device ? deviceName({ ...command.device, id: command.deviceId }) : shortId(command.deviceId)}
    </Link>
  );
}

export function CommandsTable({
  commands,
  error,
  isLoading,
  onRetry,
  showDevice = true,
  emptyText = "No commands yet",
}: {
  commands: Command[] | undefined;
  error: unknown;
  isLoading: boolean;
  onRetry: () => void;
  showDevice?: boolean;
  emptyText?: string;
}) {
  const [expanded, setExpanded] = useState<Set<string>>(new Set());
  const { canCancelCommands } = usePermissions();
  const now = useNow();
  const columns = showDevice ? 6 : 5;
  const toggle = (id: string) =>
    setExpanded((current) => {
      const next = new Set(current);
      if (next.has(id)) next.delete(id);
      else next.add(id);
      return next;
    });

  return (
    <div className="rounded-lg border">
      <Table>
        <TableHeader>
          <TableRow>
            <TableHead className="w-8">
              <span className="sr-only">Details</span>
            </TableHead>
            <TableHead>Command</TableHead>
            {showDevice ? <TableHead className={WIDE_ONLY}>Device</TableHead> : null}
            <TableHead>Status</TableHead>
            <TableHead className="hidden sm:table-cell">Created</TableHead>
            <TableHead className="text-right">
              <span className="sr-only">Actions</span>
            </TableHead>
          </TableRow>
        </TableHeader>
        <TableBody>
          {!commands || commands.length === 0 ? (
            <TableStatusRows columns={columns} error={error} loading={isLoading} onRetry={onRetry} skeletonRows={3} empty={<EmptyState title={emptyText} />} />
          ) : (
            commands.map((command) => {
              const open = expanded.has(command.requestId);
              return (
                <Fragment key={command.requestId}>
                  <TableRow data-testid="command-row" data-request-id={command.requestId} data-batch-id={command.batchId ?? undefined}>
                    <TableCell>
                      <Button
                        variant="ghost"
                        size="icon"
                        className="size-7"
                        onClick={() => toggle(command.requestId)}
                        aria-expanded={open}
                        aria-label={open ? "Hide status history" : "Show status history"}
                      >
                        {open ? <ChevronDownIcon /> : <ChevronRightIcon />}
                      </Button>
                    </TableCell>
                    <TableCell className="whitespace-normal">
                      <span className="font-medium">{commandTypeLabels[command.type]}</span>
                      <span className="ml-2 hidden text-xs text-muted-foreground sm:inline">{payloadSummary(command)}</span>
                      {/* A phone has no room for a device column: the device goes under the command. */}
                      {showDevice ? (
                        <div className="text-xs sm:hidden">
                          <DeviceLink command={command} />
                        </div>
                      ) : null}
                    </TableCell>
                    {showDevice ? (
                      <TableCell className={cn(WIDE_ONLY, "whitespace-normal")}>
                        <DeviceLink command={command} testId="command-device" />
                      </TableCell>
                    ) : null}
                    <TableCell>
                      <CommandStatusBadge status={command.status} />
                    </TableCell>
                    <TableCell className="hidden text-muted-foreground sm:table-cell" title={formatDateTime(command.createdAt)}>
                      {formatRelative(command.createdAt, now)}
                    </TableCell>
                    <TableCell className="text-right">
                      {canCancelCommands && !isFinalStatus(command.status) ? <CancelCommandButton command={command} /> : null}
                    </TableCell>
                  </TableRow>
                  {open ? (
                    <TableRow className="hover:bg-transparent">
                      <TableCell />
                      <TableCell colSpan={columns - 1}>
                        <CommandEvents command={command} />
                      </TableCell>
                    </TableRow>
                  ) : null}
                </Fragment>
              );
            })
          )}
        </TableBody>
      </Table>
    </div>
  );
}
