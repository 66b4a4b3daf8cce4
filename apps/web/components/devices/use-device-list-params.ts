"use client";

import { DeviceSort, type ListDevicesQuery } from "@mdm/contracts";
import { usePathname, useRouter, useSearchParams } from "next/navigation";
import { useCallback, useMemo } from "react";

export const PAGE_SIZES = [25, 50, 100] as const;

export type DeviceListParams = {
  search: string;
  status: "online" | "offline" | "retired" | undefined;
  group: string | undefined;
  batteryBelow: number | undefined;
  appVersion: string | undefined;
  sort: ListDevicesQuery["sort"];
  order: ListDevicesQuery["order"];
  page: number;
  pageSize: number;
};

function positiveInt(value: string | null): number | undefined {
  const number = Number(value);
  return value && Number.isInteger(number) && number > 0 ? number : undefined;
}

/** The device table's filters, sorting and page, kept in the URL so views can be shared. */
export function useDeviceListParams() {
  const searchParams = useSearchParams();
  const router = useRouter();
  const pathname = usePathname();

  const params = useMemo<DeviceListParams>(() => {
    const status = searchParams.get("status");
    const sort = DeviceSort.safeParse(searchParams.get("sort"));
    const pageSize = positiveInt(searchParams.get("size"));
    return {
      search: searchParams.get("q") ?? "",
      status: status === "online" || status === "offline" || status === "retired" ? status : undefined,
      group: searchParams.get("group") || undefined,
      batteryBelow: positiveInt(searchParams.get("battery")),
      appVersion: searchParams.get("version") || undefined,
      sort: sort.success ? sort.data : "enrolledAt",
      order: searchParams.get("order") === "asc" ? "asc" : "desc",
      page: positiveInt(searchParams.get("page")) ?? 1,
      pageSize: PAGE_SIZES.find((size) => size === pageSize) ?? 50,
    };
  }, [searchParams]);

  const update = useCallback(
    (changes: Partial<DeviceListParams>) => {
      const next = { ...params, ...changes };
      // Any change but paging starts again at the first page.
      if (!("page" in changes)) next.page = 1;
      const query = new URLSearchParams();
      if (next.search) query.set("q", next.search);
      if (next.status) query.set("status", next.status);
      if (next.group) query.set("group", next.group);
      if (next.batteryBelow) query.set("battery", String(next.batteryBelow));
      if (next.appVersion) query.set("version", next.appVersion);
      if (next.sort !== "enrolledAt") query.set("sort", next.sort);
      if (next.order !== "desc") query.set("order", next.order);
      if (next.page > 1) query.set("page", String(next.page));
      if (next.pageSize !== 50) query.set("size", String(next.pageSize));
      const text = query.toString();
      router.replace(text ? `${pathname}?${text}` : pathname, { scroll: false });
    },
    [params, pathname, router],
  );

  const query: Partial<ListDevicesQuery> = {
    limit: params.pageSize,
    offset: (params.page - 1) * params.pageSize,
    sort: params.sort,
    order: params.order,
    search: params.search || undefined,
    status: params.status,
    group: params.group,
    batteryBelow: params.batteryBelow,
    appVersion: params.appVersion,
  };

  return { params, update, query };
}
