-- Every mail is a row in the outbox, sent (or, without a provider, recorded) by a worker.
-- CreateEnum
CREATE TYPE "MailStatus" AS ENUM ('queued', 'sent', 'recorded', 'failed');

-- CreateEnum
CREATE TYPE "MailKind" AS ENUM ('invite', 'password_reset', 'alert');

-- CreateTable
CREATE TABLE "OutboxMail" (
    "id" BIGSERIAL NOT NULL,
    "kind" "MailKind" NOT NULL,
    "to" TEXT[],
    "subject" TEXT NOT NULL,
    "text" TEXT,
    "html" TEXT,
    "status" "MailStatus" NOT NULL DEFAULT 'queued',
    "attempts" INTEGER NOT NULL DEFAULT 0,
    "nextAttemptAt" TIMESTAMPTZ(3),
    "provider" TEXT,
    "providerMessageId" TEXT,
    "lastError" TEXT,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "finishedAt" TIMESTAMPTZ(3),

    CONSTRAINT "OutboxMail_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "OutboxMail_status_nextAttemptAt_idx" ON "OutboxMail"("status", "nextAttemptAt");

-- CreateIndex
CREATE INDEX "OutboxMail_createdAt_idx" ON "OutboxMail"("createdAt");

-- An alert points at its mail in the outbox.
-- AlterTable
ALTER TABLE "Alert" ADD COLUMN "outboxMailId" BIGINT;

-- AddForeignKey
ALTER TABLE "Alert" ADD CONSTRAINT "Alert_outboxMailId_fkey" FOREIGN KEY ("outboxMailId") REFERENCES "OutboxMail"("id") ON DELETE SET NULL ON UPDATE CASCADE;
