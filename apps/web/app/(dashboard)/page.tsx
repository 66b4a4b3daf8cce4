import type { Metadata } from "next";
import { Suspense } from "react";
import { DevicesTable } from "@/components/devices/devices-table";
import { SummaryCards } from "@/components/overview/summary-cards";
import { PageHeader } from "@/components/page-header";

export const metadata: Metadata = { title: "Overview" };

export default function OverviewPage() {
  return (
    <div className="flex flex-col gap-6">
      <PageHeader title="Overview" description="Your fleet right now. Updates live." />
      <SummaryCards />
      <Suspense>
        <DevicesTable />
      </Suspense>
    </div>
  );
}
