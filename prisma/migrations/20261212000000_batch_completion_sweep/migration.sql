-- The batch completion sweep (maintenance) reads the batches not yet done every few seconds:
-- a partial index keeps that read to those, however many finished batches accumulate.
-- Prisma's schema cannot express a partial index; it is named in schema.prisma's comment.
CREATE INDEX "CommandBatch_unfinished_idx" ON "CommandBatch"("createdAt") WHERE "doneAt" IS NULL;
