-- Alerts as incidents and one digest mail per alert window.
-- AlterEnum
ALTER TYPE "AlertKind" ADD VALUE 'digest';

-- CreateEnum
CREATE TYPE "IncidentKind" AS ENUM ('offline', 'low_battery');

-- CreateEnum
CREATE TYPE "AlertEventKind" AS ENUM ('device_offline', 'device_online', 'battery_low', 'battery_recovered');

-- AlterTable
ALTER TABLE "AlertSettings" ADD COLUMN "alertWindowMinutes" INTEGER NOT NULL DEFAULT 15,
ADD COLUMN "lowBatteryPercent" INTEGER DEFAULT 15;

-- CreateTable
CREATE TABLE "AlertIncident" (
    "id" UUID NOT NULL,
    "kind" "IncidentKind" NOT NULL,
    "openedAt" TIMESTAMPTZ(3) NOT NULL,
    "lastJoinedAt" TIMESTAMPTZ(3) NOT NULL,
    "resolvedAt" TIMESTAMPTZ(3),
    "acknowledgedAt" TIMESTAMPTZ(3),
    "acknowledgedBy" TEXT,

    CONSTRAINT "AlertIncident_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "AlertIncidentDevice" (
    "incidentId" UUID NOT NULL,
    "deviceId" UUID NOT NULL,
    "since" TIMESTAMPTZ(3) NOT NULL,
    "returnedAt" TIMESTAMPTZ(3),
    "batteryLevel" INTEGER,

    CONSTRAINT "AlertIncidentDevice_pkey" PRIMARY KEY ("incidentId","deviceId")
);

-- CreateTable
CREATE TABLE "AlertEvent" (
    "id" BIGSERIAL NOT NULL,
    "kind" "AlertEventKind" NOT NULL,
    "deviceId" UUID NOT NULL,
    "incidentId" UUID,
    "at" TIMESTAMPTZ(3) NOT NULL,
    "batteryLevel" INTEGER,
    "digestedAt" TIMESTAMPTZ(3),
    "alertId" BIGINT,

    CONSTRAINT "AlertEvent_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE INDEX "AlertIncident_kind_resolvedAt_idx" ON "AlertIncident"("kind", "resolvedAt");

-- CreateIndex
CREATE INDEX "AlertIncident_openedAt_idx" ON "AlertIncident"("openedAt");

-- CreateIndex
CREATE INDEX "AlertIncidentDevice_deviceId_returnedAt_idx" ON "AlertIncidentDevice"("deviceId", "returnedAt");

-- CreateIndex
CREATE INDEX "AlertEvent_digestedAt_at_idx" ON "AlertEvent"("digestedAt", "at");

-- CreateIndex
CREATE INDEX "AlertEvent_alertId_idx" ON "AlertEvent"("alertId");

-- AddForeignKey
ALTER TABLE "AlertIncidentDevice" ADD CONSTRAINT "AlertIncidentDevice_incidentId_fkey" FOREIGN KEY ("incidentId") REFERENCES "AlertIncident"("id") ON DELETE CASCADE ON UPDATE CASCADE;
