"use client";

import { type UserView, UserRole } from "@mdm/contracts";
import { useState } from "react";
import { useCurrentUser, usePermissions } from "@/components/layout/session-context";
import { PageHeader } from "@/components/page-header";
import { EmptyState, ErrorState } from "@/components/states";
import {
  AlertDialog,
  AlertDialogAction,
  AlertDialogCancel,
  AlertDialogContent,
  AlertDialogDescription,
  AlertDialogFooter,
  AlertDialogHeader,
  AlertDialogTitle,
  AlertDialogTrigger,
} from "@/components/ui/alert-dialog";
import { Badge } from "@/components/ui/badge";
import { Button } from "@/components/ui/button";
import { Select, SelectContent, SelectItem, SelectTrigger, SelectValue } from "@/components/ui/select";
import { Skeleton } from "@/components/ui/skeleton";
import { toast } from "@/components/ui/sonner";
import { Table, TableBody, TableCell, TableHead, TableHeader, TableRow } from "@/components/ui/table";
import { errorMessage } from "@/lib/api";
import { formatDateTime } from "@/lib/format";
import { updateUser, useUsers } from "@/lib/swr/use-users";
import { InviteUserDialog } from "./invite-user-dialog";

function UserStatus({ user }: { user: UserView }) {
  if (user.disabled) return <Badge variant="destructive">disabled</Badge>;
  if (user.pending) return <Badge variant="warning">invited</Badge>;
  return <Badge variant="success">active</Badge>;
}

function UserRow({ user, isSelf }: { user: UserView; isSelf: boolean }) {
  const [busy, setBusy] = useState(false);
  const change = async (body: Parameters<typeof updateUser>[1], done: string) => {
    setBusy(true);
    try {
      await updateUser(user.id, body);
      toast.success(done);
    } catch (error) {
      toast.error(errorMessage(error));
    } finally {
      setBusy(false);
    }
  };

  return (
    <TableRow data-testid="user-row">
      {/* Long addresses wrap rather than push the row's actions off a narrow screen. */}
      <TableCell className="max-w-40 whitespace-normal [overflow-wrap:anywhere] md:max-w-none">
        <div className="font-medium">{user.name ?? user.email}</div>
        {user.name ? <div className="text-xs text-muted-foreground">{user.email}</div> : null}
        {/* On narrow screens the status column is hidden: the status shows here. */}
        <div className="mt-1 md:hidden">
          <UserStatus user={user} />
        </div>
      </TableCell>
      <TableCell>
        {isSelf ? (
          <Badge variant="outline">{user.role} (you)</Badge>
        ) : (
          <Select value={user.role} disabled={busy} onValueChange={(role) => void change({ role: role as UserRole }, `${user.email} is now ${role}`)}>
            <SelectTrigger className="h-8 w-32" aria-label={`Role of ${user.email}`}>
              <SelectValue />
            </SelectTrigger>
            <SelectContent>
              {UserRole.options.map((option) => (
                <SelectItem key={option} value={option}>
                  {option}
                </SelectItem>
              ))}
            </SelectContent>
          </Select>
        )}
      </TableCell>
      <TableCell className="hidden md:table-cell">
        <UserStatus user={user} />
      </TableCell>
      <TableCell className="hidden text-muted-foreground md:table-cell">{formatDateTime(user.createdAt)}</TableCell>
      <TableCell className="text-right">
        {isSelf ? null : user.disabled ? (
          <Button variant="outline" size="sm" disabled={busy} onClick={() => void change({ disabled: false }, `${user.email} can sign in again`)}>
            Enable
          </Button>
        ) : (
          <AlertDialog>
            <AlertDialogTrigger asChild>
              <Button variant="ghost" size="sm" disabled={busy}>
                Disable
              </Button>
            </AlertDialogTrigger>
            <AlertDialogContent>
              <AlertDialogHeader>
                <AlertDialogTitle>Disable {user.email}?</AlertDialogTitle>
                <AlertDialogDescription>They are signed out everywhere and cannot sign in until enabled again.</AlertDialogDescription>
              </AlertDialogHeader>
              <AlertDialogFooter>
                <AlertDialogCancel>Cancel</AlertDialogCancel>
                <AlertDialogAction onClick={() => void change({ disabled: true }, `${user.email} is disabled`)}>Disable</AlertDialogAction>
              </AlertDialogFooter>
            </AlertDialogContent>
          </AlertDialog>
        )}
      </TableCell>
    </TableRow>
  );
}

export function UsersView() {
  const me = useCurrentUser();
  const { canManageUsers } = usePermissions();
  const { data, error, isLoading, mutate } = useUsers(canManageUsers);
  if (!canManageUsers) return <EmptyState title="Only admins manage users" />;
  return (
    <div className="flex flex-col gap-6">
      <PageHeader title="Users" description="Who can use this dashboard, and what they may do." actions={<InviteUserDialog />} />
      <div className="rounded-lg border">
        {error && !data ? (
          <ErrorState error={error} onRetry={() => void mutate()} />
        ) : isLoading || !data ? (
          <Skeleton className="m-2 h-24" />
        ) : data.users.length === 0 ? (
          <EmptyState title="No users" />
        ) : (
          <Table>
            <TableHeader>
              <TableRow>
                <TableHead>User</TableHead>
                <TableHead>Role</TableHead>
                <TableHead className="hidden md:table-cell">Status</TableHead>
                <TableHead className="hidden md:table-cell">Created</TableHead>
                <TableHead className="text-right">
                  <span className="sr-only">Actions</span>
                </TableHead>
              </TableRow>
            </TableHeader>
            <TableBody>
              {data.users.map((user) => (
                <UserRow key={user.id} user={user} isSelf={user.id === me.id} />
              ))}
            </TableBody>
          </Table>
        )}
      </div>
    </div>
  );
}
