import type { Metadata } from "next";
import { DashboardShell } from "@/components/layout/dashboard-shell";
import { NotFoundMessage } from "@/components/states";

// Any address no page claims. Here rather than as a catch-all page inside the dashboard's
// route group: a page calling notFound() is answered 200 once Next.js has started
// streaming, while an unmatched address is answered 404. Only signed-in visitors get
// this far (proxy.ts sends the others to sign-in), so the dashboard's frame goes around it.
export const metadata: Metadata = { title: "Page not found" };

export default function NotFound() {
  return (
    <DashboardShell highlightNavigation={false}>
      <div className="flex flex-col items-start gap-3 py-10" data-testid="not-found">
        <NotFoundMessage />
      </div>
    </DashboardShell>
  );
}
