-- mdm:non-transactional
-- Fills DeviceListing (created empty by the previous migration) from Device. Outside a
-- transaction: it holds no lock on Device, whose writes meanwhile keep their own listing
-- rows through the triggers (a row they wrote first is newer than this copy's: kept).
-- Run again after a failure, it copies only what is still missing.
INSERT INTO "DeviceListing" ("id", "retiredAt", "online", "lastSeenAt", "batteryLevel", "enrolledAt", "alias", "model", "appVersion", "serialNumber", "legacyId", "groups")
SELECT "id", "retiredAt", "online", "lastSeenAt", "batteryLevel", "enrolledAt", "alias", "model", "appVersion", "serialNumber", "legacyId", "groups" FROM "Device"
ON CONFLICT ("id") DO NOTHING;
ANALYZE "DeviceListing";
-- The list's indexes on Device, now on DeviceListing; dropped without blocking Device's reads.
DROP INDEX CONCURRENTLY IF EXISTS "Device_enrolledAt_id_idx";
DROP INDEX CONCURRENTLY IF EXISTS "Device_alias_id_idx";
DROP INDEX CONCURRENTLY IF EXISTS "Device_model_id_idx";
DROP INDEX CONCURRENTLY IF EXISTS "Device_appVersion_id_idx";
DROP INDEX CONCURRENTLY IF EXISTS "Device_alias_trgm_idx";
DROP INDEX CONCURRENTLY IF EXISTS "Device_model_trgm_idx";
DROP INDEX CONCURRENTLY IF EXISTS "Device_serialNumber_trgm_idx";
DROP INDEX CONCURRENTLY IF EXISTS "Device_legacyId_trgm_idx";
