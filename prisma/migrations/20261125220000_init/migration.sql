-- CreateEnum
CREATE TYPE "CommandType" AS ENUM ('ping', 'reboot', 'lock', 'launch_app', 'relaunch_app', 'clear_app_data', 'install_app', 'uninstall_app', 'custom');

-- CreateEnum
CREATE TYPE "CommandStatus" AS ENUM ('queued', 'sent', 'acknowledged', 'succeeded', 'failed', 'expired', 'cancelled');

-- CreateEnum
CREATE TYPE "PushOutcome" AS ENUM ('sent', 'failed', 'token_invalid', 'no_token');

-- CreateEnum
CREATE TYPE "UserRole" AS ENUM ('admin', 'operator', 'viewer');

-- CreateTable
CREATE TABLE "EnrollmentToken" (
    "id" UUID NOT NULL,
    "secretHash" CHAR(64) NOT NULL,
    "label" TEXT,
    "maxUses" INTEGER NOT NULL,
    "usedCount" INTEGER NOT NULL DEFAULT 0,
    "expiresAt" TIMESTAMPTZ(3) NOT NULL,
    "revokedAt" TIMESTAMPTZ(3),
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "createdBy" TEXT,

    CONSTRAINT "EnrollmentToken_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "Device" (
    "id" UUID NOT NULL,
    "tokenHash" CHAR(64) NOT NULL,
    "legacyId" TEXT,
    "enrollmentTokenId" UUID,
    "model" TEXT,
    "manufacturer" TEXT,
    "osVersion" TEXT,
    "sdkInt" INTEGER,
    "appVersion" TEXT,
    "serialNumber" TEXT,
    "fcmToken" TEXT,
    "fcmTokenInvalidAt" TIMESTAMPTZ(3),
    "alias" TEXT,
    "notes" TEXT,
    "enrolledAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "lastSeenAt" TIMESTAMPTZ(3),
    "batteryLevel" INTEGER,
    "batteryCharging" BOOLEAN,
    "memoryTotal" BIGINT,
    "memoryAvailable" BIGINT,
    "storageTotal" BIGINT,
    "storageAvailable" BIGINT,
    "networkType" TEXT,
    "networkSignal" INTEGER,
    "ipAddress" TEXT,
    "uptimeSeconds" BIGINT,
    "deviceTime" TIMESTAMPTZ(3),
    "appStatus" JSONB,
    "updatedAt" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "Device_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "TelemetryEvent" (
    "id" BIGSERIAL NOT NULL,
    "deviceId" UUID NOT NULL,
    "receivedAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "deviceTime" TIMESTAMPTZ(3),
    "batteryLevel" INTEGER,
    "batteryCharging" BOOLEAN,
    "memoryTotal" BIGINT,
    "memoryAvailable" BIGINT,
    "storageTotal" BIGINT,
    "storageAvailable" BIGINT,
    "networkType" TEXT,
    "appStatus" JSONB,

    CONSTRAINT "TelemetryEvent_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "Command" (
    "requestId" UUID NOT NULL,
    "deviceId" UUID NOT NULL,
    "type" "CommandType" NOT NULL,
    "payload" JSONB NOT NULL DEFAULT '{}',
    "status" "CommandStatus" NOT NULL DEFAULT 'queued',
    "createdBy" TEXT,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "expiresAt" TIMESTAMPTZ(3) NOT NULL,
    "sentAt" TIMESTAMPTZ(3),
    "acknowledgedAt" TIMESTAMPTZ(3),
    "completedAt" TIMESTAMPTZ(3),
    "pushOutcome" "PushOutcome",
    "pushMessageId" TEXT,
    "pushError" TEXT,
    "pushAttempts" INTEGER NOT NULL DEFAULT 0,
    "result" JSONB,
    "errorMessage" TEXT,

    CONSTRAINT "Command_pkey" PRIMARY KEY ("requestId")
);

-- CreateTable
CREATE TABLE "CommandEvent" (
    "id" BIGSERIAL NOT NULL,
    "requestId" UUID NOT NULL,
    "status" "CommandStatus" NOT NULL,
    "at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "detail" TEXT,

    CONSTRAINT "CommandEvent_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "User" (
    "id" UUID NOT NULL,
    "email" TEXT NOT NULL,
    "name" TEXT,
    "passwordHash" TEXT NOT NULL,
    "role" "UserRole" NOT NULL DEFAULT 'viewer',
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "disabledAt" TIMESTAMPTZ(3),

    CONSTRAINT "User_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "PasswordResetToken" (
    "id" UUID NOT NULL,
    "userId" UUID NOT NULL,
    "tokenHash" CHAR(64) NOT NULL,
    "expiresAt" TIMESTAMPTZ(3) NOT NULL,
    "usedAt" TIMESTAMPTZ(3),
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "PasswordResetToken_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "AuditLog" (
    "id" BIGSERIAL NOT NULL,
    "at" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "actor" TEXT NOT NULL,
    "action" TEXT NOT NULL,
    "targetType" TEXT,
    "targetId" TEXT,
    "ip" TEXT,
    "details" JSONB,

    CONSTRAINT "AuditLog_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "UsedNonce" (
    "nonce" TEXT NOT NULL,
    "expiresAt" TIMESTAMPTZ(3) NOT NULL,

    CONSTRAINT "UsedNonce_pkey" PRIMARY KEY ("nonce")
);

-- CreateIndex
CREATE UNIQUE INDEX "Device_legacyId_key" ON "Device"("legacyId");

-- CreateIndex
CREATE INDEX "Device_lastSeenAt_idx" ON "Device"("lastSeenAt");

-- CreateIndex
CREATE INDEX "Device_enrolledAt_id_idx" ON "Device"("enrolledAt", "id");

-- CreateIndex
CREATE INDEX "Device_enrollmentTokenId_idx" ON "Device"("enrollmentTokenId");

-- CreateIndex
CREATE INDEX "TelemetryEvent_deviceId_receivedAt_idx" ON "TelemetryEvent"("deviceId", "receivedAt");

-- CreateIndex
CREATE INDEX "TelemetryEvent_receivedAt_idx" ON "TelemetryEvent"("receivedAt");

-- CreateIndex
CREATE INDEX "Command_deviceId_status_idx" ON "Command"("deviceId", "status");

-- CreateIndex
CREATE INDEX "Command_status_expiresAt_idx" ON "Command"("status", "expiresAt");

-- CreateIndex
CREATE INDEX "Command_createdAt_idx" ON "Command"("createdAt");

-- CreateIndex
CREATE INDEX "CommandEvent_requestId_at_idx" ON "CommandEvent"("requestId", "at");

-- CreateIndex
CREATE UNIQUE INDEX "User_email_key" ON "User"("email");

-- CreateIndex
CREATE INDEX "PasswordResetToken_userId_idx" ON "PasswordResetToken"("userId");

-- CreateIndex
CREATE INDEX "AuditLog_at_idx" ON "AuditLog"("at");

-- CreateIndex
CREATE INDEX "AuditLog_targetType_targetId_idx" ON "AuditLog"("targetType", "targetId");

-- CreateIndex
CREATE INDEX "UsedNonce_expiresAt_idx" ON "UsedNonce"("expiresAt");

-- AddForeignKey
ALTER TABLE "Device" ADD CONSTRAINT "Device_enrollmentTokenId_fkey" FOREIGN KEY ("enrollmentTokenId") REFERENCES "EnrollmentToken"("id") ON DELETE SET NULL ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "TelemetryEvent" ADD CONSTRAINT "TelemetryEvent_deviceId_fkey" FOREIGN KEY ("deviceId") REFERENCES "Device"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "Command" ADD CONSTRAINT "Command_deviceId_fkey" FOREIGN KEY ("deviceId") REFERENCES "Device"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "CommandEvent" ADD CONSTRAINT "CommandEvent_requestId_fkey" FOREIGN KEY ("requestId") REFERENCES "Command"("requestId") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "PasswordResetToken" ADD CONSTRAINT "PasswordResetToken_userId_fkey" FOREIGN KEY ("userId") REFERENCES "User"("id") ON DELETE CASCADE ON UPDATE CASCADE;

