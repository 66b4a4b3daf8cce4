"use client";

import { type DeviceSort, type DeviceView, apiRoutes } from "@mdm/contracts";
import { ArrowDownIcon, ArrowUpDownIcon, ArrowUpIcon, ChevronLeftIcon, ChevronRightIcon, SearchIcon, SendIcon, XIcon } from "lucide-react";
import Link from "next/link";
import { useRouter } from "next/navigation";
import { useEffect, useRef, useState } from "react";
import { SendCommandDialog } from "@/components/commands/send-command-dialog";
import { BulkEditDialog } from "@/components/devices/bulk-edit-dialog";
import { BatteryLevel, OnlineBadge, SocketBadge, deviceName, modelText } from "@/components/devices/device-status";
import { type DeviceListParams, MAX_PAGES, PAGE_SIZES, useDeviceListParams } from "@/components/devices/use-device-list-params";
import { usePermissions } from "@/components/layout/session-context";
import { EmptyState, TableStatusRows } from "@/components/states";
import { Badge } from "@/components/ui/badge";
import { Button } from "@/components/ui/button";
import { Checkbox } from "@/components/ui/checkbox";
import { ExportButtons } from "@/components/integrations/export-buttons";
import { Input } from "@/components/ui/input";
import { Select, SelectContent, SelectItem, SelectTrigger, SelectValue } from "@/components/ui/select";
import { Table, TableBody, TableCell, TableHead, TableHeader, TableRow } from "@/components/ui/table";
import { formatDateTime, formatRelative, shortId } from "@/lib/format";
import { useDebouncedValue } from "@/lib/hooks/use-debounced-value";
import { useNow } from "@/lib/hooks/use-now";
import { useSlashToFocus } from "@/lib/hooks/use-slash-to-focus";
import { useDevices } from "@/lib/swr/use-devices";
import { useGroups } from "@/lib/swr/use-groups";
import { cn } from "@/lib/utils";

const ANY = "any";
const BATTERY_THRESHOLDS = [10, 20, 50] as const;

// Columns that give way on narrow screens, so the name, status and selection stay on screen.
const SECONDARY = "hidden lg:table-cell";
const TERTIARY = "hidden sm:table-cell";

function SortableHead({
  label,
  sort,
  current,
  order,
  onSort,
  className,
}: {
  label: string;
  sort: DeviceSort;
  current: DeviceSort;
  order: "asc" | "desc";
  onSort: (sort: DeviceSort) => void;
  className?: string;
}) {
  const active = sort === current;
  const next = active && order === "desc" ? "ascending" : "descending";
  return (
    <TableHead aria-sort={active ? (order === "asc" ? "ascending" : "descending") : "none"} className={className}>
      <button
        type="button"
        onClick={() => onSort(sort)}
        aria-label={`${label}: sort ${next}`}
        title={`Sort by ${label.toLowerCase()}, ${next}`}
        className="inline-flex items-center gap-1 rounded-sm hover:text-foreground focus-visible:ring-[3px] focus-visible:ring-ring/50 focus-visible:outline-none"
      >
        {label}
        {active ? (
          order === "asc" ? (
            <ArrowUpIcon className="size-3.5" aria-hidden />
          ) : (
            <ArrowDownIcon className="size-3.5" aria-hidden />
          )
        ) : (
          <ArrowUpDownIcon className="size-3.5 opacity-40" aria-hidden />
        )}
      </button>
    </TableHead>
  );
}

function DeviceRows({
  devices,
  selected,
  onToggle,
  selectable,
  now,
}: {
  devices: DeviceView[];
  selected: Set<string>;
  onToggle: (id: string) => void;
  selectable: boolean;
  now: number;
}) {
  return devices.map((device) => (
    <TableRow key={device.id} data-state={selected.has(device.id) ? "selected" : undefined} data-testid="device-row">
      {selectable ? (
        <TableCell className="w-8">
          <Checkbox checked={selected.has(device.id)} onCheckedChange={() => onToggle(device.id)} aria-label={`Select ${deviceName(device)}`} />
        </TableCell>
      ) : null}
      <TableCell className="max-w-48 whitespace-normal sm:max-w-none">
        {/* A page of devices would prefetch every device page on render: only on hover. */}
        <Link
          href={`/devices/${device.id}`}
          prefetch={false}
          className="font-medium break-words hover:underline focus-visible:underline focus-visible:outline-none"
        >
          {deviceName(device)}
        </Link>
        <div className="font-mono text-xs text-muted-foreground">{device.alias && device.serialNumber ? device.serialNumber : shortId(device.id)}</div>
      </TableCell>
      <TableCell>
        <div className="flex flex-col items-start gap-1">
          <OnlineBadge online={device.online} />
          <SocketBadge device={device} now={now} />
        </div>
      </TableCell>
      <TableCell className={TERTIARY}>
        <BatteryLevel level={device.state.battery?.level} charging={device.state.battery?.charging} />
      </TableCell>
      <TableCell className={SECONDARY}>{modelText(device)}</TableCell>
      <TableCell className={cn(SECONDARY, "font-mono text-xs")}>{device.appVersion ?? "—"}</TableCell>
      <TableCell className={SECONDARY}>
        <div className="flex flex-wrap gap-1">
          {device.groups.map((group) => (
            <Badge key={group} variant="outline">
              {group}
            </Badge>
          ))}
        </div>
      </TableCell>
      <TableCell className={cn(TERTIARY, "text-muted-foreground")} title={device.lastSeenAt ? formatDateTime(device.lastSeenAt) : undefined}>
        {formatRelative(device.lastSeenAt, now)}
      </TableCell>
    </TableRow>
  ));
}

export function DevicesTable() {
  const { params, page, update, query } = useDeviceListParams();
  const { data, error, isLoading, mutate } = useDevices(query);
  const { data: groups } = useGroups();
  const { canSendCommands, canRetireDevices } = usePermissions();
  const [editOpen, setEditOpen] = useState(false);
  const router = useRouter();
  const now = useNow();

  const [searchText, setSearchText] = useState(params.search);
  const debouncedSearch = useDebouncedValue(searchText);
  const searchRef = useRef<HTMLInputElement>(null);
  useSlashToFocus(searchRef);
  useEffect(() => {
    if (debouncedSearch !== params.search) update({ search: debouncedSearch });
  }, [debouncedSearch, params.search, update]);

  const [appVersionText, setAppVersionText] = useState(params.appVersion ?? "");
  const debouncedAppVersion = useDebouncedValue(appVersionText);
  useEffect(() => {
    if ((debouncedAppVersion || undefined) !== params.appVersion) update({ appVersion: debouncedAppVersion || undefined });
  }, [debouncedAppVersion, params.appVersion, update]);

  const [selected, setSelected] = useState<Set<string>>(new Set());
  const [sendOpen, setSendOpen] = useState(false);
  const devices = data?.devices ?? [];
  const pageIds = devices.map((device) => device.id);
  const selectedOnPage = pageIds.filter((id) => selected.has(id)).length;

  const toggle = (id: string) =>
    setSelected((current) => {
      const next = new Set(current);
      if (next.has(id)) next.delete(id);
      else next.add(id);
      return next;
    });
  const togglePage = () =>
    setSelected((current) => {
      const next = new Set(current);
      const selectAll = selectedOnPage !== pageIds.length;
      for (const id of pageIds) {
        if (selectAll) next.add(id);
        else next.delete(id);
      }
      return next;
    });
  const onSort = (sort: DeviceSort) => update({ sort, order: params.sort === sort && params.order === "desc" ? "asc" : "desc" });

  const total = data?.total ?? 0;
  const pageCount = Math.max(1, Math.ceil(total / params.pageSize));
  const nextCursor = data?.nextCursor ?? undefined;
  const filtered = Boolean(params.search || params.status || params.group || params.batteryBelow || params.appVersion || params.compliance);
  const columns = canSendCommands ? 8 : 7;

  return (
    <div className="flex flex-col gap-3">
      <div className="flex justify-end">
        <ExportButtons
          route={apiRoutes.exportDevices}
          label="devices"
          query={{
            search: params.search || undefined,
            status: params.status,
            group: params.group,
            batteryBelow: params.batteryBelow,
            appVersion: params.appVersion,
            sort: params.sort,
            order: params.order,
          }}
        />
      </div>
      <div className="flex flex-wrap items-center gap-2">
        <div className="relative w-full sm:w-80">
          <SearchIcon className="pointer-events-none absolute top-2.5 left-2.5 size-4 text-muted-foreground" aria-hidden />
          <Input
            ref={searchRef}
            type="search"
            value={searchText}
            onChange={(event) => setSearchText(event.target.value)}
            placeholder="Search alias, model, serial or id"
            aria-label="Search devices"
            aria-keyshortcuts="/"
            className="pl-8"
          />
          <kbd className="pointer-events-none absolute top-2 right-2 hidden rounded border px-1.5 font-mono text-xs text-muted-foreground sm:block">/</kbd>
        </div>
        <Select
          value={params.status ?? ANY}
          onValueChange={(value) => update({ status: value === ANY ? undefined : (value as "online" | "offline" | "retired") })}
        >
          <SelectTrigger className="w-36" aria-label="Status">
            <SelectValue />
          </SelectTrigger>
          <SelectContent>
            <SelectItem value={ANY}>Any status</SelectItem>
            <SelectItem value="online">Online</SelectItem>
            <SelectItem value="offline">Offline</SelectItem>
            <SelectItem value="retired">Retired</SelectItem>
          </SelectContent>
        </Select>
        <Select value={params.group ?? ANY} onValueChange={(value) => update({ group: value === ANY ? undefined : value })}>
          <SelectTrigger className="w-40" aria-label="Group">
            <SelectValue />
          </SelectTrigger>
          <SelectContent>
            <SelectItem value={ANY}>Any group</SelectItem>
            {groups?.groups.map((group) => (
              <SelectItem key={group.name} value={group.name}>
                {group.name} ({group.devices})
              </SelectItem>
            ))}
          </SelectContent>
        </Select>
        <Select
          value={params.batteryBelow ? String(params.batteryBelow) : ANY}
          onValueChange={(value) => update({ batteryBelow: value === ANY ? undefined : Number(value) })}
        >
          <SelectTrigger className="w-40" aria-label="Battery">
            <SelectValue />
          </SelectTrigger>
          <SelectContent>
            <SelectItem value={ANY}>Any battery</SelectItem>
            {BATTERY_THRESHOLDS.map((threshold) => (
              <SelectItem key={threshold} value={String(threshold)}>
                Battery below {threshold}%
              </SelectItem>
            ))}
          </SelectContent>
        </Select>
        <Input
          value={appVersionText}
          onChange={(event) => setAppVersionText(event.target.value)}
          placeholder="App version"
          aria-label="App version"
          className="w-32"
        />
        <Select
          value={params.compliance ?? ANY}
          onValueChange={(value) => update({ compliance: value === ANY ? undefined : (value as DeviceListParams["compliance"]) })}
        >
          <SelectTrigger className="w-44" aria-label="Policy compliance">
            <SelectValue />
          </SelectTrigger>
          <SelectContent>
            <SelectItem value={ANY}>Any compliance</SelectItem>
            <SelectItem value="noncompliant">Non-compliant</SelectItem>
            <SelectItem value="pending">Policy pending</SelectItem>
            <SelectItem value="failed">Policy failed</SelectItem>
            <SelectItem value="compliant">Compliant</SelectItem>
            <SelectItem value="none">No policy</SelectItem>
          </SelectContent>
        </Select>
        {filtered ? (
          <Button
            variant="ghost"
            size="sm"
            onClick={() => {
              setSearchText("");
              setAppVersionText("");
              update({ search: "", status: undefined, group: undefined, batteryBelow: undefined, appVersion: undefined, compliance: undefined });
            }}
          >
            <XIcon /> Clear filters
          </Button>
        ) : null}
      </div>

      {canSendCommands && selected.size > 0 ? (
        <section className="flex flex-wrap items-center gap-2 rounded-md border bg-muted/50 px-3 py-2 text-sm" aria-label="Selection">
          <span className="font-medium">{selected.size} selected</span>
          <Button size="sm" onClick={() => setSendOpen(true)}>
            <SendIcon /> Send command
          </Button>
          {canRetireDevices ? (
            <Button size="sm" variant="outline" onClick={() => setEditOpen(true)}>
              Edit selected
            </Button>
          ) : null}
          <Button size="sm" variant="ghost" onClick={() => setSelected(new Set())}>
            Clear selection
          </Button>
        </section>
      ) : null}

      <div className="rounded-lg border">
        <Table>
          <TableHeader>
            <TableRow>
              {canSendCommands ? (
                <TableHead className="w-8">
                  <Checkbox
                    checked={pageIds.length > 0 && selectedOnPage === pageIds.length ? true : selectedOnPage > 0 ? "indeterminate" : false}
                    onCheckedChange={togglePage}
                    disabled={pageIds.length === 0}
                    aria-label="Select all devices on this page"
                  />
                </TableHead>
              ) : null}
              <SortableHead label="Device" sort="alias" current={params.sort} order={params.order} onSort={onSort} />
              <TableHead>Status</TableHead>
              <SortableHead label="Battery" sort="batteryLevel" current={params.sort} order={params.order} onSort={onSort} className={TERTIARY} />
              <SortableHead label="Model" sort="model" current={params.sort} order={params.order} onSort={onSort} className={SECONDARY} />
              <SortableHead label="App version" sort="appVersion" current={params.sort} order={params.order} onSort={onSort} className={SECONDARY} />
              <TableHead className={SECONDARY}>Groups</TableHead>
              <SortableHead label="Last seen" sort="lastSeenAt" current={params.sort} order={params.order} onSort={onSort} className={TERTIARY} />
            </TableRow>
          </TableHeader>
          <TableBody>
            {devices.length === 0 ? (
              <TableStatusRows
                columns={columns}
                error={error}
                loading={isLoading}
                onRetry={() => void mutate()}
                skeletonRows={5}
                empty={
                  filtered ? (
                    <EmptyState title="No device matches these filters" />
                  ) : (
                    <EmptyState title="No devices yet">
                      Create an enrollment token on the{" "}
                      <Link href="/enrollment" className="underline">
                        Enrollment
                      </Link>{" "}
                      page and scan its QR code on a device.
                    </EmptyState>
                  )
                }
              />
            ) : (
              <DeviceRows devices={devices} selected={selected} onToggle={toggle} selectable={canSendCommands} now={now} />
            )}
          </TableBody>
        </Table>
      </div>

      <div className="flex flex-wrap items-center justify-between gap-2 text-sm text-muted-foreground">
        <span aria-live="polite" data-testid="device-count">
          {/* Unread, the list has no count: "No devices" beside its error would be a claim. */}
          {!data
            ? ""
            : total === 0
              ? "No devices"
              : `${(page - 1) * params.pageSize + 1}–${Math.min((page - 1) * params.pageSize + devices.length, total)} of ${total} devices`}
        </span>
        <div className="flex items-center gap-2">
          <Select value={String(params.pageSize)} onValueChange={(value) => update({ pageSize: Number(value) })}>
            <SelectTrigger className="h-8 w-28" aria-label="Rows per page">
              <SelectValue />
            </SelectTrigger>
            <SelectContent>
              {PAGE_SIZES.map((size) => (
                <SelectItem key={size} value={String(size)}>
                  {size} / page
                </SelectItem>
              ))}
            </SelectContent>
          </Select>
          <Button
            variant="outline"
            size="icon"
            className="size-8"
            disabled={page <= 1}
            onClick={() => update({ cursors: params.cursors.slice(0, -1) })}
            aria-label="Previous page"
          >
            <ChevronLeftIcon />
          </Button>
          <span className="tabular-nums">{data ? `${page} / ${pageCount}` : null}</span>
          <Button
            variant="outline"
            size="icon"
            className="size-8"
            disabled={!nextCursor || page >= MAX_PAGES}
            onClick={() => nextCursor && update({ cursors: [...params.cursors, nextCursor] })}
            aria-label="Next page"
          >
            <ChevronRightIcon />
          </Button>
        </div>
      </div>

      {canRetireDevices ? <BulkEditDialog open={editOpen} onOpenChange={setEditOpen} deviceIds={[...selected]} onDone={() => setSelected(new Set())} /> : null}
      {canSendCommands ? (
        <SendCommandDialog
          open={sendOpen}
          onOpenChange={setSendOpen}
          target={{ kind: "devices", deviceIds: [...selected] }}
          onSent={(sent) => {
            setSelected(new Set());
            if (sent.kind === "batch") router.push(`/commands?batch=${sent.batch.batchId}`);
          }}
        />
      ) : null}
    </div>
  );
}
