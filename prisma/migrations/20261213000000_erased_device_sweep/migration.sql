-- mdm:non-transactional
-- The erased-device sweep (maintenance, retireErasedDevices) reads, every minute, the
-- devices with a succeeded wipe or factory_reset: a partial index keeps that read to those
-- commands, however many others accumulate. Built without blocking the writes of a large
-- Command table. Named in schema.prisma's comment on Command.
CREATE INDEX CONCURRENTLY "Command_erased_idx" ON "Command"("deviceId") WHERE type IN ('wipe', 'factory_reset') AND status = 'succeeded';
