import { createHash } from "node:crypto";
import { POLICY_SECTIONS, type PolicySettings, type SettingSource, canonicalJson, policySettingEntries } from "@mdm/contracts";

/** A policy assigned to a device, directly or through one of its groups. */
export type Candidate = {
  assignment: { id: string; kind: "device" | "group"; group: string | null; priority: number };
  policy: { id: string; name: string; version: number; settings: PolicySettings; createdAt: Date };
};

/**
 * Precedence, highest first: a device assignment beats any group assignment; between
 * group assignments (and between device ones) the higher priority wins; ties go to the
 * policy created first, then to the smaller id, so the order never depends on row order.
 */
export function byPrecedence(a: Candidate, b: Candidate): number {
  if (a.assignment.kind !== b.assignment.kind) return a.assignment.kind === "device" ? -1 : 1;
  if (a.assignment.priority !== b.assignment.priority) return b.assignment.priority - a.assignment.priority;
  const age = a.policy.createdAt.getTime() - b.policy.createdAt.getTime();
  if (age !== 0) return age;
  return a.policy.id < b.policy.id ? -1 : a.policy.id > b.policy.id ? 1 : 0;
}

/** Merges the candidates setting by setting: each setting comes from the highest-precedence policy that sets it. */
export function mergePolicies(candidates: Candidate[]): { settings: PolicySettings; sources: SettingSource[] } {
  const sources = new Map<string, SettingSource>();
  for (const candidate of [...candidates].sort(byPrecedence)) {
    for (const [path, value] of policySettingEntries(candidate.policy.settings)) {
      if (sources.has(path)) continue;
      sources.set(path, {
        path,
        value,
        policyId: candidate.policy.id,
        policyName: candidate.policy.name,
        policyVersion: candidate.policy.version,
        assignment: candidate.assignment,
      });
    }
  }
  const settings: Record<string, unknown> = {};
  for (const { path, value } of sources.values()) {
    const [section, leaf] = path.split(".") as [string, string | undefined];
    if (leaf !== undefined && (POLICY_SECTIONS as readonly string[]).includes(section)) {
      settings[section] = { ...(settings[section] as object | undefined), [leaf]: value };
    } else {
      settings[section] = value;
    }
  }
  return { settings: settings as PolicySettings, sources: [...sources.values()].sort((a, b) => a.path.localeCompare(b.path)) };
}

/** The hash a device reports back once it applied these settings: SHA-256 of their canonical JSON. */
export function policyHash(settings: PolicySettings): string {
  return createHash("sha256").update(canonicalJson(settings)).digest("hex");
}
