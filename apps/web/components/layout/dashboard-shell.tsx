"use client";

import { usePathname, useRouter } from "next/navigation";
import { createContext, useContext, useEffect, useState } from "react";
import { SWRConfig } from "swr";
import { ErrorState } from "@/components/states";
import { Skeleton } from "@/components/ui/skeleton";
import { ApiError, onSessionExpired } from "@/lib/api";
import { LiveUpdatesProvider } from "@/lib/live/live-updates";
import { onErrorRetry } from "@/lib/swr/retry";
import { useSession } from "@/lib/swr/use-session";
import { SessionProvider } from "./session-context";
import { Sidebar } from "./sidebar";

const NoCurrentPage = createContext<(noCurrentPage: boolean) => void>(() => {});

/**
 * For a page that turns out to show nothing (a device not found in the browser): while it is
 * shown, no sidebar entry is current, as on the not-found page.
 */
export function useNoCurrentPage(): void {
  const setNoCurrentPage = useContext(NoCurrentPage);
  useEffect(() => {
    setNoCurrentPage(true);
    return () => setNoCurrentPage(false);
  }, [setNoCurrentPage]);
}

/**
 * Everything behind sign-in: the session, the live socket, the sidebar. The not-found page
 * turns off the sidebar's highlight: /devices/<unknown> is no page of the overview's.
 */
export function DashboardShell({ children, highlightNavigation = true }: { children: React.ReactNode; highlightNavigation?: boolean }) {
  const router = useRouter();
  const pathname = usePathname();
  const { data: user, error, mutate } = useSession();
  const [noCurrentPage, setNoCurrentPage] = useState(false);
  const signedOut = error instanceof ApiError && error.status === 401;

  useEffect(() => {
    if (signedOut) router.replace(`/sign-in?next=${encodeURIComponent(pathname)}`);
  }, [signedOut, pathname, router]);
  useEffect(() => onSessionExpired(() => router.replace(`/sign-in?next=${encodeURIComponent(window.location.pathname)}`)), [router]);

  // The session could not be read (the API failed twice, or is out of reach): the frame
  // stays, with the error and a retry where the page would be.
  if (error && !signedOut && !user) {
    return (
      <div className="flex min-h-screen flex-col md:flex-row">
        <Sidebar signedIn={false} />
        <main className="min-w-0 flex-1 p-4 md:p-8">
          <ErrorState error={error} onRetry={() => void mutate()} />
        </main>
      </div>
    );
  }
  if (!user) {
    return (
      <div className="flex min-h-screen flex-col md:flex-row" aria-busy>
        <div className="hidden w-56 border-r p-3 md:block">
          <Skeleton className="h-6 w-24" />
        </div>
        <main className="flex-1 p-6">
          <Skeleton className="h-8 w-48" />
        </main>
      </div>
    );
  }

  return (
    <SWRConfig value={{ onErrorRetry }}>
      <SessionProvider user={user}>
        <LiveUpdatesProvider>
          <div className="flex min-h-screen flex-col md:flex-row">
            <Sidebar highlight={highlightNavigation && !noCurrentPage} />
            <main className="min-w-0 flex-1 p-4 md:p-8">
              <NoCurrentPage.Provider value={setNoCurrentPage}>{children}</NoCurrentPage.Provider>
            </main>
          </div>
        </LiveUpdatesProvider>
      </SessionProvider>
    </SWRConfig>
  );
}
