-- mdm:non-transactional
-- The erased-device sweep (maintenance, retireErasedDevices) reads, every minute, the
-- devices with a succeeded wipe or factory_reset of the last ERASED_SWEEP_DAYS: a partial
-- index by completion keeps that read to those recent erases, however many commands (and
-- erases of devices retired long ago) accumulate. Built without blocking the writes of a large
-- Command table. Named in schema.prisma's comment on Command.
-- A build that failed (or was cancelled) leaves an invalid index of this name: dropped
-- first, so the migration can simply be run again.
DROP INDEX CONCURRENTLY IF EXISTS "Command_erased_idx";
CREATE INDEX CONCURRENTLY "Command_erased_idx" ON "Command"("completedAt") WHERE type IN ('wipe', 'factory_reset') AND status = 'succeeded';
