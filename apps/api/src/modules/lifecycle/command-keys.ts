import type { CommandKeysStatus } from "@mdm/contracts";
import type { Env } from "../../config/env";
import type { AppDeps } from "../../deps";
import { Prisma } from "../../generated/prisma/client";
import { HttpError } from "../../lib/http-error";
import { rotateDeviceToken } from "./lifecycle.service";

// Fleet-wide rotation of the command master key. The state is the device rows: a device
// whose commandMasterKeyId is the previous key (or null, see masterKeyIdOf) still has to
// move. The job re-keys such devices as POST /admin/devices/{id}/rotate-token does, so the
// command that moves each one is a row the delivery workers send like any other.

export const COMMAND_KEY_ROTATION_ACTOR = "system:command-key-rotation";

/** Devices whose key derives from the previous master key (unrecorded ones included, as masterKeyIdOf reads them). */
function underPrevious(previousKeyId: string): Prisma.Sql {
  return Prisma.sql`("commandMasterKeyId" = ${previousKeyId} OR "commandMasterKeyId" IS NULL)`;
}

/**
 * One run of the fleet-wide rotation: queues the re-key of up to COMMAND_KEY_ROTATION_BATCH
 * devices in service still under the previous master key. Only devices online now: one that
 * is away keeps its key (commands to it are still signed with it) until it calls in, so no
 * rotation's grace period runs out while it is away. Nothing to do without a previous key.
 */
export async function rotateFleetCommandKeys(deps: Pick<AppDeps, "db" | "clock" | "bus" | "logger" | "env">): Promise<{ queued: number }> {
  const { db, env } = deps;
  if (!env.COMMAND_KEY_ID_PREVIOUS) return { queued: 0 };
  const due = await db.$queryRaw<Array<{ id: string }>>`
    SELECT id FROM "Device"
    WHERE ${underPrevious(env.COMMAND_KEY_ID_PREVIOUS)} AND "retiredAt" IS NULL AND "pendingTokenHash" IS NULL AND online
    ORDER BY id LIMIT ${env.COMMAND_KEY_ROTATION_BATCH}`;
  let queued = 0;
  for (const { id } of due) {
    try {
      await rotateDeviceToken(deps, id, { name: COMMAND_KEY_ROTATION_ACTOR });
      queued++;
    } catch (error) {
      // Retired, deleted or re-keyed by an admin since the select: nothing to do for it.
      if (error instanceof HttpError && (error.code === "conflict" || error.code === "not_found")) continue;
      throw error;
    }
  }
  if (queued > 0) deps.logger.info("command key rotation queued", { queued, fromKeyId: env.COMMAND_KEY_ID_PREVIOUS, toKeyId: env.COMMAND_KEY_ID });
  return { queued };
}

/** Devices in service by the master key their command key derives from. */
export async function commandKeysStatus({
  db,
  clock,
  env,
}: Pick<AppDeps, "db" | "clock"> & { env: Pick<Env, "COMMAND_KEY_ID" | "COMMAND_KEY_ID_PREVIOUS"> }): Promise<CommandKeysStatus> {
  const now = clock.now();
  const previous = env.COMMAND_KEY_ID_PREVIOUS ?? null;
  const [counts] = await db.$queryRaw<Array<{ current: number; previous: number; rotating: number; lockedOut: number; unavailable: number }>>`
    WITH keyed AS (
      SELECT COALESCE("commandMasterKeyId", ${previous}::text, ${env.COMMAND_KEY_ID}) AS key, "pendingTokenHash", "rotationGraceUntil"
      FROM "Device" WHERE "retiredAt" IS NULL)
    SELECT
      count(*) FILTER (WHERE key = ${env.COMMAND_KEY_ID})::int AS current,
      count(*) FILTER (WHERE key = ${previous}::text)::int AS previous,
      count(*) FILTER (WHERE key = ${previous}::text AND "pendingTokenHash" IS NOT NULL AND "rotationGraceUntil" > ${now})::int AS rotating,
      count(*) FILTER (WHERE key = ${previous}::text AND "pendingTokenHash" IS NOT NULL AND "rotationGraceUntil" <= ${now})::int AS "lockedOut",
      count(*) FILTER (WHERE key <> ${env.COMMAND_KEY_ID} AND key IS DISTINCT FROM ${previous}::text)::int AS unavailable
    FROM keyed`;
  return {
    current: { keyId: env.COMMAND_KEY_ID, devices: counts!.current },
    previous: previous === null ? null : { keyId: previous, devices: counts!.previous, rotating: counts!.rotating, lockedOut: counts!.lockedOut },
    unavailable: counts!.unavailable,
  };
}
