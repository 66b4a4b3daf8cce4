"use client";

import { BellIcon, ClipboardListIcon, LayoutDashboardIcon, MailIcon, QrCodeIcon, SendIcon, SmartphoneIcon, UsersIcon } from "lucide-react";
import Link from "next/link";
import { usePathname } from "next/navigation";
import { usePermissions } from "@/components/layout/session-context";
import { cn } from "@/lib/utils";
import { ConnectionIndicator } from "./connection-indicator";
import { UserMenu } from "./user-menu";

type NavItem = { href: string; label: string; icon: React.ComponentType<{ className?: string }>; visible: boolean };

function isActive(pathname: string, href: string): boolean {
  if (href === "/") return pathname === "/" || pathname.startsWith("/devices");
  return pathname === href || pathname.startsWith(`${href}/`);
}

export function Sidebar() {
  const pathname = usePathname();
  const { canManageUsers, canViewAuditLog, canViewMail } = usePermissions();
  const items: NavItem[] = [
    { href: "/", label: "Overview", icon: LayoutDashboardIcon, visible: true },
    { href: "/commands", label: "Commands", icon: SendIcon, visible: true },
    { href: "/enrollment", label: "Enrollment", icon: QrCodeIcon, visible: true },
    { href: "/alerts", label: "Alerts", icon: BellIcon, visible: true },
    { href: "/users", label: "Users", icon: UsersIcon, visible: canManageUsers },
    { href: "/audit-log", label: "Audit log", icon: ClipboardListIcon, visible: canViewAuditLog },
    { href: "/mail", label: "Mail", icon: MailIcon, visible: canViewMail },
  ];

  return (
    <aside className="flex shrink-0 flex-col gap-4 border-b bg-muted/30 p-3 md:sticky md:top-0 md:h-screen md:w-56 md:border-r md:border-b-0">
      <Link href="/" className="flex items-center gap-2 px-2 py-1 font-semibold">
        <SmartphoneIcon className="size-5" aria-hidden />
        Keelson
      </Link>
      <nav aria-label="Main" className="flex flex-row flex-wrap gap-1 md:flex-col">
        {items
          .filter((item) => item.visible)
          .map(({ href, label, icon: Icon }) => {
            const active = isActive(pathname, href);
            return (
              <Link
                key={href}
                href={href}
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
      <div className="flex flex-row items-center justify-between gap-2 md:mt-auto md:flex-col md:items-stretch">
        <ConnectionIndicator />
        <UserMenu />
      </div>
    </aside>
  );
}
