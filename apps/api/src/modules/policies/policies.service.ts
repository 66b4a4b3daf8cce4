import { randomUUID } from "node:crypto";
import {
  type ComplianceStatus,
  type CreateDevicePolicyRequest,
  type CreatePolicyAssignmentRequest,
  type DevicePolicy,
  type DevicePolicyView,
  type EffectivePolicyResponse,
  type ListDevicePolicyVersionsResponse,
  type MissingApp,
  type PolicyAssignment as PolicyAssignmentView,
  type PolicyChange,
  type PolicyComplianceSummary,
  type PolicyFailure,
  type PolicySettings,
  type PolicyWarning,
  type RequiredApp,
  type UpdateDevicePolicyRequest,
  canonicalJson,
  policySettingEntries,
} from "@mdm/contracts";
import type { DbOrTx } from "../../db/types";
import type { AppDeps } from "../../deps";
import { type Policy, Prisma, type PolicyAssignment, type PolicyVersion, type RequiredAppInstall } from "../../generated/prisma/client";
import { recordAudit } from "../../lib/audit";
import { type PollingWorker, startPollingWorker } from "../../lib/polling-worker";
import { HttpError } from "../../lib/http-error";
import { type Candidate, mergePolicies, policyHash } from "./effective-policy";
import { REQUIRED_APP_MAX_ATTEMPTS, requiredAppInstallsOf, toInstallState } from "./required-app-installs";

type Actor = { name: string; ip?: string };
type Deps = Pick<AppDeps, "db" | "clock" | "bus">;

/** Devices whose effective policy is recomputed per transaction. */
const RECOMPUTE_BATCH = 500;
/**
 * Queued devices a policy or assignment change recomputes before it answers; the recompute
 * worker (any instance) does the rest, so a change that reaches a big group answers quickly.
 */
export const RECOMPUTE_INLINE_DEVICES = 1000;

function toAssignmentView(row: PolicyAssignment): PolicyAssignmentView {
  return {
    id: row.id,
    policyId: row.policyId,
    kind: row.deviceId ? "device" : "group",
    deviceId: row.deviceId,
    group: row.group,
    priority: row.priority,
    createdAt: row.createdAt.toISOString(),
  };
}

function toPolicyView(policy: Policy & { assignments: PolicyAssignment[] }, newest: NewestVersions): DevicePolicyView {
  return {
    id: policy.id,
    name: policy.name,
    description: policy.description,
    version: policy.version,
    settings: policy.settings as PolicySettings,
    assignments: policy.assignments.map(toAssignmentView),
    warnings: warningsOf(policy.settings as PolicySettings, newest),
    createdAt: policy.createdAt.toISOString(),
    updatedAt: policy.updatedAt.toISOString(),
    updatedBy: policy.updatedBy,
  };
}

const withAssignments = { assignments: { orderBy: [{ createdAt: "asc" as const }, { id: "asc" as const }] } };

function conflictOnDuplicate(message: string) {
  return (error: unknown): never => {
    if (error instanceof Prisma.PrismaClientKnownRequestError && error.code === "P2002") throw new HttpError("conflict", message);
    throw error;
  };
}

export async function listDevicePolicies({ db }: Pick<AppDeps, "db">) {
  const policies = await db.policy.findMany({ orderBy: { name: "asc" }, include: withAssignments, take: 1000 });
  const newest = await newestCatalogueVersions(
    db,
    policies.flatMap((policy) => requiredAppsOf(policy.settings)),
  );
  return { policies: policies.map((policy) => toPolicyView(policy, newest)) };
}

export async function getDevicePolicy({ db }: Pick<AppDeps, "db">, policyId: string): Promise<DevicePolicyView> {
  const policy = await db.policy.findUnique({ where: { id: policyId }, include: withAssignments });
  if (!policy) throw new HttpError("not_found", "No policy has this id");
  return toPolicyView(policy, await newestCatalogueVersions(db, requiredAppsOf(policy.settings)));
}

export async function createDevicePolicy(deps: Deps, input: CreateDevicePolicyRequest, actor: Actor): Promise<DevicePolicyView> {
  const id = randomUUID();
  const now = deps.clock.now();
  const policy = await deps.db
    .$transaction(async (tx) => {
      const created = await tx.policy.create({
        data: { id, name: input.name, description: input.description ?? null, settings: input.settings, updatedAt: now, updatedBy: actor.name, createdAt: now },
        include: withAssignments,
      });
      await tx.policyVersion.create({
        data: {
          policyId: id,
          version: 1,
          name: input.name,
          description: input.description ?? null,
          settings: input.settings,
          createdAt: now,
          createdBy: actor.name,
        },
      });
      await recordAudit(tx, {
        actor: actor.name,
        action: "device_policy.create",
        targetType: "device_policy",
        targetId: id,
        ip: actor.ip,
        details: { name: input.name, version: 1 },
      });
      return created;
    })
    .catch(conflictOnDuplicate("A policy with this name exists"));
  return toPolicyView(policy, await newestCatalogueVersions(deps.db, requiredAppsOf(policy.settings)));
}

/** What changed between two versions of a policy: name, description, and each setting. */
export function policyChanges(
  before: { name: string; description: string | null; settings: PolicySettings } | undefined,
  after: { name: string; description: string | null; settings: PolicySettings },
): PolicyChange[] {
  const changes: PolicyChange[] = [];
  if (before?.name !== after.name) changes.push({ path: "name", ...(before && { before: before.name }), after: after.name });
  if ((before?.description ?? null) !== after.description) changes.push({ path: "description", before: before?.description ?? null, after: after.description });
  const old = new Map(before ? policySettingEntries(before.settings) : []);
  const next = new Map(policySettingEntries(after.settings));
  for (const path of [...new Set([...old.keys(), ...next.keys()])].sort()) {
    const was = old.get(path);
    const is = next.get(path);
    if (canonicalJson(was ?? null) === canonicalJson(is ?? null)) continue;
    changes.push({ path, ...(old.has(path) && { before: was }), ...(next.has(path) && { after: is }) });
  }
  return changes;
}

/**
 * Saves a new version of a policy (an edit or a revert) under a row lock, so two editors
 * never both write version n+1; `expectedVersion` turns a stale edit into 409. An edit that
 * changes nothing saves nothing; a revert is always saved (as the contract says), even when it
 * restores the content in force. Then every device the policy applies to gets its new
 * effective policy.
 */
async function saveVersion(
  deps: Deps,
  policyId: string,
  next: (current: Policy) => { name: string; description: string | null; settings: PolicySettings; revertedFrom?: number },
  expectedVersion: number | undefined,
  actor: Actor,
): Promise<DevicePolicyView> {
  const now = deps.clock.now();
  const saved = await deps.db
    .$transaction(async (tx) => {
      const [current] = await tx.$queryRaw<Policy[]>`SELECT * FROM "Policy" WHERE id = ${policyId}::uuid FOR UPDATE`;
      if (!current) throw new HttpError("not_found", "No policy has this id");
      if (expectedVersion !== undefined && expectedVersion !== current.version) {
        throw new HttpError("conflict", `The policy is at version ${current.version}, not ${expectedVersion}: reload it and apply your change again`);
      }
      const target = next(current);
      const changes = policyChanges({ name: current.name, description: current.description, settings: current.settings as PolicySettings }, target);
      if (changes.length === 0 && target.revertedFrom === undefined) return { changed: false };
      const version = current.version + 1;
      await tx.policy.update({
        where: { id: policyId },
        data: { name: target.name, description: target.description, settings: target.settings, version, updatedAt: now, updatedBy: actor.name },
      });
      await tx.policyVersion.create({
        data: {
          policyId,
          version,
          name: target.name,
          description: target.description,
          settings: target.settings,
          createdAt: now,
          createdBy: actor.name,
          revertedFrom: target.revertedFrom ?? null,
        },
      });
      if (changes.length > 0) await queueRecompute(tx, devicesOfPolicy(policyId), now);
      await recordAudit(tx, {
        actor: actor.name,
        action: target.revertedFrom ? "device_policy.revert" : "device_policy.update",
        targetType: "device_policy",
        targetId: policyId,
        ip: actor.ip,
        details: { version, ...(target.revertedFrom && { revertedFrom: target.revertedFrom }), changes },
      });
      return { changed: changes.length > 0 };
    })
    .catch(conflictOnDuplicate("A policy with this name exists"));
  if (saved.changed) await recomputeQueuedSoon(deps);
  return getDevicePolicy(deps, policyId);
}

export async function updateDevicePolicy(deps: Deps, policyId: string, input: UpdateDevicePolicyRequest, actor: Actor): Promise<DevicePolicyView> {
  return saveVersion(
    deps,
    policyId,
    (current) => ({
      name: input.name ?? current.name,
      description: input.description === undefined ? current.description : input.description,
      settings: input.settings ?? (current.settings as PolicySettings),
    }),
    input.expectedVersion,
    actor,
  );
}

export async function revertDevicePolicy(deps: Deps, policyId: string, version: number, actor: Actor): Promise<DevicePolicyView> {
  const old = await deps.db.policyVersion.findUnique({ where: { policyId_version: { policyId, version } } });
  if (!old) {
    if (!(await deps.db.policy.findUnique({ where: { id: policyId }, select: { id: true } }))) throw new HttpError("not_found", "No policy has this id");
    throw new HttpError("not_found", `The policy has no version ${version}`);
  }
  return saveVersion(
    deps,
    policyId,
    () => ({ name: old.name, description: old.description, settings: old.settings as PolicySettings, revertedFrom: version }),
    undefined,
    actor,
  );
}

export async function deleteDevicePolicy(deps: Deps, policyId: string, actor: Actor): Promise<void> {
  await deps.db.$transaction(async (tx) => {
    await queueRecompute(tx, devicesOfPolicy(policyId), deps.clock.now());
    const { count } = await tx.policy.deleteMany({ where: { id: policyId } });
    if (count === 0) throw new HttpError("not_found", "No policy has this id");
    await recordAudit(tx, { actor: actor.name, action: "device_policy.delete", targetType: "device_policy", targetId: policyId, ip: actor.ip });
  });
  await recomputeQueuedSoon(deps);
}

export async function listDevicePolicyVersions({ db }: Pick<AppDeps, "db">, policyId: string): Promise<ListDevicePolicyVersionsResponse> {
  if (!(await db.policy.findUnique({ where: { id: policyId }, select: { id: true } }))) throw new HttpError("not_found", "No policy has this id");
  const rows: PolicyVersion[] = await db.policyVersion.findMany({ where: { policyId }, orderBy: { version: "asc" } });
  const versions = rows.map((row, index) => {
    const previous = index > 0 ? rows[index - 1] : undefined;
    const asDoc = (version: PolicyVersion) => ({ name: version.name, description: version.description, settings: version.settings as PolicySettings });
    return {
      version: row.version,
      name: row.name,
      description: row.description,
      settings: row.settings as PolicySettings,
      createdAt: row.createdAt.toISOString(),
      createdBy: row.createdBy,
      revertedFrom: row.revertedFrom,
      changes: policyChanges(previous && asDoc(previous), asDoc(row)),
    };
  });
  return { versions: versions.reverse() };
}

// ---- Assignments -------------------------------------------------------------------------

export async function createPolicyAssignment(deps: Deps, policyId: string, input: CreatePolicyAssignmentRequest, actor: Actor): Promise<PolicyAssignmentView> {
  if (!(await deps.db.policy.findUnique({ where: { id: policyId }, select: { id: true } }))) throw new HttpError("not_found", "No policy has this id");
  const now = deps.clock.now();
  const row = await deps.db
    .$transaction(async (tx) => {
      if ("deviceId" in input) {
        // A retired device is out of the fleet: it is sent no policy, so one assigned to it
        // would only read as in force. FOR SHARE orders this with a retirement (which locks
        // the row FOR UPDATE): one retired a moment ago is seen as retired.
        const [device] = await tx.$queryRaw<Array<{ retiredAt: Date | null }>>`
          SELECT "retiredAt" FROM "Device" WHERE id = ${input.deviceId}::uuid FOR SHARE`;
        if (!device) throw new HttpError("not_found", "No device has this id");
        if (device.retiredAt) throw new HttpError("conflict", "The device is retired: it takes no more policies");
      }
      const created = await tx.policyAssignment.create({
        data: {
          id: randomUUID(),
          policyId,
          deviceId: "deviceId" in input ? input.deviceId : null,
          group: "group" in input ? input.group : null,
          priority: input.priority,
          createdAt: now,
        },
      });
      await queueRecompute(tx, devicesOfAssignment(created), now);
      await recordAudit(tx, {
        actor: actor.name,
        action: "device_policy.assign",
        targetType: "device_policy",
        targetId: policyId,
        ip: actor.ip,
        details: { ...input },
      });
      return created;
    })
    .catch(conflictOnDuplicate("The policy is already assigned to this device or group"));
  await recomputeQueuedSoon(deps);
  return toAssignmentView(row);
}

export async function deletePolicyAssignment(deps: Deps, policyId: string, assignmentId: string, actor: Actor): Promise<void> {
  const row = await deps.db.policyAssignment.findFirst({ where: { id: assignmentId, policyId } });
  if (!row) throw new HttpError("not_found", "The policy has no assignment with this id");
  await deps.db.$transaction(async (tx) => {
    await queueRecompute(tx, devicesOfAssignment(row), deps.clock.now());
    await tx.policyAssignment.deleteMany({ where: { id: assignmentId } });
    await recordAudit(tx, {
      actor: actor.name,
      action: "device_policy.unassign",
      targetType: "device_policy",
      targetId: policyId,
      ip: actor.ip,
      details: { assignmentId, deviceId: row.deviceId, group: row.group },
    });
  });
  await recomputeQueuedSoon(deps);
}

// ---- Effective policy ----------------------------------------------------------------------

/** The devices in service an assignment reaches, as a condition on "Device" d. */
function devicesOfAssignment(row: Pick<PolicyAssignment, "deviceId" | "group">): Prisma.Sql {
  if (row.deviceId) return Prisma.sql`d.id = ${row.deviceId}::uuid`;
  return Prisma.sql`d.groups @> ARRAY[${row.group}]::text[]`;
}

/** The devices in service a policy's assignments reach, as a condition on "Device" d. */
function devicesOfPolicy(policyId: string): Prisma.Sql {
  return Prisma.sql`(d.id IN (SELECT a."deviceId" FROM "PolicyAssignment" a WHERE a."policyId" = ${policyId}::uuid AND a."deviceId" IS NOT NULL)
    OR d.groups && ARRAY(SELECT a."group" FROM "PolicyAssignment" a WHERE a."policyId" = ${policyId}::uuid AND a."group" IS NOT NULL))`;
}

/** Queues these devices (those in service) for a recompute, in the caller's transaction; then call recomputeQueuedSoon. */
export function queueRecomputeOf(tx: DbOrTx, deviceIds: string[], now: Date) {
  return queueRecompute(tx, Prisma.sql`d.id = ANY(${deviceIds}::uuid[])`, now);
}

/**
 * Queues every device in service matching `devices` for a recompute: one statement, in the
 * caller's transaction. In id order: two transactions queueing the same devices wait on each
 * other's rows, and in different orders (a group's devices as its index finds them, a bulk
 * edit's as the table holds them) they deadlocked.
 */
function queueRecompute(tx: DbOrTx, devices: Prisma.Sql, now: Date) {
  return tx.$executeRaw`
    INSERT INTO "PolicyRecompute" ("deviceId", "createdAt")
    SELECT d.id, ${now} FROM "Device" d WHERE d."retiredAt" IS NULL AND ${devices} ORDER BY d.id
    ON CONFLICT ("deviceId") DO NOTHING`;
}

/** The policies assigned to each device, directly or through its groups. */
async function candidatesOf(db: DbOrTx, devices: Array<{ id: string; groups: string[] }>): Promise<Map<string, Candidate[]>> {
  const groups = [...new Set(devices.flatMap((device) => device.groups))];
  const assignments = await db.policyAssignment.findMany({
    where: { OR: [{ deviceId: { in: devices.map((device) => device.id) } }, { group: { in: groups } }] },
    include: { policy: true },
  });
  const result = new Map<string, Candidate[]>();
  for (const device of devices) {
    const mine = assignments.filter((row) => row.deviceId === device.id || (row.group !== null && device.groups.includes(row.group)));
    result.set(
      device.id,
      mine.map((row) => ({
        assignment: { id: row.id, kind: row.deviceId ? "device" : "group", group: row.group, priority: row.priority },
        policy: {
          id: row.policy.id,
          name: row.policy.name,
          version: row.policy.version,
          settings: row.policy.settings as PolicySettings,
          createdAt: row.policy.createdAt,
        },
      })),
    );
  }
  return result;
}

/**
 * Recomputes the effective policy of these devices and stores it as their desired state,
 * in the caller's transaction; returns the devices whose policy changed. A device that had
 * a policy and now has none gets the empty policy (so its agent clears what it applied);
 * one that never had any keeps none. Each changed device also gets a PolicyDispatch row, by
 * which the policy worker wakes it by FCM if it holds no socket and sends it the required
 * apps it lacks: no change without its wake-up. One UPDATE for the whole batch.
 */
async function recomputeBatch(tx: DbOrTx, now: Date, deviceIds: string[]): Promise<string[]> {
  if (deviceIds.length === 0) return [];
  // Locked (in id order: db/device-locks.ts) before their groups are read. A change of groups
  // not yet committed (a bulk edit that found this batch's queue row already there) is
  // waited for and read, not overwritten with a policy computed from the groups before it.
  const devices = await tx.$queryRaw<Array<{ id: string; groups: string[]; policyDesiredHash: string | null }>>`
    SELECT id, groups, "policyDesiredHash" FROM "Device" WHERE id = ANY(${deviceIds}::uuid[]) ORDER BY id FOR NO KEY UPDATE`;
  const candidates = await candidatesOf(tx, devices);
  const updates: Array<{ id: string; settings: string; hash: string }> = [];
  for (const device of devices) {
    const mine = candidates.get(device.id) ?? [];
    if (mine.length === 0 && device.policyDesiredHash === null) continue;
    const { settings } = mergePolicies(mine);
    const hash = policyHash(settings);
    if (hash === device.policyDesiredHash) continue;
    updates.push({ id: device.id, settings: JSON.stringify(settings), hash });
  }
  if (updates.length === 0) return [];
  const ids = updates.map((update) => update.id);
  await tx.$executeRaw`
    UPDATE "Device" d SET "policyDesired" = u.settings::jsonb, "policyDesiredHash" = u.hash
    FROM unnest(${ids}::uuid[], ${updates.map((update) => update.settings)}::text[], ${updates.map((update) => update.hash)}::text[]) AS u(id, settings, hash)
    WHERE d.id = u.id`;
  await tx.$executeRaw`
    INSERT INTO "PolicyDispatch" ("deviceId", "dueAt", attempts, "createdAt")
    SELECT id, ${now}, 0, ${now} FROM unnest(${ids}::uuid[]) AS id
    ON CONFLICT ("deviceId") DO UPDATE SET "dueAt" = EXCLUDED."dueAt", attempts = 0`;
  // A new effective policy starts failed required app installs over: due now, the count from zero.
  await tx.$executeRaw`
    UPDATE "RequiredAppInstall" SET attempts = 0, "nextAttemptAt" = ${now} WHERE "deviceId" = ANY(${ids}::uuid[]) AND failed`;
  return ids;
}

/** Devices whose policy changed are told over their socket, wherever it is held, and the policy worker is woken. */
function announceChanged(deps: Deps, changed: string[]): void {
  for (const deviceId of changed) deps.bus.publish({ kind: "policy_changed", deviceId });
  if (changed.length > 0) deps.bus.publish({ kind: "policy_dispatch_due" });
}

/**
 * Recomputes these devices now (a device's groups changed: PATCH /admin/devices/{id}, the
 * bulk edit), RECOMPUTE_BATCH per transaction. The heartbeat answer compares hashes all the
 * same: delivery never depends on the frame or the push.
 */
export async function recomputeDevices(deps: Deps, deviceIds: string[]): Promise<string[]> {
  const changed: string[] = [];
  const unique = [...new Set(deviceIds)];
  for (let start = 0; start < unique.length; start += RECOMPUTE_BATCH) {
    const batch = unique.slice(start, start + RECOMPUTE_BATCH);
    changed.push(...(await deps.db.$transaction((tx) => recomputeBatch(tx, deps.clock.now(), batch))));
  }
  announceChanged(deps, changed);
  return changed;
}

/**
 * Works through queued recomputes, oldest first, up to `limit` devices: each batch is
 * claimed (FOR UPDATE SKIP LOCKED, so instances share the queue), recomputed and removed in
 * one transaction; an instance that dies midway leaves its batch queued. Returns how many
 * devices it took.
 */
export async function recomputeQueued(deps: Deps, limit = Number.POSITIVE_INFINITY, stopping: () => boolean = () => false): Promise<number> {
  let done = 0;
  while (done < limit && !stopping()) {
    const take = Math.min(RECOMPUTE_BATCH, limit - done);
    const { claimed, changed } = await deps.db.$transaction(
      async (tx) => {
        const rows = await tx.$queryRaw<Array<{ deviceId: string }>>`
          DELETE FROM "PolicyRecompute" WHERE "deviceId" IN (
            SELECT "deviceId" FROM "PolicyRecompute" ORDER BY "createdAt", "deviceId" LIMIT ${take} FOR UPDATE SKIP LOCKED)
          RETURNING "deviceId"::text AS "deviceId"`;
        return {
          claimed: rows.length,
          changed: await recomputeBatch(
            tx,
            deps.clock.now(),
            rows.map((row) => row.deviceId),
          ),
        };
      },
      { timeout: 60_000 },
    );
    announceChanged(deps, changed);
    done += claimed;
    if (claimed < take) break;
  }
  return done;
}

/** After a change committed its queue rows: the first RECOMPUTE_INLINE_DEVICES now, the rest by the recompute workers. */
export async function recomputeQueuedSoon(deps: Deps): Promise<void> {
  const done = await recomputeQueued(deps, RECOMPUTE_INLINE_DEVICES);
  if (done >= RECOMPUTE_INLINE_DEVICES) deps.bus.publish({ kind: "policy_recompute_due" });
}

/** The instance's recompute worker: runs on every wake-up (a bus event from any instance) and on a poll. */
export function startPolicyRecomputeWorker(deps: Deps & Pick<AppDeps, "logger">): PollingWorker {
  const worker = startPollingWorker({
    name: "policy recompute worker",
    pollMs: 5000,
    logger: deps.logger,
    round: (stopping) => recomputeQueued(deps, Number.POSITIVE_INFINITY, stopping),
  });
  const unsubscribe = deps.bus.subscribe((event) => {
    if (event.kind === "policy_recompute_due") void worker.runNow();
  });
  return {
    runNow: worker.runNow,
    stop: async () => {
      unsubscribe();
      await worker.stop();
    },
  };
}

/** The policy to send a device, when it has not reported applying its current one. */
export function pendingPolicy(device: {
  policyDesired: unknown;
  policyDesiredHash: string | null;
  policyAppliedHash: string | null;
}): DevicePolicy | undefined {
  if (device.policyDesiredHash === null || device.policyDesiredHash === device.policyAppliedHash) return undefined;
  return { hash: device.policyDesiredHash, settings: (device.policyDesired ?? {}) as PolicySettings };
}

// ---- Required apps -------------------------------------------------------------------------

/** The newest catalogue version code of each package. */
export type NewestVersions = Map<string, number>;

export function requiredAppsOf(settings: unknown): RequiredApp[] {
  const apps = (settings as PolicySettings | null)?.requiredApps;
  return Array.isArray(apps) ? apps : [];
}

/**
 * The catalogue version of each package that required apps install (and that missingApps
 * and warnings name), by the state of each version's latest release: the highest version
 * whose latest release is `completed`; when none is, the highest version never released.
 * A version whose latest release is in progress (active, paused) waits for it to complete,
 * and one whose latest release was rolled back is withdrawn: neither is ever chosen, so
 * required apps never bypass a staged rollout nor install what it rolled back.
 */
export async function newestCatalogueVersions(db: DbOrTx, apps: Array<Pick<RequiredApp, "packageName">>): Promise<NewestVersions> {
  const packages = [...new Set(apps.map((app) => app.packageName))];
  if (packages.length === 0) return new Map();
  const rows = await db.$queryRaw<Array<{ packageName: string; versionCode: number | null }>>`
    WITH latest AS (
      SELECT DISTINCT ON ("versionId") "versionId", status FROM "AppRelease"
      WHERE "packageName" = ANY(${packages}) ORDER BY "versionId", "createdAt" DESC)
    SELECT v."packageName", COALESCE(
        max(v."versionCode") FILTER (WHERE latest.status = 'completed'),
        max(v."versionCode") FILTER (WHERE latest.status IS NULL)) AS "versionCode"
    FROM "AppVersion" v LEFT JOIN latest ON latest."versionId" = v.id
    WHERE v."packageName" = ANY(${packages})
    GROUP BY v."packageName"`;
  return new Map(rows.flatMap((row) => (row.versionCode === null ? [] : [[row.packageName, row.versionCode] as const])));
}

/** Catalogue versions newestCatalogueVersions never chooses, by package: their latest release was rolled back, or is in progress. */
export type WithheldVersions = Map<string, Array<{ versionCode: number; status: "rolled_back" | "active" | "paused" }>>;

export async function withheldCatalogueVersions(db: DbOrTx, packages: string[]): Promise<WithheldVersions> {
  const withheld: WithheldVersions = new Map();
  if (packages.length === 0) return withheld;
  const rows = await db.$queryRaw<Array<{ packageName: string; versionCode: number; status: "rolled_back" | "active" | "paused" }>>`
    SELECT v."packageName", v."versionCode", latest.status::text AS status FROM "AppVersion" v
    JOIN LATERAL (SELECT status FROM "AppRelease" r WHERE r."versionId" = v.id ORDER BY r."createdAt" DESC LIMIT 1) latest ON true
    WHERE v."packageName" = ANY(${packages}) AND latest.status <> 'completed'
    ORDER BY v."versionCode"`;
  for (const row of rows) withheld.set(row.packageName, [...(withheld.get(row.packageName) ?? []), { versionCode: row.versionCode, status: row.status }]);
  return withheld;
}

/** Why the catalogue sends nothing for a minimum version: none uploaded, or those uploaded are withheld by their releases. */
function noVersionReason(minVersionCode: number, withheld: Array<{ versionCode: number; status: string }> | undefined): string {
  const satisfying = (withheld ?? []).filter((version) => version.versionCode >= minVersionCode);
  const list = (status: string[]) =>
    satisfying
      .filter((version) => status.includes(version.status))
      .map((version) => version.versionCode)
      .join(", ");
  const rolledBack = list(["rolled_back"]);
  const inProgress = list(["active", "paused"]);
  if (!rolledBack && !inProgress) return `the app catalogue has no version ${minVersionCode} or later to send`;
  const parts = [
    ...(rolledBack ? [`withdrawn by a rollback of their release: ${rolledBack}`] : []),
    ...(inProgress ? [`waiting for their release to complete: ${inProgress}`] : []),
  ];
  return `the app catalogue's versions ${minVersionCode} or later are not sent to required apps (${parts.join("; ")})`;
}

/**
 * A new catalogue version: the devices whose effective policy requires that package at a
 * version the catalogue could not satisfy before (above `previousNewest`) but this one
 * does, and those whose install of an older version of it failed (a newer one may install
 * where it did not), get a PolicyDispatch row, so the policy worker sends it to those that
 * lack it. To run in the transaction that records the version.
 */
export function queueDevicesAwaiting(db: DbOrTx, packageName: string, versionCode: number, previousNewest: number | null, now: Date) {
  return db.$executeRaw`
    INSERT INTO "PolicyDispatch" ("deviceId", "dueAt", attempts, "createdAt")
    SELECT d.id, ${now}, 0, ${now} FROM "Device" d
    WHERE d."retiredAt" IS NULL AND jsonb_typeof(d."policyDesired"->'requiredApps') = 'array'
      AND (EXISTS (
          SELECT 1 FROM jsonb_array_elements(d."policyDesired"->'requiredApps') required
          WHERE required->>'packageName' = ${packageName}
            AND (required->>'minVersionCode')::numeric <= ${versionCode}
            AND (required->>'minVersionCode')::numeric > ${previousNewest ?? 0})
        OR EXISTS (
          SELECT 1 FROM "RequiredAppInstall" r
          WHERE r."deviceId" = d.id AND r."packageName" = ${packageName} AND r.failed AND r."versionCode" < ${versionCode}))
    ON CONFLICT ("deviceId") DO UPDATE SET "dueAt" = EXCLUDED."dueAt", attempts = 0`;
}

/**
 * Required apps the catalogue cannot satisfy: saving is not refused (the APK may come later),
 * but said. And a home app outside lockTaskPackages: one document cannot hold that (the
 * schema refuses it), but a merge can take each from another policy.
 */
function warningsOf(settings: PolicySettings, newest: NewestVersions): PolicyWarning[] {
  const kiosk = settings.kiosk;
  const homeOutside =
    kiosk?.homeApp !== undefined && kiosk.lockTaskPackages !== undefined && !kiosk.lockTaskPackages.includes(kiosk.homeApp)
      ? [
          {
            path: "kiosk.homeApp",
            message: `The home app ${kiosk.homeApp} comes from another policy than lockTaskPackages, which does not list it: Android does not start it in lock-task mode`,
          },
        ]
      : [];
  return homeOutside.concat(
    requiredAppsOf(settings).flatMap((app) => {
      const available = newest.get(app.packageName);
      if (available !== undefined && available >= app.minVersionCode) return [];
      const has = available === undefined ? "has no version of it" : `has only up to version ${available}`;
      return [
        {
          path: `requiredApps.${app.packageName}`,
          message: `The app catalogue ${has}: upload version ${app.minVersionCode} or later of ${app.packageName}, or devices stay non-compliant until they get it otherwise`,
        },
      ];
    }),
  );
}

/** The version codes a device last reported, by package (null: reported without one). */
function reportedVersions(appStatus: unknown): Map<string, number | null> {
  const versions = new Map<string, number | null>();
  if (!Array.isArray(appStatus)) return versions;
  for (const app of appStatus as Array<{ packageName?: unknown; versionCode?: unknown }>) {
    if (typeof app?.packageName !== "string") continue;
    const code = typeof app.versionCode === "number" ? app.versionCode : null;
    const known = versions.get(app.packageName);
    versions.set(app.packageName, known === undefined || known === null ? code : code === null ? known : Math.max(known, code));
  }
  return versions;
}

/** What the server does about a missing app the catalogue can satisfy, given its installs so far. */
function installFix(catalogueVersionCode: number, install: RequiredAppInstall | undefined): string {
  if (!install?.failed || install.versionCode !== catalogueVersionCode) return `the server sends it the catalogue's version ${catalogueVersionCode}`;
  const failure = `the server's install of version ${catalogueVersionCode} failed (${install.lastFailure ?? "no reason given"})`;
  if (install.nextAttemptAt === null) {
    return `${failure} ${install.attempts} times: it stopped retrying until a newer catalogue version or a change of the device's policy`;
  }
  return `${failure}: it sends it again at ${install.nextAttemptAt.toISOString()} (attempt ${install.attempts + 1} of ${REQUIRED_APP_MAX_ATTEMPTS})`;
}

/**
 * Required apps of the device's effective policy that its last reported app list lacks at
 * their minimum version, with the server's installs of each (`installs`, by package).
 */
export function missingAppsOf(
  device: { policyDesired: unknown; appStatus: unknown },
  newest: NewestVersions = new Map(),
  installs: Map<string, RequiredAppInstall> = new Map(),
  withheld: WithheldVersions = new Map(),
): MissingApp[] {
  const required = requiredAppsOf(device.policyDesired);
  if (required.length === 0) return [];
  const reported = reportedVersions(device.appStatus);
  return required.flatMap((app) => {
    const installed = reported.get(app.packageName) ?? null;
    if (installed !== null && installed >= app.minVersionCode) return [];
    const available = newest.get(app.packageName);
    const catalogueVersionCode = available !== undefined && available >= app.minVersionCode ? available : null;
    const install = installs.get(app.packageName);
    const has = installed === null ? "the device does not report it" : `the device reports version ${installed}`;
    const fix = catalogueVersionCode === null ? noVersionReason(app.minVersionCode, withheld.get(app.packageName)) : installFix(catalogueVersionCode, install);
    return [
      {
        packageName: app.packageName,
        minVersionCode: app.minVersionCode,
        installedVersionCode: installed,
        catalogueVersionCode,
        install: install ? toInstallState(install) : null,
        reason: `${app.packageName} must be at version ${app.minVersionCode} or later; ${has}; ${fix}`,
      },
    ];
  });
}

export function complianceOf(device: {
  policyDesiredHash: string | null;
  policyAppliedHash: string | null;
  policyFailures: unknown;
  policyDesired: unknown;
  appStatus: unknown;
}): ComplianceStatus {
  if (device.policyDesiredHash === null) return "none";
  if (device.policyAppliedHash !== device.policyDesiredHash) return "pending";
  if (Array.isArray(device.policyFailures) && device.policyFailures.length > 0) return "failed";
  return missingAppsOf(device).length > 0 ? "failed" : "compliant";
}

/** The SQL twin of complianceOf, for filters and counts over the fleet. */
export const COMPLIANCE_SQL = Prisma.sql`CASE
  WHEN "policyDesiredHash" IS NULL THEN 'none'
  WHEN "policyAppliedHash" IS DISTINCT FROM "policyDesiredHash" THEN 'pending'
  WHEN jsonb_array_length(COALESCE("policyFailures", '[]'::jsonb)) > 0 THEN 'failed'
  WHEN jsonb_typeof("policyDesired"->'requiredApps') = 'array' AND EXISTS (
    SELECT 1 FROM jsonb_array_elements("policyDesired"->'requiredApps') required
    WHERE NOT EXISTS (
      SELECT 1 FROM jsonb_array_elements(CASE WHEN jsonb_typeof("appStatus") = 'array' THEN "appStatus" ELSE '[]'::jsonb END) reported
      WHERE reported->>'packageName' = required->>'packageName' AND jsonb_typeof(reported->'versionCode') = 'number'
        AND (reported->>'versionCode')::numeric >= (required->>'minVersionCode')::numeric)) THEN 'failed'
  ELSE 'compliant' END`;

export async function deviceEffectivePolicy({ db }: Pick<AppDeps, "db">, deviceId: string): Promise<EffectivePolicyResponse> {
  const device = await db.device.findUnique({
    where: { id: deviceId },
    select: {
      id: true,
      groups: true,
      policyDesired: true,
      policyDesiredHash: true,
      policyAppliedHash: true,
      policyFailures: true,
      policyReportedAt: true,
      appStatus: true,
    },
  });
  if (!device) throw new HttpError("not_found", "No device has this id");
  const { settings, sources } = mergePolicies((await candidatesOf(db, [device])).get(device.id) ?? []);
  const newest = await newestCatalogueVersions(db, [...requiredAppsOf(settings), ...requiredAppsOf(device.policyDesired)]);
  return {
    deviceId,
    hash: device.policyDesiredHash,
    settings,
    sources,
    compliance: {
      status: complianceOf(device),
      appliedHash: device.policyAppliedHash,
      reportedAt: device.policyReportedAt?.toISOString() ?? null,
      failures: Array.isArray(device.policyFailures) ? (device.policyFailures as PolicyFailure[]) : [],
      missingApps: missingAppsOf(
        device,
        newest,
        await requiredAppInstallsOf(db, deviceId),
        await withheldCatalogueVersions(
          db,
          requiredAppsOf(device.policyDesired).map((app) => app.packageName),
        ),
      ),
    },
    warnings: warningsOf(settings, newest),
  };
}

/** Devices in service by compliance: the same set and statuses as the device list's `compliance` filter (retired devices left out). */
export async function policyComplianceSummary({ db }: Pick<AppDeps, "db">): Promise<PolicyComplianceSummary> {
  const rows = await db.$queryRaw<Array<{ status: ComplianceStatus; devices: number }>>`
    SELECT ${COMPLIANCE_SQL} AS status, count(*)::int AS devices FROM "Device" WHERE "retiredAt" IS NULL GROUP BY 1`;
  const summary: PolicyComplianceSummary = { none: 0, pending: 0, compliant: 0, failed: 0 };
  for (const row of rows) summary[row.status] = row.devices;
  return summary;
}
