import { POLICY_SECTIONS, PolicySettings } from "@mdm/contracts";
import type { z } from "zod";

// The policy editor's fields come from the contract schema itself: each section of
// PolicySettings (kiosk, restrictions, screen) is walked, and each leaf becomes a field of
// the kind its zod type says. A setting added to the schema shows up in the editor.

export type PolicyField =
  | { path: string; label: string; description?: string; kind: "boolean" }
  | { path: string; label: string; description?: string; kind: "number"; min?: number; max?: number }
  | { path: string; label: string; description?: string; kind: "enum"; options: string[] }
  | { path: string; label: string; description?: string; kind: "packages" };

export type PolicySection = { key: string; label: string; description?: string; fields: PolicyField[] };

type AnySchema = z.ZodType & { def: { type: string; innerType?: AnySchema }; description?: string };

function unwrap(schema: AnySchema): AnySchema {
  return schema.def.type === "optional" || schema.def.type === "default" ? unwrap(schema.def.innerType!) : schema;
}

/** Words of setting names that are abbreviations, written as people write them. */
const ABBREVIATIONS: Record<string, string> = { usb: "USB", apk: "APK", nfc: "NFC", sms: "SMS", vpn: "VPN", wifi: "Wi-Fi" };

/** "lockTaskPackages" → "Lock task packages"; "usbFileTransfer" → "USB file transfer". */
export function labelOf(key: string): string {
  const words = key
    .replace(/([A-Z])/g, " $1")
    .toLowerCase()
    .split(" ")
    .map((word) => ABBREVIATIONS[word] ?? word)
    .join(" ");
  return words.charAt(0).toUpperCase() + words.slice(1);
}

/** A schema description (written for the API docs, names in backticks) as parts: text, and code to show as code. */
export function codeSpans(text: string): Array<{ text: string; code: boolean }> {
  return text
    .split("`")
    .map((part, index) => ({ text: part, code: index % 2 === 1 }))
    .filter((part) => part.text !== "");
}

function fieldOf(path: string, key: string, schema: AnySchema): PolicyField | undefined {
  const inner = unwrap(schema);
  const base = { path, label: labelOf(key), description: schema.description ?? inner.description };
  switch (inner.def.type) {
    case "boolean":
      return { ...base, kind: "boolean" };
    case "number": {
      const number = inner as unknown as z.ZodNumber;
      return { ...base, kind: "number", min: number.minValue ?? undefined, max: number.maxValue ?? undefined };
    }
    case "enum":
      return { ...base, kind: "enum", options: (inner as unknown as z.ZodEnum).options as string[] };
    case "array":
    case "string":
      return { ...base, kind: "packages" };
    default:
      return undefined;
  }
}

export function policySections(): PolicySection[] {
  return POLICY_SECTIONS.map((key) => {
    const section = unwrap(PolicySettings.shape[key] as unknown as AnySchema) as unknown as z.ZodObject & AnySchema;
    const fields = Object.entries(section.shape).flatMap(([leaf, schema]) => fieldOf(`${key}.${leaf}`, leaf, schema as AnySchema) ?? []);
    return { key, label: labelOf(key), description: section.description, fields };
  });
}

export type PolicyDoc = Record<string, unknown>;

export function readPath(doc: PolicyDoc, path: string): unknown {
  const [section, leaf] = path.split(".") as [string, string | undefined];
  const value = doc[section];
  if (leaf === undefined) return value;
  return value && typeof value === "object" ? (value as Record<string, unknown>)[leaf] : undefined;
}

/** Sets (or, with undefined, unsets) one setting; an emptied section disappears. */
export function writePath(doc: PolicyDoc, path: string, value: unknown): PolicyDoc {
  const [section, leaf] = path.split(".") as [string, string | undefined];
  const next: PolicyDoc = { ...doc };
  if (leaf === undefined) {
    if (value === undefined) delete next[section];
    else next[section] = value;
    return next;
  }
  const current = { ...((doc[section] as Record<string, unknown> | undefined) ?? {}) };
  if (value === undefined) delete current[leaf];
  else current[leaf] = value;
  if (Object.keys(current).length === 0) delete next[section];
  else next[section] = current;
  return next;
}

/** "com.a.b:210" lines ↔ requiredApps. Invalid lines are kept as they are so the server names them. */
export function parseRequiredApps(text: string): Array<{ packageName: string; minVersionCode: number }> | undefined {
  const lines = text
    .split("\n")
    .map((line) => line.trim())
    .filter(Boolean);
  if (lines.length === 0) return undefined;
  return lines.map((line) => {
    const [packageName, version] = line.split(/[\s:]+/);
    return { packageName: packageName ?? "", minVersionCode: Number(version ?? 0) };
  });
}

export function formatRequiredApps(apps: unknown): string {
  if (!Array.isArray(apps)) return "";
  return apps.map((app: { packageName: string; minVersionCode: number }) => `${app.packageName}:${app.minVersionCode}`).join("\n");
}

export function parsePackages(text: string): string[] | undefined {
  const packages = text
    .split(/[\s,]+/)
    .map((item) => item.trim())
    .filter(Boolean);
  return packages.length > 0 ? packages : undefined;
}

/** "HH:MM" of a minute of the day. */
export function formatMinute(minute: number): string {
  return `${String(Math.floor(minute / 60)).padStart(2, "0")}:${String(minute % 60).padStart(2, "0")}`;
}
