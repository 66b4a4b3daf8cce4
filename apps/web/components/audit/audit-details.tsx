import type { AuditLogEntry } from "@mdm/contracts";
import Link from "next/link";
import { Fragment } from "react";
import { shortId } from "@/lib/format";

/** A detail value for people: text as is, lists joined, lists of ids summed up, nested objects as `key: value` pairs. */
export function formatDetailValue(value: unknown, key = ""): string {
  if (value === null || value === undefined) return "—";
  if (typeof value === "string") return value;
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  if (Array.isArray(value)) return formatIdList(key, value) ?? value.map((item) => formatDetailValue(item)).join(", ");
  if (typeof value === "object") {
    return Object.entries(value as Record<string, unknown>)
      .map(([name, inner]) => `${name}: ${formatDetailValue(inner, name)}`)
      .join("; ");
  }
  return String(value);
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** How many ids of a list show before it is expanded. */
export const SHOWN_IDS = 3;

/** The ids of a list of ids (a bulk command's `deviceIds`), or undefined for any other value. */
function idList(value: unknown): string[] | undefined {
  if (!Array.isArray(value) || value.length === 0) return undefined;
  return value.every((item) => typeof item === "string" && UUID.test(item)) ? (value as string[]) : undefined;
}

/**
 * A list of ids for people: its count and the first few short ids ("12 devices: f874cdb4,
 * 1a2b3c4d, 5e6f7a8b and 9 more"), not a screenful of UUIDs; undefined for any other value.
 */
export function formatIdList(key: string, value: unknown): string | undefined {
  const ids = idList(value);
  if (!ids) return undefined;
  const [singular, plural] = key === "deviceIds" ? ["device", "devices"] : ["id", "ids"];
  const shown = ids.slice(0, SHOWN_IDS).map(shortId).join(", ");
  const more = ids.length > SHOWN_IDS ? ` and ${ids.length - SHOWN_IDS} more` : "";
  return `${ids.length} ${ids.length === 1 ? singular : plural}: ${shown}${more}`;
}

/** A long list of ids: the summary, expandable to every id (device ids link to their pages). */
function IdListValue({ name, ids }: { name: string; ids: string[] }) {
  const summary = formatIdList(name, ids);
  if (ids.length <= SHOWN_IDS) return <>{summary}</>;
  return (
    <details>
      <summary className="cursor-pointer">{summary}</summary>
      <ul className="mt-1 flex flex-wrap gap-x-2 font-mono">
        {ids.map((id) => (
          <li key={id}>
            {name === "deviceIds" ? (
              <Link href={`/devices/${id}`} prefetch={false} className="hover:underline" title={id}>
                {shortId(id)}
              </Link>
            ) : (
              <span title={id}>{shortId(id)}</span>
            )}
          </li>
        ))}
      </ul>
    </details>
  );
}

/** A value as formatDetailValue words it, but a long list of ids (a bulk command's `target.deviceIds`) expandable. */
function DetailValue({ name, value }: { name: string; value: unknown }) {
  const ids = idList(value);
  if (ids) return <IdListValue name={name} ids={ids} />;
  if (value && typeof value === "object" && !Array.isArray(value)) {
    return Object.entries(value as Record<string, unknown>).map(([inner, innerValue], index) => (
      <Fragment key={inner}>
        {index > 0 ? "; " : null}
        {inner}: <DetailValue name={inner} value={innerValue} />
      </Fragment>
    ));
  }
  return <>{formatDetailValue(value, name)}</>;
}

/** An entry's details as a wrapped list of fields, never cut off; lists of ids summed up. */
export function AuditDetails({ details }: { details: AuditLogEntry["details"] }) {
  if (!details || Object.keys(details).length === 0) return <span className="text-muted-foreground">—</span>;
  return (
    <dl className="grid grid-cols-[auto_1fr] gap-x-2 gap-y-0.5 text-xs" data-testid="audit-details">
      {Object.entries(details).map(([key, value]) => (
        <div key={key} className="contents">
          <dt className="text-muted-foreground">{key}</dt>
          <dd className="whitespace-normal [overflow-wrap:anywhere]">
            <DetailValue name={key} value={value} />
          </dd>
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
        // A page of entries would prefetch every device page it names, and abort them on leaving.
        <Link href={`/devices/${entry.targetId}`} prefetch={false} className="hover:underline" title={entry.targetId}>
          {label}
        </Link>
      ) : (
        <span title={entry.targetId ?? undefined}>{label}</span>
      )}
    </span>
  );
}
