-- The batch completion sweep (maintenance) reads the batches not yet done every few seconds:
-- a partial index keeps that read to those, however many finished batches accumulate.
-- Prisma's schema cannot express a partial index; it is named in schema.prisma's comment.
CREATE INDEX "CommandBatch_unfinished_idx" ON "CommandBatch"("createdAt") WHERE "doneAt" IS NULL;

-- Batches that finished before doneAt was recorded (migration 20261205010000_webhooks) are
-- marked done here, at their last command's end, so the sweep does not announce them now
-- with a batch.done each.
UPDATE "CommandBatch" b SET "doneAt" = COALESCE((SELECT max(c."completedAt") FROM "Command" c WHERE c."batchId" = b.id), b."createdAt")
WHERE "doneAt" IS NULL
  AND NOT EXISTS (SELECT 1 FROM "Command" c WHERE c."batchId" = b.id AND c.status IN ('queued', 'sent', 'acknowledged'));
