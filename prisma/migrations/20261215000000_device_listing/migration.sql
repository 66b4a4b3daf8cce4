-- DeviceListing: the columns the device list filters, sorts and counts on, one narrow row
-- per device (~160 bytes against Device's ~500 and more with real app lists), so a count
-- or a top-N sort over 100,000 devices reads a fifth of the pages. Measured on 100,000
-- devices on the 2-core test machine: the fleet summary's counts 10 ms against 72,
-- `sort=lastSeenAt` 25 ms against 72, a search matching every device 14 ms against 125.
-- Triggers on Device keep it in the same transaction as every write, whatever the writer
-- (a heartbeat statement, a sweep, an admin edit), so it is never behind. Its own indexes
-- hold no column a heartbeat changes (appVersion changes only when the agent is updated),
-- so the heartbeat's update of a listing row is a HOT update too, like Device's. The
-- offline and low-battery sweeps find their candidates here too.
-- Filled here under an EXCLUSIVE lock on Device, taken first: reads go on (token lookups,
-- lists), writes and row locks (heartbeats, retirements) wait while it fills and its indexes
-- build, and none can slip between the copy and the triggers. The foreign key is added after
-- the fill, checked in one query: on the INSERT it would lock each Device row it checks. The
-- next migration drops Device's list indexes.
LOCK TABLE "Device" IN EXCLUSIVE MODE;

CREATE TABLE "DeviceListing" (
  "id" UUID NOT NULL PRIMARY KEY,
  "retiredAt" TIMESTAMPTZ(3),
  "online" BOOLEAN NOT NULL,
  "lastSeenAt" TIMESTAMPTZ(3),
  "batteryLevel" INTEGER,
  "enrolledAt" TIMESTAMPTZ(3) NOT NULL,
  "alias" TEXT,
  "model" TEXT,
  "appVersion" TEXT,
  "serialNumber" TEXT,
  "legacyId" TEXT,
  -- Nullable as Device's is (the API always writes an array).
  "groups" TEXT[],
  -- What a search matches: the four searched columns lower-cased (as ILIKE compares), joined
  -- by U+001F. One LIKE on it instead of four ILIKEs: a search matching every device read
  -- 100,000 rows in 53 ms with four ILIKEs, ~12 ms this way. A term holding U+001F could match
  -- across two columns: the API searches the columns one by one for such a term.
  "searchText" TEXT NOT NULL GENERATED ALWAYS AS (
    lower(coalesce("alias", '') || E'\x1f' || coalesce("model", '') || E'\x1f' || coalesce("serialNumber", '') || E'\x1f' || coalesce("legacyId", ''))
  ) STORED
) WITH (fillfactor = 80);

INSERT INTO "DeviceListing" ("id", "retiredAt", "online", "lastSeenAt", "batteryLevel", "enrolledAt", "alias", "model", "appVersion", "serialNumber", "legacyId", "groups")
SELECT "id", "retiredAt", "online", "lastSeenAt", "batteryLevel", "enrolledAt", "alias", "model", "appVersion", "serialNumber", "legacyId", "groups" FROM "Device";

ALTER TABLE "DeviceListing" ADD CONSTRAINT "DeviceListing_id_fkey"
  FOREIGN KEY ("id") REFERENCES "Device"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- Statement triggers with transition tables: a heartbeat statement writing 50 devices syncs
-- their listing rows in one statement. Only rows that differ are written, so a Device update
-- that changes none of these columns (a socket lease renewal) writes and locks no listing
-- row. An upsert, so a device whose listing row went missing (a write that bypassed the
-- triggers) gets it back at its next write; repairDeviceListing finds the others hourly.
-- Planned at each call (EXECUTE): PL/pgSQL would keep the plan of a session's first call,
-- sized to its rows, for every later one (a sweep's 1,000 rows, then heartbeats of 50).
-- A listing row is written only by a transaction holding its Device row's lock (these
-- triggers, or the cascade of a delete), so no lock cycle can form through it.
CREATE FUNCTION "DeviceListing_sync"() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE $sync$
    INSERT INTO "DeviceListing" ("id", "retiredAt", "online", "lastSeenAt", "batteryLevel", "enrolledAt", "alias", "model", "appVersion", "serialNumber", "legacyId", "groups")
    SELECT c."id", c."retiredAt", c."online", c."lastSeenAt", c."batteryLevel", c."enrolledAt", c."alias", c."model", c."appVersion", c."serialNumber", c."legacyId", c."groups"
    FROM changed c LEFT JOIN "DeviceListing" l ON l."id" = c."id"
    WHERE l."id" IS NULL
      OR (l."retiredAt", l."online", l."lastSeenAt", l."batteryLevel", l."enrolledAt", l."alias", l."model", l."appVersion", l."serialNumber", l."legacyId", l."groups")
        IS DISTINCT FROM (c."retiredAt", c."online", c."lastSeenAt", c."batteryLevel", c."enrolledAt", c."alias", c."model", c."appVersion", c."serialNumber", c."legacyId", c."groups")
    ON CONFLICT ("id") DO UPDATE SET "retiredAt" = EXCLUDED."retiredAt", "online" = EXCLUDED."online", "lastSeenAt" = EXCLUDED."lastSeenAt",
      "batteryLevel" = EXCLUDED."batteryLevel", "enrolledAt" = EXCLUDED."enrolledAt", "alias" = EXCLUDED."alias", "model" = EXCLUDED."model",
      "appVersion" = EXCLUDED."appVersion", "serialNumber" = EXCLUDED."serialNumber", "legacyId" = EXCLUDED."legacyId", "groups" = EXCLUDED."groups"
  $sync$;
  RETURN NULL;
END $$;

CREATE TRIGGER "Device_listing_insert" AFTER INSERT ON "Device" REFERENCING NEW TABLE AS changed
  FOR EACH STATEMENT EXECUTE FUNCTION "DeviceListing_sync"();
CREATE TRIGGER "Device_listing_update" AFTER UPDATE ON "Device" REFERENCING NEW TABLE AS changed
  FOR EACH STATEMENT EXECUTE FUNCTION "DeviceListing_sync"();

-- The list's sort orders (with the id for keyset paging) and filters, built on the filled
-- table. The same indexes on Device, which served only the list and the export, go in the
-- next migration.
CREATE INDEX "DeviceListing_enrolledAt_id_idx" ON "DeviceListing"("enrolledAt", "id");
CREATE INDEX "DeviceListing_alias_id_idx" ON "DeviceListing"("alias", "id");
CREATE INDEX "DeviceListing_model_id_idx" ON "DeviceListing"("model", "id");
CREATE INDEX "DeviceListing_appVersion_id_idx" ON "DeviceListing"("appVersion", "id");
CREATE INDEX "DeviceListing_groups_idx" ON "DeviceListing" USING GIN ("groups");
DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm') THEN
    CREATE INDEX "DeviceListing_searchText_trgm_idx" ON "DeviceListing" USING GIN ("searchText" gin_trgm_ops);
  END IF;
END $$;

ANALYZE "DeviceListing";
