-- Policies: versioned desired state, their assignments to devices and groups, and each
-- device's effective policy and compliance report.
-- AlterTable
ALTER TABLE "Device" ADD COLUMN "policyDesired" JSONB,
ADD COLUMN "policyDesiredHash" TEXT,
ADD COLUMN "policyAppliedHash" TEXT,
ADD COLUMN "policyFailures" JSONB,
ADD COLUMN "policyReportedAt" TIMESTAMPTZ(3);

-- CreateTable
CREATE TABLE "Policy" (
    "id" UUID NOT NULL,
    "name" TEXT NOT NULL,
    "description" TEXT,
    "version" INTEGER NOT NULL DEFAULT 1,
    "settings" JSONB NOT NULL,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMPTZ(3) NOT NULL,
    "updatedBy" TEXT NOT NULL,

    CONSTRAINT "Policy_pkey" PRIMARY KEY ("id")
);

-- CreateTable
CREATE TABLE "PolicyVersion" (
    "policyId" UUID NOT NULL,
    "version" INTEGER NOT NULL,
    "name" TEXT NOT NULL,
    "description" TEXT,
    "settings" JSONB NOT NULL,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "createdBy" TEXT NOT NULL,
    "revertedFrom" INTEGER,

    CONSTRAINT "PolicyVersion_pkey" PRIMARY KEY ("policyId","version")
);

-- CreateTable
CREATE TABLE "PolicyAssignment" (
    "id" UUID NOT NULL,
    "policyId" UUID NOT NULL,
    "deviceId" UUID,
    "group" TEXT,
    "priority" INTEGER NOT NULL DEFAULT 0,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "PolicyAssignment_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "Policy_name_key" ON "Policy"("name");

-- CreateIndex
CREATE INDEX "PolicyAssignment_deviceId_idx" ON "PolicyAssignment"("deviceId");

-- CreateIndex
CREATE INDEX "PolicyAssignment_group_idx" ON "PolicyAssignment"("group");

-- CreateIndex
CREATE UNIQUE INDEX "PolicyAssignment_policyId_deviceId_key" ON "PolicyAssignment"("policyId", "deviceId");

-- CreateIndex
CREATE UNIQUE INDEX "PolicyAssignment_policyId_group_key" ON "PolicyAssignment"("policyId", "group");

-- AddForeignKey
ALTER TABLE "PolicyVersion" ADD CONSTRAINT "PolicyVersion_policyId_fkey" FOREIGN KEY ("policyId") REFERENCES "Policy"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "PolicyAssignment" ADD CONSTRAINT "PolicyAssignment_policyId_fkey" FOREIGN KEY ("policyId") REFERENCES "Policy"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "PolicyAssignment" ADD CONSTRAINT "PolicyAssignment_deviceId_fkey" FOREIGN KEY ("deviceId") REFERENCES "Device"("id") ON DELETE CASCADE ON UPDATE CASCADE;
