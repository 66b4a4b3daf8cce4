-- Devices whose effective policy must be recomputed (a policy or assignment change), claimed by the recompute worker.
CREATE TABLE "PolicyRecompute" (
    "deviceId" UUID NOT NULL,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "PolicyRecompute_pkey" PRIMARY KEY ("deviceId")
);
CREATE INDEX "PolicyRecompute_createdAt_idx" ON "PolicyRecompute"("createdAt");
ALTER TABLE "PolicyRecompute" ADD CONSTRAINT "PolicyRecompute_deviceId_fkey" FOREIGN KEY ("deviceId") REFERENCES "Device"("id") ON DELETE CASCADE ON UPDATE CASCADE;
