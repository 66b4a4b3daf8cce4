-- CreateEnum
CREATE TYPE "CommandDelivery" AS ENUM ('auto', 'both');

-- CreateEnum
CREATE TYPE "AlertKind" AS ENUM ('device_offline', 'group_offline');

-- AlterTable
ALTER TABLE "Device" ADD COLUMN     "groups" TEXT[] DEFAULT ARRAY[]::TEXT[],
ADD COLUMN     "offlineSince" TIMESTAMPTZ(3),
ADD COLUMN     "online" BOOLEAN NOT NULL DEFAULT false,
ADD COLUMN     "socketConnectedAt" TIMESTAMPTZ(3),
ADD COLUMN     "socketInstanceId" TEXT;

-- AlterTable
ALTER TABLE "Command" ADD COLUMN     "batchId" UUID,
ADD COLUMN     "delivery" "CommandDelivery" NOT NULL DEFAULT 'auto',
ADD COLUMN     "deliveryAttempts" INTEGER NOT NULL DEFAULT 0,
ADD COLUMN     "nextAttemptAt" TIMESTAMPTZ(3);

-- CreateTable
CREATE TABLE "CommandBatch" (
    "id" UUID NOT NULL,
    "type" "CommandType" NOT NULL,
    "payload" JSONB NOT NULL DEFAULT '{}',
    "target" JSONB NOT NULL,
    "total" INTEGER NOT NULL,
    "createdBy" TEXT,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "CommandBatch_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "AppPolicy" (
    "id" UUID NOT NULL,
    "deviceId" UUID,
    "group" TEXT,
    "packageName" TEXT NOT NULL,
    "enabled" BOOLEAN NOT NULL DEFAULT true,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "AppPolicy_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "AlertSettings" (
    "id" INTEGER NOT NULL DEFAULT 1,
    "enabled" BOOLEAN NOT NULL DEFAULT true,
    "offlineAfterSeconds" INTEGER NOT NULL DEFAULT 240,
    "recipients" TEXT[] DEFAULT ARRAY[]::TEXT[],
    "groupOfflinePercent" INTEGER,
    "cooldownMinutes" INTEGER NOT NULL DEFAULT 60,
    "updatedAt" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "AlertSettings_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "Alert" (
    "id" BIGSERIAL NOT NULL,
    "kind" "AlertKind" NOT NULL,
    "deviceId" UUID,
    "group" TEXT,
    "subject" TEXT NOT NULL,
    "recipients" TEXT[],
    "mailId" TEXT,
    "sentAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "Alert_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "AppPolicy_deviceId_packageName_key" ON "AppPolicy"("deviceId", "packageName");

-- CreateIndex
CREATE UNIQUE INDEX "AppPolicy_group_packageName_key" ON "AppPolicy"("group", "packageName");

-- CreateIndex
CREATE INDEX "Alert_kind_deviceId_sentAt_idx" ON "Alert"("kind", "deviceId", "sentAt");

-- CreateIndex
CREATE INDEX "Alert_kind_group_sentAt_idx" ON "Alert"("kind", "group", "sentAt");

-- CreateIndex
CREATE INDEX "Device_online_lastSeenAt_idx" ON "Device"("online", "lastSeenAt");

-- CreateIndex
CREATE INDEX "Device_groups_idx" ON "Device" USING GIN ("groups");

-- CreateIndex
CREATE INDEX "Command_batchId_status_idx" ON "Command"("batchId", "status");

-- CreateIndex
CREATE INDEX "Command_status_nextAttemptAt_idx" ON "Command"("status", "nextAttemptAt");

-- AddForeignKey
ALTER TABLE "Command" ADD CONSTRAINT "Command_batchId_fkey" FOREIGN KEY ("batchId") REFERENCES "CommandBatch"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "AppPolicy" ADD CONSTRAINT "AppPolicy_deviceId_fkey" FOREIGN KEY ("deviceId") REFERENCES "Device"("id") ON DELETE CASCADE ON UPDATE CASCADE;

