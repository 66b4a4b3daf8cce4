-- mdm:non-transactional
-- The devices offline (and in service), by the list's default order. A fleet is mostly
-- online, so `status=offline` is a few rows: counted from this index and paged along it,
-- where the list otherwise scanned all of DeviceListing, or walked the whole enrolledAt index
-- when the statistics still counted devices offline that had come back (25 ms on 100,000
-- devices, against 0.1). Heartbeats stay HOT updates: one changes `online` only when its
-- device comes back. Built without blocking the triggers' writes. Named in schema.prisma's
-- comment on DeviceListing.
-- A build that failed (or was cancelled) leaves an invalid index of this name: dropped
-- first, so the migration can simply be run again.
DROP INDEX CONCURRENTLY IF EXISTS "DeviceListing_offline_enrolledAt_id_idx";
CREATE INDEX CONCURRENTLY "DeviceListing_offline_enrolledAt_id_idx" ON "DeviceListing" ("enrolledAt", id) WHERE NOT online AND "retiredAt" IS NULL;
