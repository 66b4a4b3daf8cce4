"use client";

import type { UserView } from "@mdm/contracts";
import { createContext, useContext } from "react";
import { type Permissions, permissionsFor } from "@/lib/permissions";

const SessionContext = createContext<UserView | undefined>(undefined);

export function SessionProvider({ user, children }: { user: UserView; children: React.ReactNode }) {
  return <SessionContext value={user}>{children}</SessionContext>;
}

/** The signed-in user; only inside the dashboard, which renders nothing until it is known. */
export function useCurrentUser(): UserView {
  const user = useContext(SessionContext);
  if (!user) throw new Error("useCurrentUser is only available inside the dashboard layout");
  return user;
}

export function usePermissions(): Permissions {
  return permissionsFor(useContext(SessionContext)?.role);
}
