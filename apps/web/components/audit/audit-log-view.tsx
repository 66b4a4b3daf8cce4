"use client";

import { apiRoutes } from "@mdm/contracts";

import { useState } from "react";
import { usePermissions } from "@/components/layout/session-context";
import { ExportButtons } from "@/components/integrations/export-buttons";
import { PageHeader } from "@/components/page-header";
import { EmptyState, ErrorState } from "@/components/states";
import { Button } from "@/components/ui/button";
import { Input } from "@/components/ui/input";
import { Label } from "@/components/ui/label";
import { Skeleton } from "@/components/ui/skeleton";
import { AuditDetails, AuditTarget } from "@/components/audit/audit-details";
import { Table, TableBody, TableCell, TableHead, TableHeader, TableRow } from "@/components/ui/table";
import { formatDateTime } from "@/lib/format";
import { useDebouncedValue } from "@/lib/hooks/use-debounced-value";
import { type AuditLogFilters, useAuditLog } from "@/lib/swr/use-audit-log";

type FilterForm = { actor: string; action: string; targetType: string; targetId: string; from: string; to: string };
const emptyFilters: FilterForm = { actor: "", action: "", targetType: "", targetId: "", from: "", to: "" };

/** A `datetime-local` value as an ISO time in the browser's time zone. */
function isoFromLocal(value: string): string | undefined {
  if (!value) return undefined;
  const time = new Date(value);
  return Number.isNaN(time.getTime()) ? undefined : time.toISOString();
}

function toQuery(form: FilterForm): AuditLogFilters {
  return {
    actor: form.actor.trim() || undefined,
    action: form.action.trim() || undefined,
    targetType: form.targetType.trim() || undefined,
    targetId: form.targetId.trim() || undefined,
    from: isoFromLocal(form.from),
    to: isoFromLocal(form.to),
  };
}

export function AuditLogView() {
  const { canViewAuditLog } = usePermissions();
  const [form, setForm] = useState(emptyFilters);
  const filters = useDebouncedValue(form);
  const { entries, error, isLoading, isValidating, hasMore, loadMore, mutate } = useAuditLog(toQuery(filters), canViewAuditLog);
  const set = (changes: Partial<FilterForm>) => setForm((current) => ({ ...current, ...changes }));

  if (!canViewAuditLog) return <EmptyState title="Only admins can read the audit log" />;
  return (
    <div className="flex flex-col gap-6">
      <PageHeader
        title="Audit log"
        description="Who did what, newest first."
        actions={<ExportButtons route={apiRoutes.exportAuditLog} label="the audit log" query={toQuery(filters)} />}
      />
      <div className="grid gap-3 sm:grid-cols-3 lg:grid-cols-6">
        {(
          [
            ["actor", "Actor", "alice@example.com"],
            ["action", "Action", "command.create"],
            ["targetType", "Target type", "device"],
            ["targetId", "Target id", ""],
          ] as const
        ).map(([name, label, placeholder]) => (
          <div key={name} className="flex flex-col gap-1.5">
            <Label htmlFor={`audit-${name}`}>{label}</Label>
            <Input id={`audit-${name}`} value={form[name]} placeholder={placeholder} onChange={(event) => set({ [name]: event.target.value })} />
          </div>
        ))}
        <div className="flex flex-col gap-1.5">
          <Label htmlFor="audit-from">From</Label>
          <Input id="audit-from" type="datetime-local" value={form.from} onChange={(event) => set({ from: event.target.value })} />
        </div>
        <div className="flex flex-col gap-1.5">
          <Label htmlFor="audit-to">Until</Label>
          <Input id="audit-to" type="datetime-local" value={form.to} onChange={(event) => set({ to: event.target.value })} />
        </div>
      </div>
      <div className="rounded-lg border">
        {error && entries.length === 0 ? (
          <ErrorState error={error} onRetry={() => void mutate()} />
        ) : isLoading ? (
          <Skeleton className="m-2 h-24" />
        ) : entries.length === 0 ? (
          <EmptyState title="No entries">{Object.values(form).some(Boolean) ? "Nothing matches these filters." : null}</EmptyState>
        ) : (
          <>
            {/* A phone gets one card per entry: six columns do not fit in 390 px. */}
            <ul className="divide-y md:hidden" data-testid="audit-cards">
              {entries.map((entry) => (
                <li key={entry.id} className="flex flex-col gap-1 p-3 text-sm">
                  <div className="flex flex-wrap items-baseline justify-between gap-x-2">
                    <span className="font-mono text-xs [overflow-wrap:anywhere]">{entry.action}</span>
                    <span className="text-xs text-muted-foreground">{formatDateTime(entry.at)}</span>
                  </div>
                  <span className="[overflow-wrap:anywhere]" title={entry.actor}>
                    {entry.actorName}
                  </span>
                  <div className="text-xs">
                    <AuditTarget entry={entry} />
                  </div>
                  <AuditDetails details={entry.details} />
                </li>
              ))}
            </ul>
            <div className="hidden md:block">
              <Table>
                <TableHeader>
                  <TableRow>
                    <TableHead>When</TableHead>
                    <TableHead>Actor</TableHead>
                    <TableHead>Action</TableHead>
                    <TableHead>Target</TableHead>
                    <TableHead>Details</TableHead>
                  </TableRow>
                </TableHeader>
                <TableBody>
                  {entries.map((entry) => (
                    <TableRow key={entry.id}>
                      <TableCell className="align-top">{formatDateTime(entry.at)}</TableCell>
                      {/* Names, targets and details wrap anywhere: an email, a hash or a URL is one long word.
                          Wrapping anywhere lets a column shrink to one letter, so names and targets keep
                          room for a usual email or device name on one line. */}
                      <TableCell className="max-w-56 min-w-40 align-top whitespace-normal [overflow-wrap:anywhere]" title={entry.actor}>
                        {entry.actorName}
                        {entry.ip ? <span className="block text-xs text-muted-foreground">{entry.ip}</span> : null}
                      </TableCell>
                      <TableCell className="align-top font-mono text-xs">{entry.action}</TableCell>
                      <TableCell className="max-w-56 min-w-40 align-top text-xs whitespace-normal [overflow-wrap:anywhere]">
                        <AuditTarget entry={entry} />
                      </TableCell>
                      <TableCell className="min-w-48 align-top whitespace-normal">
                        <AuditDetails details={entry.details} />
                      </TableCell>
                    </TableRow>
                  ))}
                </TableBody>
              </Table>
            </div>
          </>
        )}
      </div>
      {hasMore ? (
        <Button variant="outline" className="self-center" onClick={() => void loadMore()} disabled={isValidating}>
          {isValidating ? "Loading…" : "Load older entries"}
        </Button>
      ) : null}
    </div>
  );
}
