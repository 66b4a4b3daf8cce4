-- Devices whose effective policy changed, waiting for the policy worker (FCM wake-up, required app installs).
CREATE TABLE "PolicyDispatch" (
    "deviceId" UUID NOT NULL,
    "dueAt" TIMESTAMPTZ(3) NOT NULL,
    "attempts" INTEGER NOT NULL DEFAULT 0,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "PolicyDispatch_pkey" PRIMARY KEY ("deviceId")
);
CREATE INDEX "PolicyDispatch_dueAt_idx" ON "PolicyDispatch"("dueAt");
ALTER TABLE "PolicyDispatch" ADD CONSTRAINT "PolicyDispatch_deviceId_fkey" FOREIGN KEY ("deviceId") REFERENCES "Device"("id") ON DELETE CASCADE ON UPDATE CASCADE;
