import { AlertTriangleIcon } from "lucide-react";

/** A warning that stays on the page until its cause is fixed (not a toast): a title and what to do. */
export function WarningNotice({ title, children, id, testId }: { title: React.ReactNode; children: React.ReactNode; id?: string; testId?: string }) {
  return (
    <div id={id} role="alert" className="flex gap-3 rounded-lg border border-warning/50 bg-warning/10 p-4 text-sm" data-testid={testId}>
      <AlertTriangleIcon className="size-5 shrink-0 text-warning" aria-hidden />
      <div className="flex flex-col gap-1">
        <p className="font-medium">{title}</p>
        <div className="text-muted-foreground">{children}</div>
      </div>
    </div>
  );
}
