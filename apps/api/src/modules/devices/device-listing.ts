import type { AppDeps } from "../../deps";

/** The Device columns DeviceListing copies (migration 20261215000000_device_listing), besides the id. */
const LISTED_COLUMNS = [
  "retiredAt",
  "online",
  "lastSeenAt",
  "batteryLevel",
  "enrolledAt",
  "alias",
  "model",
  "appVersion",
  "serialNumber",
  "legacyId",
  "groups",
];

/** The listed columns of the table aliased `alias`, as a SQL list. */
export const listedColumns = (alias: string) => LISTED_COLUMNS.map((column) => `${alias}."${column}"`).join(", ");

// Devices repaired per statement, and statements per run at most: a listing emptied by hand
// (100,000 devices) comes back within one run, in short transactions.
const REPAIR_STEP_DEVICES = 1000;
const REPAIR_MAX_STEPS = 200;

/**
 * Brings back in line the DeviceListing rows that differ from their device, are missing, or
 * outlived their device. The triggers on Device keep them in step with every write, so only
 * a write that bypassed them leaves one wrong: a TRUNCATE or DELETE of the listing, writes
 * with session_replication_role = replica (which skips the foreign key's cascade too), a
 * restore with triggers disabled. Each such device's row is rewritten unchanged, which runs
 * the triggers: the repair goes through the one path that writes listing rows, taking the
 * Device row's lock first as every writer does (a row locked now is left for the device's
 * own write to mend). Returns how many rows it repaired, or null when the triggers are
 * missing or disabled and nothing could be.
 */
export async function repairDeviceListing({ db }: Pick<AppDeps, "db">): Promise<number | null> {
  // Firing here: enabled for ordinary sessions ('O') or always ('A'), in a session that is
  // not replicating ('R' triggers and replica sessions would make each step a no-op).
  const [{ triggers }] = await db.$queryRaw<[{ triggers: number }]>`
    SELECT count(*)::int AS triggers FROM pg_trigger
    WHERE tgrelid = '"Device"'::regclass AND tgname IN ('Device_listing_insert', 'Device_listing_update') AND tgenabled IN ('O', 'A')
      AND current_setting('session_replication_role') = 'origin'`;
  if (triggers < 2) return null;
  let repaired = await db.$executeRaw`DELETE FROM "DeviceListing" l WHERE NOT EXISTS (SELECT 1 FROM "Device" d WHERE d.id = l.id)`;
  for (let step = 0; step < REPAIR_MAX_STEPS; step++) {
    const count = await db.$executeRawUnsafe(
      `UPDATE "Device" SET id = id WHERE id IN (
         SELECT d.id FROM "Device" d LEFT JOIN "DeviceListing" l ON l.id = d.id
         WHERE l.id IS NULL OR (${listedColumns("l")}) IS DISTINCT FROM (${listedColumns("d")})
         LIMIT ${REPAIR_STEP_DEVICES} FOR NO KEY UPDATE OF d SKIP LOCKED)`,
    );
    repaired += count;
    if (count < REPAIR_STEP_DEVICES) break;
  }
  return repaired;
}
