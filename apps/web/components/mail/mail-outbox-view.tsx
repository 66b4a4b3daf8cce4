"use client";

import type { OutboxMail } from "@mdm/contracts";
import { MailWarningIcon } from "lucide-react";
import { Fragment } from "react";
import { usePermissions } from "@/components/layout/session-context";
import { PageHeader } from "@/components/page-header";
import { EmptyState, ErrorState } from "@/components/states";
import { Button } from "@/components/ui/button";
import { Skeleton } from "@/components/ui/skeleton";
import { Table, TableBody, TableCell, TableHead, TableHeader, TableRow } from "@/components/ui/table";
import { formatDateTime } from "@/lib/format";
import { useMailOutbox } from "@/lib/swr/use-mail-outbox";
import { MailStatusBadge } from "./mail-status-badge";

const kindLabel: Record<OutboxMail["kind"], string> = { invite: "invitation", password_reset: "password reset", alert: "alert" };

/** The mail's text with its http(s) links clickable: how a recorded invitation reaches its invitee. */
function MailText({ text }: { text: string }) {
  const parts = text.split(/(https?:\/\/[^\s<>"']+)/g);
  return (
    <pre className="mt-2 max-w-3xl overflow-x-auto rounded-md bg-muted/50 p-3 font-sans text-sm whitespace-pre-wrap">
      {parts.map((part, index) =>
        index % 2 === 1 ? (
          // biome-ignore lint/suspicious/noArrayIndexKey: the parts of one fixed text, never reordered
          <a key={index} href={part} target="_blank" rel="noreferrer" className="break-all text-primary underline underline-offset-4">
            {part}
          </a>
        ) : (
          // biome-ignore lint/suspicious/noArrayIndexKey: as above
          <Fragment key={index}>{part}</Fragment>
        ),
      )}
    </pre>
  );
}

function MailRow({ mail }: { mail: OutboxMail }) {
  return (
    <TableRow data-testid="mail-row" className="align-top">
      <TableCell className="hidden whitespace-nowrap text-muted-foreground md:table-cell">{formatDateTime(mail.createdAt)}</TableCell>
      <TableCell className="hidden md:table-cell">{kindLabel[mail.kind]}</TableCell>
      <TableCell className="hidden text-muted-foreground md:table-cell">{mail.to.join(", ")}</TableCell>
      <TableCell className="max-w-3xl break-words whitespace-normal [overflow-wrap:anywhere]">
        <div className="font-medium">{mail.subject}</div>
        {/* The columns narrow screens hide, in one line. */}
        <div className="text-xs text-muted-foreground md:hidden">
          {kindLabel[mail.kind]} to {mail.to.join(", ")} · {formatDateTime(mail.createdAt)}
        </div>
        {mail.text ? <MailText text={mail.text} /> : null}
        {mail.lastError ? <p className="mt-1 text-xs text-destructive">{mail.lastError}</p> : null}
      </TableCell>
      <TableCell>
        <MailStatusBadge status={mail.status} />
        <div className="mt-1 text-xs text-muted-foreground">
          {mail.status === "queued" && mail.nextAttemptAt ? `next try ${formatDateTime(mail.nextAttemptAt)}` : null}
          {mail.attempts > 1 ? ` · ${mail.attempts} attempts` : null}
        </div>
      </TableCell>
    </TableRow>
  );
}

export function MailOutboxView() {
  const { canViewMail } = usePermissions();
  const outbox = useMailOutbox(canViewMail);
  if (!canViewMail) return <EmptyState title="Only admins see the mail outbox" />;
  return (
    <div className="flex flex-col gap-6">
      <PageHeader
        title="Mail"
        description={
          outbox.provider && outbox.sending
            ? `Every mail this server sends, newest first. Provider: ${outbox.provider === "smtp" ? "SMTP" : "Resend"}.`
            : "Every mail this server was asked to send, newest first."
        }
      />
      {outbox.sending === false ? (
        <div role="alert" className="flex items-start gap-3 rounded-lg border border-warning/60 bg-warning/15 p-4 text-sm">
          <MailWarningIcon className="mt-0.5 size-5 shrink-0" aria-hidden />
          <div>
            <p className="font-medium">Mail is not being sent: no provider configured (set RESEND_API_KEY or SMTP_URL).</p>
            <p className="mt-1 text-muted-foreground">
              Invitations, password resets and alerts are recorded here and in the server log instead. Open or pass on their links yourself; each works once.
            </p>
          </div>
        </div>
      ) : null}
      <div className="rounded-lg border">
        {outbox.error && !outbox.data ? (
          <ErrorState error={outbox.error} onRetry={() => void outbox.mutate()} />
        ) : !outbox.data ? (
          <Skeleton className="m-2 h-24" />
        ) : outbox.mails.length === 0 ? (
          <EmptyState title="No mail yet">Invitations, password resets and alerts appear here.</EmptyState>
        ) : (
          <Table className="table-fixed md:table-auto" /* below md the mail's long lines wrap in its column, keeping the status on screen */>
            <TableHeader>
              <TableRow>
                <TableHead className="hidden md:table-cell">Created</TableHead>
                <TableHead className="hidden md:table-cell">Kind</TableHead>
                <TableHead className="hidden md:table-cell">To</TableHead>
                <TableHead>Mail</TableHead>
                <TableHead className="w-36 md:w-auto">Status</TableHead>
              </TableRow>
            </TableHeader>
            <TableBody>
              {outbox.mails.map((mail) => (
                <MailRow key={mail.id} mail={mail} />
              ))}
            </TableBody>
          </Table>
        )}
      </div>
      {outbox.hasMore ? (
        <Button variant="outline" className="self-center" disabled={outbox.isValidating} onClick={() => void outbox.loadMore()}>
          Load more
        </Button>
      ) : null}
    </div>
  );
}
