-- A data layer for 100,000 devices and 2 days of history.

-- Device: heartbeats must be HOT updates (the new row version stays on its page and no
-- index is touched). In PostgreSQL 15 any B-tree index holding a column an UPDATE changes
-- prevents that, partial or not, so nothing may index what a heartbeat writes (lastSeenAt,
-- online, batteryLevel, memory, network...). Dropped: (online, lastSeenAt) and (lastSeenAt).
-- The offline sweep (`WHERE online AND lastSeenAt < cutoff`, every OFFLINE_SWEEP_SECONDS)
-- now reads the table sequentially. Measured with EXPLAIN ANALYZE on 100,000 devices
-- (~850-byte rows, 87 MB) on the 2-core test machine: 35-70 ms per sweep (noisy load
-- average ~9), against 0.1 ms with the index; once per 15 s that is well under 1% of a
-- core, while the index cost a full index update on every heartbeat. The same holds for
-- sorting the device list by lastSeenAt or batteryLevel: a top-N sort over one scan.
DROP INDEX IF EXISTS "Device_online_lastSeenAt_idx";
DROP INDEX IF EXISTS "Device_lastSeenAt_idx";

-- Room on each page for the next versions of its rows (~850 bytes each): HOT needs the
-- new version on the same page. Applies to pages written from now on; a VACUUM FULL (or
-- pg_repack) spreads existing rows out, otherwise each full page's first update moves its
-- row once, and later ones find room.
ALTER TABLE "Device" SET (fillfactor = 70);

-- Sort orders whose columns a heartbeat does not change (or writes with the same value:
-- appVersion), with the id as tie-breaker for keyset paging. An equal value keeps HOT.
CREATE INDEX "Device_alias_id_idx" ON "Device"("alias", "id");
CREATE INDEX "Device_model_id_idx" ON "Device"("model", "id");
CREATE INDEX "Device_appVersion_id_idx" ON "Device"("appVersion", "id");

-- Substring search (ILIKE '%term%') through trigram indexes, where pg_trgm exists (every
-- PostgreSQL with contrib; the embedded PGlite loads it as an extension). Without it the
-- search still works, by scanning.
DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'pg_trgm') THEN
    CREATE EXTENSION IF NOT EXISTS pg_trgm;
    CREATE INDEX "Device_alias_trgm_idx" ON "Device" USING GIN ("alias" gin_trgm_ops);
    CREATE INDEX "Device_model_trgm_idx" ON "Device" USING GIN ("model" gin_trgm_ops);
    CREATE INDEX "Device_serialNumber_trgm_idx" ON "Device" USING GIN ("serialNumber" gin_trgm_ops);
    CREATE INDEX "Device_legacyId_trgm_idx" ON "Device" USING GIN ("legacyId" gin_trgm_ops);
  ELSE
    RAISE NOTICE 'pg_trgm is not available: device search will scan instead of using trigram indexes';
  END IF;
END $$;

-- TelemetryEvent: one range partition per UTC day of receivedAt, so retention drops a
-- whole day's table instead of deleting rows. The primary key must hold the partition
-- key: (id, receivedAt). receivedAt alone needs no index any more (partition pruning).
-- The existing table is not copied: it becomes the partition for everything up to the
-- end of its last day, and retention drops it like any other once that day is old enough.
ALTER TABLE "TelemetryEvent" RENAME TO "TelemetryEvent_legacy";
-- Attaching builds the (id, receivedAt) key on it; a partition cannot keep a second one.
ALTER TABLE "TelemetryEvent_legacy" DROP CONSTRAINT "TelemetryEvent_pkey";
ALTER TABLE "TelemetryEvent_legacy" RENAME CONSTRAINT "TelemetryEvent_deviceId_fkey" TO "TelemetryEvent_legacy_deviceId_fkey";
ALTER INDEX "TelemetryEvent_deviceId_receivedAt_idx" RENAME TO "TelemetryEvent_legacy_deviceId_receivedAt_idx";
DROP INDEX "TelemetryEvent_receivedAt_idx";
ALTER TABLE "TelemetryEvent_legacy" ALTER COLUMN "id" DROP DEFAULT;

CREATE TABLE "TelemetryEvent" (
    "id" BIGINT NOT NULL DEFAULT nextval('"TelemetryEvent_id_seq"'),
    "deviceId" UUID NOT NULL,
    "receivedAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "deviceTime" TIMESTAMPTZ(3),
    "batteryLevel" INTEGER,
    "batteryCharging" BOOLEAN,
    "memoryTotal" BIGINT,
    "memoryAvailable" BIGINT,
    "storageTotal" BIGINT,
    "storageAvailable" BIGINT,
    "networkType" TEXT,
    -- Set only when the app list differs from the device's previous one: the history of
    -- changes, not a copy of the list per heartbeat.
    "appStatus" JSONB,

    CONSTRAINT "TelemetryEvent_pkey" PRIMARY KEY ("id", "receivedAt")
) PARTITION BY RANGE ("receivedAt");
ALTER SEQUENCE "TelemetryEvent_id_seq" OWNED BY "TelemetryEvent"."id";
CREATE INDEX "TelemetryEvent_deviceId_receivedAt_idx" ON "TelemetryEvent"("deviceId", "receivedAt");
ALTER TABLE "TelemetryEvent" ADD CONSTRAINT "TelemetryEvent_deviceId_fkey" FOREIGN KEY ("deviceId") REFERENCES "Device"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- A safety net for rows outside every daily partition; the maintenance job moves them
-- into their day's partition (or deletes them past retention) and reports them.
CREATE TABLE "TelemetryEvent_default" PARTITION OF "TelemetryEvent" DEFAULT;

-- Today's and tomorrow's partitions, so a fresh database takes heartbeats at once; the
-- maintenance job keeps creating the days ahead.
DO $$
DECLARE
  today timestamptz := date_trunc('day', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
  first_day timestamptz := today;
  newest timestamptz;
  day timestamptz;
BEGIN
  SELECT max("receivedAt") INTO newest FROM "TelemetryEvent_legacy";
  IF newest IS NULL THEN
    DROP TABLE "TelemetryEvent_legacy";
  ELSE
    first_day := greatest(today, (date_trunc('day', newest AT TIME ZONE 'UTC') + interval '1 day') AT TIME ZONE 'UTC');
    EXECUTE format('ALTER TABLE "TelemetryEvent" ATTACH PARTITION "TelemetryEvent_legacy" FOR VALUES FROM (MINVALUE) TO (%L)', first_day);
  END IF;
  day := first_day;
  WHILE day <= today + interval '24 hours' LOOP
    EXECUTE format('CREATE TABLE %I PARTITION OF "TelemetryEvent" FOR VALUES FROM (%L) TO (%L)',
      'TelemetryEvent_p' || to_char(day AT TIME ZONE 'UTC', 'YYYYMMDD'), day, day + interval '24 hours');
    day := day + interval '24 hours';
  END LOOP;
END $$;
