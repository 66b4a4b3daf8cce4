-- mdm:non-transactional
-- The list's indexes on Device, now on DeviceListing (previous migration): dropped without
-- blocking Device's reads and writes.
DROP INDEX CONCURRENTLY IF EXISTS "Device_enrolledAt_id_idx";
DROP INDEX CONCURRENTLY IF EXISTS "Device_alias_id_idx";
DROP INDEX CONCURRENTLY IF EXISTS "Device_model_id_idx";
DROP INDEX CONCURRENTLY IF EXISTS "Device_appVersion_id_idx";
DROP INDEX CONCURRENTLY IF EXISTS "Device_alias_trgm_idx";
DROP INDEX CONCURRENTLY IF EXISTS "Device_model_trgm_idx";
DROP INDEX CONCURRENTLY IF EXISTS "Device_serialNumber_trgm_idx";
DROP INDEX CONCURRENTLY IF EXISTS "Device_legacyId_trgm_idx";
