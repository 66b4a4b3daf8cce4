"use client";

import {
  BellIcon,
  ClipboardListIcon,
  KeyRoundIcon,
  LayoutDashboardIcon,
  MailIcon,
  MenuIcon,
  PackageIcon,
  QrCodeIcon,
  SendIcon,
  ShieldCheckIcon,
  SmartphoneIcon,
  UsersIcon,
  WebhookIcon,
} from "lucide-react";
import Link from "next/link";
import { usePathname } from "next/navigation";
import { useEffect, useState } from "react";
import { usePermissions } from "@/components/layout/session-context";
import { Button } from "@/components/ui/button";
import { Sheet, SheetContent, SheetTrigger } from "@/components/ui/sheet";
import { cn } from "@/lib/utils";
import { ConnectionIndicator } from "./connection-indicator";
import { UserMenu } from "./user-menu";

type NavItem = { href: string; label: string; icon: React.ComponentType<{ className?: string }>; visible: boolean };

function isActive(pathname: string, href: string): boolean {
  if (href === "/") return pathname === "/" || pathname.startsWith("/devices");
  return pathname === href || pathname.startsWith(`${href}/`);
}

function ProductLink() {
  return (
    <Link href="/" prefetch={false} className="flex items-center gap-2 px-2 py-1 font-semibold">
      <SmartphoneIcon className="size-5" aria-hidden />
      Keelson
    </Link>
  );
}

/** The navigation, the live connection and the account menu (without a session: the navigation only). */
function SidebarContent({ signedIn, highlight }: { signedIn: boolean; highlight: boolean }) {
  const pathname = usePathname();
  const { canManageUsers, canViewAuditLog, canViewMail, canManageApiKeys, canManageWebhooks } = usePermissions();
  const items: NavItem[] = [
    { href: "/", label: "Overview", icon: LayoutDashboardIcon, visible: true },
    { href: "/commands", label: "Commands", icon: SendIcon, visible: true },
    { href: "/policies", label: "Policies", icon: ShieldCheckIcon, visible: true },
    { href: "/enrollment", label: "Enrollment", icon: QrCodeIcon, visible: true },
    { href: "/catalogue", label: "Catalogue", icon: PackageIcon, visible: true },
    { href: "/alerts", label: "Alerts", icon: BellIcon, visible: true },
    { href: "/users", label: "Users", icon: UsersIcon, visible: canManageUsers },
    { href: "/audit-log", label: "Audit log", icon: ClipboardListIcon, visible: canViewAuditLog },
    { href: "/mail", label: "Mail", icon: MailIcon, visible: canViewMail },
    { href: "/api-keys", label: "API keys", icon: KeyRoundIcon, visible: canManageApiKeys },
    { href: "/webhooks", label: "Webhooks", icon: WebhookIcon, visible: canManageWebhooks },
  ];

  return (
    <>
      <nav aria-label="Main" className="flex flex-col gap-1">
        {items
          .filter((item) => item.visible)
          .map(({ href, label, icon: Icon }) => {
            const active = highlight && isActive(pathname, href);
            return (
              // Pages load their data by SWR once shown: prefetching all of them on every
              // page view bought nothing, and each navigation aborted the ones in flight.
              <Link
                key={href}
                href={href}
                prefetch={false}
                aria-current={active ? "page" : undefined}
                className={cn(
                  "flex items-center gap-2 rounded-md px-2 py-1.5 text-sm text-muted-foreground transition-colors hover:bg-accent hover:text-accent-foreground focus-visible:ring-[3px] focus-visible:ring-ring/50 focus-visible:outline-none",
                  active && "bg-accent font-medium text-accent-foreground",
                )}
              >
                <Icon className="size-4" aria-hidden />
                {label}
              </Link>
            );
          })}
      </nav>
      {signedIn ? (
        <div className="mt-auto flex flex-col items-stretch gap-2">
          <ConnectionIndicator />
          <UserMenu />
        </div>
      ) : null}
    </>
  );
}

/**
 * The app's frame: a fixed sidebar from the md breakpoint; below it, a header pinned to the
 * top with a menu button that opens the same navigation in a drawer.
 */
export function Sidebar({ signedIn = true, highlight = true }: { signedIn?: boolean; highlight?: boolean }) {
  const pathname = usePathname();
  const [open, setOpen] = useState(false);
  // Following a link closes the drawer.
  useEffect(() => setOpen(false), [pathname]);

  return (
    <>
      <header
        data-testid="mobile-header"
        className="sticky top-0 z-40 flex items-center justify-between gap-2 border-b bg-background/95 px-3 py-2 backdrop-blur md:hidden"
      >
        <Sheet open={open} onOpenChange={setOpen}>
          <SheetTrigger asChild>
            <Button variant="ghost" size="icon" aria-label="Open menu">
              <MenuIcon />
            </Button>
          </SheetTrigger>
          <SheetContent title="Menu">
            <ProductLink />
            <SidebarContent signedIn={signedIn} highlight={highlight} />
          </SheetContent>
        </Sheet>
        <ProductLink />
        <span className="size-9" aria-hidden />
      </header>
      <aside className="sticky top-0 hidden h-screen w-56 shrink-0 flex-col gap-4 border-r bg-muted/30 p-3 md:flex">
        <ProductLink />
        <SidebarContent signedIn={signedIn} highlight={highlight} />
      </aside>
    </>
  );
}
