-- Required app installs the policy worker sent, with the retry schedule after a failure.
CREATE TABLE "RequiredAppInstall" (
    "deviceId" UUID NOT NULL,
    "packageName" TEXT NOT NULL,
    "versionCode" INTEGER NOT NULL,
    "requestId" UUID NOT NULL,
    "attempts" INTEGER NOT NULL,
    "sentAt" TIMESTAMPTZ(3) NOT NULL,
    "failed" BOOLEAN NOT NULL DEFAULT false,
    "lastFailure" TEXT,
    "failedAt" TIMESTAMPTZ(3),
    "nextAttemptAt" TIMESTAMPTZ(3),
    CONSTRAINT "RequiredAppInstall_pkey" PRIMARY KEY ("deviceId", "packageName")
);
CREATE UNIQUE INDEX "RequiredAppInstall_requestId_key" ON "RequiredAppInstall"("requestId");
CREATE INDEX "RequiredAppInstall_nextAttemptAt_idx" ON "RequiredAppInstall"("nextAttemptAt");
ALTER TABLE "RequiredAppInstall" ADD CONSTRAINT "RequiredAppInstall_deviceId_fkey" FOREIGN KEY ("deviceId") REFERENCES "Device"("id") ON DELETE CASCADE ON UPDATE CASCADE;
