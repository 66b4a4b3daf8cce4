import type { AuditLogEntry } from "@mdm/contracts";
import Link from "next/link";
import { shortId } from "@/lib/format";

/** A detail value for people: text as is, lists joined, nested objects as `key: value` pairs. */
export function formatDetailValue(value: unknown): string {
  if (value === null || value === undefined) return "—";
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  if (Array.isArray(value)) return value.map(formatDetailValue).join(", ");
  if (typeof value === "object") {
    return Object.entries(value as Record<string, unknown>)
      .map(([key, inner]) => `${key}: ${formatDetailValue(inner)}`)
      .join("; ");
  }
  return String(value);
}

/** An entry's details as a wrapped list of fields, never cut off. */
export function AuditDetails({ details }: { details: AuditLogEntry["details"] }) {
  if (!details || Object.keys(details).length === 0) return <span className="text-muted-foreground">—</span>;
  return (
    <dl className="grid grid-cols-[auto_1fr] gap-x-2 gap-y-0.5 text-xs" data-testid="audit-details">
      {Object.entries(details).map(([key, value]) => (
        <div key={key} className="contents">
          <dt className="text-muted-foreground">{key}</dt>
          <dd className="whitespace-normal [overflow-wrap:anywhere]">{formatDetailValue(value)}</dd>
        </div>
      ))}
    </dl>
  );
}

/** The target by name when the API knows it (a device links to its page), its id else. */
export function AuditTarget({ entry }: { entry: AuditLogEntry }) {
  if (!entry.targetType) return <span className="text-muted-foreground">—</span>;
  const label = entry.targetName ?? (entry.targetId ? shortId(entry.targetId) : "");
  return (
    <span className="flex flex-col">
      <span className="text-muted-foreground">{entry.targetType.replace(/_/g, " ")}</span>
      {entry.targetType === "device" && entry.targetId ? (
        <Link href={`/devices/${entry.targetId}`} className="hover:underline" title={entry.targetId}>
          {label}
        </Link>
      ) : (
        <span title={entry.targetId ?? undefined}>{label}</span>
      )}
    </span>
  );
}
