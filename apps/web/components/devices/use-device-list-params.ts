"use client";

import { DeviceSort, type ListDevicesQuery } from "@mdm/contracts";
import { usePathname, useRouter, useSearchParams } from "next/navigation";
import { useCallback, useMemo } from "react";

export const PAGE_SIZES = [25, 50, 100] as const;
export const COMPLIANCE_FILTERS = ["noncompliant", "pending", "failed", "compliant", "none"] as const;

// A page's cursor holds its sort key and id (about 60 characters); the URL keeps the cursor
// of every page before the current one so Previous works and views can be shared. Paging by
// hand further than this is not a use; filters or search find a device sooner.
export const MAX_PAGES = 200;
const CURSOR_SEPARATOR = ".";

export type DeviceListParams = {
  search: string;
  status: "online" | "offline" | "retired" | undefined;
  group: string | undefined;
  batteryBelow: number | undefined;
  appVersion: string | undefined;
  compliance: ListDevicesQuery["compliance"];
  sort: ListDevicesQuery["sort"];
  order: ListDevicesQuery["order"];
  /** The nextCursor of each page before the current one: page N is opened by cursors[N - 2]. */
  cursors: string[];
  pageSize: number;
};

function positiveInt(value: string | null): number | undefined {
  const number = Number(value);
  return value && Number.isInteger(number) && number > 0 ? number : undefined;
}

const CURSOR = /^[A-Za-z0-9_-]{1,512}$/;

/** The table's parameters from its URL; anything malformed falls back to the first page's defaults. */
export function readDeviceListParams(searchParams: Pick<URLSearchParams, "get">): DeviceListParams {
  const status = searchParams.get("status");
  const sort = DeviceSort.safeParse(searchParams.get("sort"));
  const pageSize = positiveInt(searchParams.get("size"));
  const cursors = (searchParams.get("after") ?? "").split(CURSOR_SEPARATOR).filter(Boolean);
  return {
    search: searchParams.get("q") ?? "",
    status: status === "online" || status === "offline" || status === "retired" ? status : undefined,
    group: searchParams.get("group") || undefined,
    batteryBelow: positiveInt(searchParams.get("battery")),
    appVersion: searchParams.get("version") || undefined,
    compliance: COMPLIANCE_FILTERS.find((value) => value === searchParams.get("compliance")),
    sort: sort.success ? sort.data : "enrolledAt",
    order: searchParams.get("order") === "asc" ? "asc" : "desc",
    cursors: cursors.every((cursor) => CURSOR.test(cursor)) ? cursors.slice(0, MAX_PAGES - 1) : [],
    pageSize: PAGE_SIZES.find((size) => size === pageSize) ?? 50,
  };
}

/** The URL query string for these parameters (defaults left out). */
export function deviceListSearch(params: DeviceListParams): string {
  const query = new URLSearchParams();
  if (params.search) query.set("q", params.search);
  if (params.status) query.set("status", params.status);
  if (params.group) query.set("group", params.group);
  if (params.batteryBelow) query.set("battery", String(params.batteryBelow));
  if (params.appVersion) query.set("version", params.appVersion);
  if (params.compliance) query.set("compliance", params.compliance);
  if (params.sort !== "enrolledAt") query.set("sort", params.sort);
  if (params.order !== "desc") query.set("order", params.order);
  if (params.cursors.length > 0) query.set("after", params.cursors.join(CURSOR_SEPARATOR));
  if (params.pageSize !== 50) query.set("size", String(params.pageSize));
  return query.toString();
}

/** The API query for the current page: keyset paging (cursor), never offset. */
export function deviceListQuery(params: DeviceListParams): Partial<ListDevicesQuery> {
  return {
    limit: params.pageSize,
    ...(params.cursors.length > 0 ? { cursor: params.cursors.at(-1) } : {}),
    sort: params.sort,
    order: params.order,
    search: params.search || undefined,
    status: params.status,
    group: params.group,
    batteryBelow: params.batteryBelow,
    appVersion: params.appVersion,
    compliance: params.compliance,
  };
}

/** The parameters after a change: any change but paging starts again at the first page. */
export function changeDeviceListParams(params: DeviceListParams, changes: Partial<DeviceListParams>): DeviceListParams {
  return { ...params, ...changes, cursors: changes.cursors ?? [] };
}

/** The table's filters, sorting and page, kept in the URL so views can be shared. */
export function useDeviceListParams() {
  const searchParams = useSearchParams();
  const router = useRouter();
  const pathname = usePathname();

  const params = useMemo(() => readDeviceListParams(searchParams), [searchParams]);

  const update = useCallback(
    (changes: Partial<DeviceListParams>) => {
      const text = deviceListSearch(changeDeviceListParams(params, changes));
      router.replace(text ? `${pathname}?${text}` : pathname, { scroll: false });
    },
    [params, pathname, router],
  );

  return { params, page: params.cursors.length + 1, update, query: deviceListQuery(params) };
}
