-- Socket presence is a lease: the holder renews it, a sweep clears it once it lapses.
ALTER TABLE "Device" ADD COLUMN "socketLeaseExpiresAt" TIMESTAMPTZ(3);
UPDATE "Device" SET "socketLeaseExpiresAt" = CURRENT_TIMESTAMP WHERE "socketInstanceId" IS NOT NULL;
CREATE INDEX "Device_socketLeaseExpiresAt_idx" ON "Device"("socketLeaseExpiresAt");

-- A push recorded by the local gateway (no FCM credentials) was not sent.
ALTER TYPE "PushOutcome" ADD VALUE 'recorded';

-- Acknowledged commands expire when no result follows in time.
CREATE INDEX "Command_status_acknowledgedAt_idx" ON "Command"("status", "acknowledgedAt");

-- Every unfinished command is due for delivery: before this, bulk commands were written
-- without a next attempt and sent from memory only.
UPDATE "Command" SET "nextAttemptAt" = CURRENT_TIMESTAMP
WHERE "status" IN ('queued', 'sent') AND "nextAttemptAt" IS NULL AND "expiresAt" > CURRENT_TIMESTAMP;

-- CreateTable
CREATE TABLE "JobLease" (
    "name" TEXT NOT NULL,
    "holder" TEXT NOT NULL,
    "lastRunAt" TIMESTAMPTZ(3) NOT NULL,
    "nextRunAt" TIMESTAMPTZ(3) NOT NULL,
    "runs" INTEGER NOT NULL DEFAULT 0,

    CONSTRAINT "JobLease_pkey" PRIMARY KEY ("name")
);
