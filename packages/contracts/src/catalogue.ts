import { z } from "zod";
import { DateTime, GroupName, Uuid, text } from "./primitives";

export const Sha256Hex = z.string().regex(/^[a-f0-9]{64}$/, "Must be a SHA-256 as 64 lowercase hex digits");

export const CataloguePackageName = z
  .string()
  .max(255)
  .regex(/^[A-Za-z][A-Za-z0-9_]*(\.[A-Za-z][A-Za-z0-9_]*)+$/, "Must be an Android package name such as com.example.app");

export const AppVersion = z.object({
  id: Uuid,
  packageName: z.string(),
  versionCode: z.int(),
  versionName: z.string().nullable(),
  sha256: Sha256Hex.describe("SHA-256 of the APK file: the catalogue stores it under this, and devices check their download against it."),
  sizeBytes: z.int(),
  certSha256: Sha256Hex.describe(
    "SHA-256 of the APK's signing certificate (DER), from its verified v3.1/v3/v2 signature, else its verified v1 signature; after a key rotation, the newest certificate.",
  ),
  certLineage: z
    .array(Sha256Hex)
    .describe(
      "The signing certificates' SHA-256 from the APK's verified v3 proof-of-rotation lineage, oldest first, ending with `certSha256`; only `certSha256` when the key never rotated.",
    ),
  uploadedBy: z.string().nullable(),
  createdAt: DateTime,
});
export type AppVersion = z.infer<typeof AppVersion>;

export const UploadAppQuery = z.strictObject({
  sha256: Sha256Hex.optional().describe(
    "The file's SHA-256. Required with a signed admin request (the signature covers the query, not a streamed body): a file that hashes otherwise is refused.",
  ),
});
export type UploadAppQuery = z.infer<typeof UploadAppQuery>;

export const UploadAppResponse = z.object({
  version: AppVersion,
  created: z.boolean().describe("false when this exact version was already in the catalogue with the same file."),
});
export type UploadAppResponse = z.infer<typeof UploadAppResponse>;

export const ReleaseTarget = z.union([z.strictObject({ group: GroupName }), z.strictObject({ all: z.literal(true) })]);
export type ReleaseTarget = z.infer<typeof ReleaseTarget>;

export const AppReleaseStatus = z
  .enum(["active", "paused", "completed", "rolled_back"])
  .describe(
    "active: rolling out; paused: not advancing until resumed; completed: at 100% and sent to every device of its target in service (devices joining the target later are sent it too); rolled_back: each device it reached was sent the version it ran before (see `AppRelease.previousVersionCode`).",
  );
export type AppReleaseStatus = z.infer<typeof AppReleaseStatus>;

/** The percentages an advance without an explicit one steps through. */
export const ROLLOUT_STEPS = [5, 25, 100] as const;

export const RolloutPercent = z.int().min(1).max(100);

export const CreateReleaseRequest = z.strictObject({
  versionCode: z.int().min(1).max(2_147_483_647).describe("The catalogue version of this app to roll out."),
  target: ReleaseTarget,
  percent: RolloutPercent.default(5).describe("Share of the target that gets it now; stable: a higher percentage keeps the devices of a lower one."),
  autoAdvance: z
    .boolean()
    .default(false)
    .describe(
      "Step to the next percentage (5 → 25 → 100) by itself once every device sent to has finished and the failure rate is at most `maxFailurePercent`, or when every device of its share already runs a newer version (sent to none). Not while its target has no device in service: devices joining an active release's target are sent it when they fall in its share.",
    ),
  maxFailurePercent: z.int().min(0).max(100).default(5),
});
export type CreateReleaseRequest = z.infer<typeof CreateReleaseRequest>;

export const AdvanceReleaseRequest = z.strictObject({
  percent: RolloutPercent.optional().describe("Default: the next of 5, 25, 100."),
  reason: text(500).optional().describe("Why, for the audit log."),
});
export type AdvanceReleaseRequest = z.infer<typeof AdvanceReleaseRequest>;

export const ReleaseProgress = z.object({
  targeted: z.int().describe("Devices in the target now."),
  sent: z.int().describe("Devices the release (or its rollback) was sent to."),
  installed: z.int().describe("Devices that run the version they were sent (see the devices' `installed`)."),
  pending: z.int(),
  failed: z.int(),
  replaced: z.int().describe("Devices that installed it and report another version (or none) since."),
});
export type ReleaseProgress = z.infer<typeof ReleaseProgress>;

export const AppRelease = z.object({
  id: Uuid,
  packageName: z.string(),
  versionCode: z.int(),
  versionName: z.string().nullable(),
  previousVersionCode: z
    .int()
    .nullable()
    .describe(
      "A rollback sends each device the version it ran before the release (see the devices' `fromVersionCode`): this is the one most of them go back to (ties: the higher), now; once rolled back, the one it sent most. Null when a rollback sends (sent) no device anything.",
    ),
  rollbackDevices: z
    .int()
    .describe(
      "Devices in service a rollback sends the version they ran before, now; once rolled back, the devices it sent one (and that are still in service).",
    ),
  target: ReleaseTarget,
  percent: z.int(),
  status: AppReleaseStatus,
  autoAdvance: z.boolean(),
  maxFailurePercent: z.int(),
  progress: ReleaseProgress,
  createdBy: z.string().nullable(),
  createdAt: DateTime,
  updatedAt: DateTime,
});
export type AppRelease = z.infer<typeof AppRelease>;

export const CatalogueApp = z.object({
  packageName: z.string(),
  certSha256: Sha256Hex.describe(
    "The certificate an upload of this app must be signed with: its first upload's, then the newest one of a key rotation whose lineage named it.",
  ),
  createdAt: DateTime,
  versions: z.array(AppVersion).describe("Newest first."),
  releases: z.array(AppRelease).describe("Newest first, at most 20."),
});
export type CatalogueApp = z.infer<typeof CatalogueApp>;

/**
 * Whether releases can be started, advanced or rolled back: install commands carry a download
 * URL on the API's PUBLIC_API_URL, which must be https (devices download over the internet).
 */
export function servesAppDownloads(publicApiUrl: string | null | undefined): boolean {
  return publicApiUrl?.startsWith("https://") ?? false;
}

export const ListAppsResponse = z.object({
  apps: z.array(CatalogueApp),
  publicApiUrl: z
    .string()
    .nullable()
    .describe(
      "The API's `PUBLIC_API_URL`, null when unset. Releases (starting, advancing, rolling back) are refused with 409 unless it is an https:// address: install commands carry a download URL on it.",
    ),
});
export type ListAppsResponse = z.infer<typeof ListAppsResponse>;

export const PackageParams = z.strictObject({ packageName: CataloguePackageName });
export const AppVersionParams = z.strictObject({
  packageName: CataloguePackageName,
  // A plain decimal integer as version codes are written (not 1e0, 0x1, 01 or 1.0).
  versionCode: z
    .string()
    .regex(/^(0|[1-9]\d{0,9})$/, { message: "Must be a version code: a decimal integer without sign, exponent or leading zero", abort: true })
    .transform(Number)
    .pipe(z.int().max(2_147_483_647))
    .describe("The version code of the catalogue version."),
});
export const ReleaseParams = z.strictObject({ releaseId: Uuid });

export const ReleaseDeviceStatus = z.enum(["installed", "pending", "failed", "replaced"]);
export type ReleaseDeviceStatus = z.infer<typeof ReleaseDeviceStatus>;

export const ReleaseDevice = z.object({
  deviceId: Uuid,
  versionCode: z.int().describe("The version this device must end up with (after a rollback, the one it ran before, when the rollback sent it that)."),
  fromVersionCode: z
    .int()
    .nullable()
    .describe(
      "The version of the app the device ran when the release was sent: its last app list, or a release install that succeeded since that list. Null: it had none, or had never reported its apps. A rollback sends it back this version, and nothing else.",
    ),
  status: ReleaseDeviceStatus.describe(
    "`installed`: a heartbeat since the version was sent to the device reports it, or the install command succeeded and no heartbeat reported its apps since; `replaced`: the command succeeded but a heartbeat since reports another version, or none (a downgrade, an uninstall, another release); `failed`: the command failed or expired (see `reason`); else `pending`.",
  ),
  reason: z.string().nullable(),
  rollbackSkipped: z
    .string()
    .nullable()
    .describe("Why the rollback sent this device nothing (null: it was sent `fromVersionCode`, or the release was not rolled back)."),
  requestId: Uuid.nullable(),
});
export type ReleaseDevice = z.infer<typeof ReleaseDevice>;

export const ReleaseDetail = AppRelease.extend({
  devices: z.array(ReleaseDevice).describe("Failed first, then pending, then replaced, then installed; at most 1000."),
});
export type ReleaseDetail = z.infer<typeof ReleaseDetail>;

export const AppFileParams = z.strictObject({ sha256: Sha256Hex });
export const AppFileQuery = z.strictObject({
  expires: z.string().regex(/^\d{1,12}$/, "Must be unix seconds"),
  signature: z.string().regex(/^[a-f0-9]{64}$/, "Must be a hex HMAC-SHA256"),
});
