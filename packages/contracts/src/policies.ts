import { z } from "zod";
import { DateTime, GroupName, Uuid, nonEmptyText, text } from "./primitives";

// ---- The policy document ---------------------------------------------------------------
// A policy is desired state for dedicated devices. Every setting is optional: a policy sets
// only what it names, and a device's effective policy is merged setting by setting from the
// policies assigned to it (see EffectivePolicy). A "setting" is a leaf of a section (e.g.
// `kiosk.statusBar`) or a whole top-level value (`systemUpdate`, `requiredApps`,
// `autoRelaunch`); lists are one setting each, never merged item by item.

const PackageName = z
  .string()
  .max(255)
  .regex(/^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)+$/, "Must be an Android package name");
const MinuteOfDay = z.int().min(0).max(1439).describe("Minutes after local midnight on the device (0-1439).");

export const KioskSettings = z
  .strictObject({
    lockTaskPackages: z.array(PackageName).min(1).max(50).describe("Apps allowed in lock-task mode, each once; the first is kept in front."),
    homeApp: PackageName.describe(
      "The launcher the device uses as its home screen. With `lockTaskPackages` in the same policy, it must be one of them: Android starts no app in lock-task mode that is not allowed there, so a home app outside the list leaves a kiosk without its home screen.",
    ),
    statusBar: z.boolean().describe("Whether the status bar is shown."),
    notifications: z.boolean().describe("Whether notifications are shown in lock-task mode."),
    homeKey: z.boolean().describe("Whether the home key works in lock-task mode."),
    recentsKey: z.boolean().describe("Whether the recents (overview) key works in lock-task mode."),
  })
  .partial();

export const RestrictionSettings = z
  .strictObject({
    camera: z.boolean(),
    usbFileTransfer: z.boolean(),
    debugging: z.boolean(),
    factoryReset: z.boolean(),
    safeMode: z.boolean(),
    addUsers: z.boolean(),
    installUnknownApps: z.boolean(),
  })
  .partial()
  .describe("Each `true` allows the feature, `false` forbids it (a device-owner user restriction).");

export const ScreenSettings = z
  .strictObject({
    timeoutSeconds: z.int().min(5).max(86_400).describe("Screen-off timeout."),
    brightness: z.int().min(0).max(100).describe("Fixed brightness in percent (turns adaptive brightness off)."),
    orientationLock: z.enum(["none", "portrait", "landscape"]),
    keepAwakeWhileCharging: z.boolean(),
  })
  .partial();

export const SystemUpdateSetting = z
  .discriminatedUnion("type", [
    z.strictObject({ type: z.literal("automatic") }),
    z.strictObject({ type: z.literal("windowed"), startMinute: MinuteOfDay, endMinute: MinuteOfDay }),
    z.strictObject({ type: z.literal("postponed") }).describe("Postponed for up to 30 days (Android's limit)."),
  ])
  .refine((value) => value.type !== "windowed" || value.startMinute !== value.endMinute, { message: "The window must not be empty", path: ["endMinute"] });

export const RequiredApp = z.strictObject({
  packageName: PackageName,
  minVersionCode: z.int().min(1).max(2_100_000_000).describe("The device is non-compliant until it runs at least this version code."),
});
export type RequiredApp = z.infer<typeof RequiredApp>;

export const PolicySettings = z.strictObject({
  kiosk: KioskSettings.optional(),
  restrictions: RestrictionSettings.optional(),
  screen: ScreenSettings.optional(),
  systemUpdate: SystemUpdateSetting.optional(),
  requiredApps: z
    .array(RequiredApp)
    .max(100)
    .optional()
    .describe(
      "Apps that must be installed, by package name and minimum version code. A device whose heartbeat's `apps` lacks one at that version is `failed` until it reports it; the server sends the newest catalogue version that satisfies it (install_app) when the device's effective policy changes, or when such a version is uploaded, and sends it again after a backoff when that install fails or expires.",
    ),
  autoRelaunch: z.array(PackageName).max(50).optional().describe("Apps the server relaunches when a heartbeat reports them not running, each once."),
});
export type PolicySettings = z.infer<typeof PolicySettings>;

/** The indexes of text items equal to an earlier one (other items are the schema's to refuse). */
function duplicates(items: unknown): number[] {
  if (!Array.isArray(items)) return [];
  return items.flatMap((item, index) => (typeof item === "string" && items.indexOf(item) < index ? [index] : []));
}

const fieldsOf = (value: unknown): Record<string, unknown> =>
  value !== null && typeof value === "object" && !Array.isArray(value) ? (value as Record<string, unknown>) : {};

/**
 * A document as an admin writes it: PolicySettings, plus the rules between its fields. Only
 * requests are held to them: a device's merged policy may take `homeApp` and
 * `lockTaskPackages` from two policies (the server warns then), and documents saved before
 * these rules still parse.
 *
 * The rules run even when other fields are invalid (`when`), on the input as it came, so one
 * 400 names every problem of the document; zod would otherwise skip them after a wrong type
 * anywhere in it, and an admin would fix one error only to meet the next.
 */
export const PolicyDocument = PolicySettings.superRefine(
  (input: unknown, ctx) => {
    const twice = (path: PropertyKey[], name: string, what: string) => ctx.addIssue({ code: "custom", message: `${name} is listed twice: ${what}`, path });
    const settings = fieldsOf(input);
    const kiosk = fieldsOf(settings.kiosk);
    const lockTask = kiosk.lockTaskPackages;
    for (const index of duplicates(lockTask)) twice(["kiosk", "lockTaskPackages", index], (lockTask as string[])[index]!, "list each app once");
    const autoRelaunch = settings.autoRelaunch;
    for (const index of duplicates(autoRelaunch)) twice(["autoRelaunch", index], (autoRelaunch as string[])[index]!, "list each app once");
    const required = Array.isArray(settings.requiredApps) ? settings.requiredApps.map((app) => fieldsOf(app).packageName) : undefined;
    for (const index of duplicates(required)) {
      twice(["requiredApps", index, "packageName"], required![index] as string, "name each required app once, with one minimum version code");
    }
    const homeApp = kiosk.homeApp;
    if (typeof homeApp === "string" && Array.isArray(lockTask) && !lockTask.includes(homeApp)) {
      ctx.addIssue({
        code: "custom",
        message: `The home app ${homeApp} must be one of lockTaskPackages: Android does not start it in lock-task mode otherwise`,
        path: ["kiosk", "homeApp"],
      });
    }
  },
  { when: () => true },
);

/** Sections whose keys are settings of their own; other top-level keys are one setting each. */
export const POLICY_SECTIONS = ["kiosk", "restrictions", "screen"] as const;

/** Every setting a document sets, as `[path, value]`: `kiosk.statusBar`, `systemUpdate`, ... */
export function policySettingEntries(settings: PolicySettings): Array<[string, unknown]> {
  const entries: Array<[string, unknown]> = [];
  for (const [key, value] of Object.entries(settings)) {
    if (value === undefined) continue;
    if ((POLICY_SECTIONS as readonly string[]).includes(key)) {
      for (const [leaf, leafValue] of Object.entries(value as Record<string, unknown>))
        if (leafValue !== undefined) entries.push([`${key}.${leaf}`, leafValue]);
    } else {
      entries.push([key, value]);
    }
  }
  return entries;
}

// ---- Policies, versions, assignments ----------------------------------------------------

export const PolicyAssignment = z.object({
  id: Uuid,
  policyId: Uuid,
  kind: z.enum(["device", "group"]),
  deviceId: Uuid.nullable(),
  group: z.string().nullable(),
  priority: z.int().describe("Between group assignments, the higher priority wins a setting; a device assignment always beats a group one."),
  createdAt: DateTime,
});
export type PolicyAssignment = z.infer<typeof PolicyAssignment>;

export const PolicyWarning = z.object({
  path: z.string().describe("The setting concerned, e.g. `requiredApps.com.example.kiosk`."),
  message: z.string(),
});
export type PolicyWarning = z.infer<typeof PolicyWarning>;

const Warnings = z
  .array(PolicyWarning)
  .default([])
  .describe(
    "What the server cannot do for this policy as it stands, e.g. a required app the app catalogue has no satisfying version of. Saving is not refused.",
  );

export const DevicePolicyView = z.object({
  id: Uuid,
  name: z.string(),
  description: z.string().nullable(),
  version: z.int().describe("Bumped by every change (a revert too)."),
  settings: PolicySettings,
  assignments: z.array(PolicyAssignment),
  warnings: Warnings,
  createdAt: DateTime,
  updatedAt: DateTime,
  updatedBy: z.string(),
});
export type DevicePolicyView = z.infer<typeof DevicePolicyView>;

export const ListDevicePoliciesResponse = z.object({ policies: z.array(DevicePolicyView) });
export type ListDevicePoliciesResponse = z.infer<typeof ListDevicePoliciesResponse>;

// Names tell policies apart in lists and assignments: spaces alone name nothing.
const PolicyName = nonEmptyText(100).refine((name) => name.trim().length > 0, { message: "Must not be blank" });

export const CreateDevicePolicyRequest = z.strictObject({
  name: PolicyName,
  description: text(500).optional(),
  settings: PolicyDocument,
});
export type CreateDevicePolicyRequest = z.infer<typeof CreateDevicePolicyRequest>;

export const UpdateDevicePolicyRequest = z.strictObject({
  name: PolicyName.optional(),
  description: text(500).nullable().optional(),
  settings: PolicyDocument.optional().describe("The whole document: settings left out are no longer set by this policy."),
  expectedVersion: z
    .int()
    .min(1)
    .max(2_147_483_647)
    .optional()
    .describe("Refuse (409) unless the policy is still at this version: no lost update between two editors."),
});
export type UpdateDevicePolicyRequest = z.infer<typeof UpdateDevicePolicyRequest>;

export const PolicyChange = z.object({
  path: z.string().describe("The setting (`kiosk.statusBar`), or `name` / `description`."),
  before: z.unknown().optional().describe("Absent: not set."),
  after: z.unknown().optional().describe("Absent: no longer set."),
});
export type PolicyChange = z.infer<typeof PolicyChange>;

export const DevicePolicyVersion = z.object({
  version: z.int(),
  name: z.string(),
  description: z.string().nullable(),
  settings: PolicySettings,
  createdAt: DateTime,
  createdBy: z.string(),
  revertedFrom: z.int().nullable().describe("Set when this version restored an earlier one."),
  changes: z.array(PolicyChange).describe("What this version changed from the previous one."),
});
export type DevicePolicyVersion = z.infer<typeof DevicePolicyVersion>;

export const ListDevicePolicyVersionsResponse = z.object({ versions: z.array(DevicePolicyVersion).describe("Newest first.") });
export type ListDevicePolicyVersionsResponse = z.infer<typeof ListDevicePolicyVersionsResponse>;

export const CreatePolicyAssignmentRequest = z.union([
  z.strictObject({ deviceId: Uuid, priority: z.int().min(-1000).max(1000).default(0) }),
  z.strictObject({ group: GroupName, priority: z.int().min(-1000).max(1000).default(0) }),
]);
export type CreatePolicyAssignmentRequest = z.infer<typeof CreatePolicyAssignmentRequest>;

export const DevicePolicyIdParams = z.object({ policyId: Uuid });
export const PolicyAssignmentParams = z.object({ policyId: Uuid, assignmentId: Uuid });
export const PolicyVersionParams = z.object({
  policyId: Uuid,
  // A plain decimal integer as versions are numbered (not 1e0, 0x1, 01 or 1.0).
  version: z
    .string()
    .regex(/^[1-9]\d{0,9}$/, { message: "Must be a version number: a decimal integer from 1, without sign, exponent or leading zero", abort: true })
    .transform(Number)
    .pipe(z.int().max(2_147_483_647))
    .describe("The version whose name, description and settings become a new version."),
});

// ---- What a device receives and reports --------------------------------------------------

export const DevicePolicy = z
  .object({
    hash: z.string().describe("Identifies this effective policy: report it back once applied."),
    settings: PolicySettings,
  })
  .describe(
    "A device's effective policy: apply every setting, then report `hash` (and any setting that could not be applied) in the next heartbeat's `policy`.",
  );
export type DevicePolicy = z.infer<typeof DevicePolicy>;

export const PolicyPushData = z
  .object({
    kind: z.literal("policy"),
    hash: z.string().describe("The effective policy waiting for the device."),
  })
  .describe(
    "The FCM data message that wakes a device without a socket when its effective policy changes: send a heartbeat (or open the socket) to receive the policy.",
  );
export type PolicyPushData = z.infer<typeof PolicyPushData>;

export const PolicyFailure = z.object({
  setting: text(100).describe("The setting's path, e.g. `restrictions.camera`."),
  reason: text(500),
});
export type PolicyFailure = z.infer<typeof PolicyFailure>;

export const PolicyReport = z
  .object({
    appliedHash: text(64).describe("The `hash` of the effective policy the device applied."),
    failures: z
      .array(PolicyFailure)
      .max(50)
      .default([])
      .describe(
        "Settings of that policy the device could not apply, with why. Each `setting` must be a path of the device's effective policy (`kiosk.statusBar`, `screen.timeoutSeconds`, `systemUpdate`, `requiredApps`...): one that is not is left out of what the server keeps, and the answer names it in `ignoredPolicyFailures`; the heartbeat is recorded all the same. Several entries for one setting are kept as one, with the last entry's reason.",
      ),
  })
  .describe("Send once a policy is applied (and in every later heartbeat, or only when it changes: the server keeps the last report).");
export type PolicyReport = z.infer<typeof PolicyReport>;

export const IgnoredPolicyFailure = z.object({
  path: z.string().describe("The entry in the heartbeat, e.g. `policy.failures.0.setting`."),
  message: z.string(),
});
export type IgnoredPolicyFailure = z.infer<typeof IgnoredPolicyFailure>;

export const IgnoredPolicyFailures = z
  .array(IgnoredPolicyFailure)
  .describe(
    "Present when the heartbeat's `policy.failures` named settings that are not paths of the device's effective policy: those entries were not kept (the rest of the heartbeat was). Fix the agent's report.",
  );

// ---- Effective policy and compliance -----------------------------------------------------

export const ComplianceStatus = z
  .enum(["none", "pending", "compliant", "failed"])
  .describe(
    "`none`: no policy applies; `pending`: the device has not reported applying its current effective policy; `failed`: it applied it but refused some settings, or its reported apps lack a required app at its minimum version (see `missingApps`).",
  );
export type ComplianceStatus = z.infer<typeof ComplianceStatus>;

export const SettingSource = z.object({
  path: z.string(),
  value: z.unknown(),
  policyId: Uuid,
  policyName: z.string(),
  policyVersion: z.int(),
  assignment: PolicyAssignment.pick({ id: true, kind: true, group: true, priority: true }),
});
export type SettingSource = z.infer<typeof SettingSource>;

export const RequiredAppInstallState = z
  .object({
    versionCode: z.int().describe("The catalogue version sent."),
    attempts: z.int().describe("install_app commands sent for this version so far."),
    maxAttempts: z.int().describe("After this many failed sends of one version the server stops retrying."),
    requestId: Uuid.describe("The last install_app command sent."),
    sentAt: DateTime,
    lastFailure: z.string().nullable().describe("Why the last failed send failed (the device's error, or why it expired); null while none failed."),
    failedAt: DateTime.nullable(),
    nextAttemptAt: DateTime.nullable().describe("When the server sends it again after a failure; null while a send is under way, or once it gave up."),
    gaveUp: z
      .boolean()
      .describe(
        "Every attempt failed: nothing more is sent until a newer catalogue version, or a change of the device's effective policy, starts the count again.",
      ),
  })
  .describe(
    "The server's install_app commands for this required app: a failed or expired one is sent again after a delay doubling from 5 minutes up to 6 hours, at most `maxAttempts` times per version.",
  );
export type RequiredAppInstallState = z.infer<typeof RequiredAppInstallState>;

export const MissingApp = z.object({
  packageName: z.string(),
  minVersionCode: z.int(),
  installedVersionCode: z.int().nullable().describe("The version code the device last reported; null when it does not report the app (or its version)."),
  catalogueVersionCode: z
    .int()
    .nullable()
    .describe(
      "The catalogue version required apps install that satisfies the requirement, which the server sends; null when there is none (none uploaded, or only versions whose release was rolled back or is still in progress: `reason` names them).",
    ),
  install: RequiredAppInstallState.nullable().describe("The server's installs of it; null before any was sent."),
  reason: z.string(),
});
export type MissingApp = z.infer<typeof MissingApp>;

export const EffectivePolicyResponse = z.object({
  deviceId: Uuid,
  hash: z.string().nullable().describe("The effective policy's hash; null while no policy ever applied to the device."),
  settings: PolicySettings,
  sources: z.array(SettingSource).describe("Where each setting comes from: the winning policy, its version and the assignment."),
  compliance: z.object({
    status: ComplianceStatus,
    appliedHash: z.string().nullable(),
    reportedAt: DateTime.nullable(),
    failures: z.array(PolicyFailure),
    missingApps: z
      .array(MissingApp)
      .describe("Required apps the device's last reported app list lacks at their minimum version: it is non-compliant until it reports them."),
  }),
  warnings: Warnings,
});
export type EffectivePolicyResponse = z.infer<typeof EffectivePolicyResponse>;

export const PolicyComplianceSummary = z.object({ none: z.int(), pending: z.int(), compliant: z.int(), failed: z.int() });
export type PolicyComplianceSummary = z.infer<typeof PolicyComplianceSummary>;
