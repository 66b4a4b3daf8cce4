import Link from "next/link";
import { AlertTriangleIcon, InboxIcon } from "lucide-react";
import { Button } from "@/components/ui/button";
import { Skeleton } from "@/components/ui/skeleton";
import { TableCell, TableRow } from "@/components/ui/table";
import { errorMessage } from "@/lib/api";
import { cn } from "@/lib/utils";

export function EmptyState({ title, children, className }: { title: string; children?: React.ReactNode; className?: string }) {
  return (
    <div className={cn("flex flex-col items-center justify-center gap-2 px-4 py-10 text-center", className)}>
      <InboxIcon className="size-8 text-muted-foreground" aria-hidden />
      <p className="font-medium">{title}</p>
      {children ? <div className="max-w-md text-sm text-muted-foreground">{children}</div> : null}
    </div>
  );
}

export function ErrorState({ error, onRetry, className }: { error: unknown; onRetry?: () => void; className?: string }) {
  return (
    <div role="alert" className={cn("flex flex-col items-center justify-center gap-2 px-4 py-10 text-center", className)}>
      <AlertTriangleIcon className="size-8 text-destructive" aria-hidden />
      <p className="font-medium">Could not load this</p>
      <p className="max-w-md text-sm text-muted-foreground">{errorMessage(error)}</p>
      {onRetry ? (
        <Button variant="outline" size="sm" onClick={onRetry}>
          Try again
        </Button>
      ) : null}
    </div>
  );
}

/**
 * What a table shows while it has no rows: the error (with a retry), skeleton rows while
 * loading, or its empty state. Tables render this instead of their rows.
 */
export function TableStatusRows({
  columns,
  error,
  loading,
  empty,
  onRetry,
  skeletonRows = 3,
}: {
  columns: number;
  error: unknown;
  loading: boolean;
  empty: React.ReactNode;
  onRetry?: () => void;
  skeletonRows?: number;
}) {
  const row = (content: React.ReactNode, key?: number) => (
    <TableRow key={key}>
      <TableCell colSpan={columns}>{content}</TableCell>
    </TableRow>
  );
  if (error) return row(<ErrorState error={error} onRetry={onRetry} />);
  if (loading) return <>{Array.from({ length: skeletonRows }, (_, index) => row(<Skeleton className="h-6 w-full" />, index))}</>;
  return row(empty);
}

/** What an address no page claims shows, inside the dashboard's frame or on its own. */
export function NotFoundMessage() {
  return (
    <>
      <h1 className="text-2xl font-semibold">Page not found</h1>
      <p className="text-muted-foreground">There is nothing at this address.</p>
      <Button asChild variant="outline">
        <Link href="/" prefetch={false}>
          Back to the overview
        </Link>
      </Button>
    </>
  );
}
