"use client";

import type { EnrollmentToken } from "@mdm/contracts";
import { useState } from "react";
import { usePermissions } from "@/components/layout/session-context";
import { EmptyState, TableStatusRows } from "@/components/states";
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
import { Card, CardContent, CardHeader, CardTitle } from "@/components/ui/card";
import { toast } from "@/components/ui/sonner";
import { Table, TableBody, TableCell, TableHead, TableHeader, TableRow } from "@/components/ui/table";
import { errorMessage } from "@/lib/api";
import { type EnrollmentTokenStatus, enrollmentTokenStatus } from "@/lib/enrollment";
import { actorLabel, formatDateTime, formatUntil } from "@/lib/format";
import { useNow } from "@/lib/hooks/use-now";
import { revokeEnrollmentToken, useEnrollmentTokens } from "@/lib/swr/use-enrollment-tokens";

const statusVariant = {
  active: "success",
  expired: "warning",
  "used up": "secondary",
  revoked: "destructive",
} as const satisfies Record<EnrollmentTokenStatus, string>;

const COLUMNS = 6;

function RevokeTokenButton({ token }: { token: EnrollmentToken }) {
  const [busy, setBusy] = useState(false);
  const name = token.label || "this token";
  return (
    <AlertDialog>
      <AlertDialogTrigger asChild>
        <Button variant="ghost" size="sm" disabled={busy}>
          Revoke
        </Button>
      </AlertDialogTrigger>
      <AlertDialogContent>
        <AlertDialogHeader>
          <AlertDialogTitle>Revoke {name}?</AlertDialogTitle>
          <AlertDialogDescription>No device can enroll with it any more. Devices it already enrolled stay enrolled.</AlertDialogDescription>
        </AlertDialogHeader>
        <AlertDialogFooter>
          <AlertDialogCancel>Keep it</AlertDialogCancel>
          <AlertDialogAction
            onClick={async () => {
              setBusy(true);
              try {
                await revokeEnrollmentToken(token.id);
                toast.success("Token revoked");
              } catch (error) {
                toast.error(errorMessage(error));
              } finally {
                setBusy(false);
              }
            }}
          >
            Revoke token
          </AlertDialogAction>
        </AlertDialogFooter>
      </AlertDialogContent>
    </AlertDialog>
  );
}

/** Every enrollment token with its use, expiry and status; active ones can be revoked. */
export function EnrollmentTokensTable() {
  const { data, error, isLoading, mutate } = useEnrollmentTokens();
  const { canRevokeEnrollmentTokens } = usePermissions();
  const now = useNow();
  const tokens = data?.tokens;

  return (
    <Card>
      <CardHeader>
        <CardTitle>Enrollment tokens</CardTitle>
      </CardHeader>
      <CardContent>
        <div className="rounded-lg border">
          <Table>
            <TableHeader>
              <TableRow>
                <TableHead>Label</TableHead>
                <TableHead className="hidden md:table-cell">Uses</TableHead>
                <TableHead className="hidden md:table-cell">Expires</TableHead>
                <TableHead>Status</TableHead>
                <TableHead className="hidden md:table-cell">Created by</TableHead>
                <TableHead className="text-right">
                  <span className="sr-only">Actions</span>
                </TableHead>
              </TableRow>
            </TableHeader>
            <TableBody>
              {!tokens || tokens.length === 0 ? (
                <TableStatusRows
                  columns={COLUMNS}
                  error={error}
                  loading={isLoading}
                  onRetry={() => void mutate()}
                  skeletonRows={3}
                  empty={<EmptyState title="No enrollment tokens yet" />}
                />
              ) : (
                tokens.map((token) => {
                  const status = enrollmentTokenStatus(token, now);
                  return (
                    <TableRow key={token.id} data-testid="enrollment-token-row" data-token-id={token.id}>
                      <TableCell className="font-medium whitespace-normal [overflow-wrap:anywhere]">
                        {token.label || <span className="text-muted-foreground">Unlabelled</span>}
                      </TableCell>
                      <TableCell className="hidden tabular-nums md:table-cell">
                        {token.usedCount} / {token.maxUses}
                      </TableCell>
                      <TableCell className="hidden text-muted-foreground md:table-cell" title={formatDateTime(token.expiresAt)}>
                        {formatUntil(token.expiresAt, now)}
                      </TableCell>
                      <TableCell>
                        <Badge
                          variant={statusVariant[status]}
                          data-testid="enrollment-token-status"
                          title={token.revokedAt ? `Revoked ${formatDateTime(token.revokedAt)}` : undefined}
                        >
                          {status}
                        </Badge>
                      </TableCell>
                      <TableCell className="hidden text-muted-foreground md:table-cell" title={`Created ${formatDateTime(token.createdAt)}`}>
                        {token.createdBy ? actorLabel(token.createdBy) : "—"}
                      </TableCell>
                      <TableCell className="text-right">
                        {canRevokeEnrollmentTokens && status === "active" ? <RevokeTokenButton token={token} /> : null}
                      </TableCell>
                    </TableRow>
                  );
                })
              )}
            </TableBody>
          </Table>
        </div>
      </CardContent>
    </Card>
  );
}
