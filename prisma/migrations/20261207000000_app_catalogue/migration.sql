-- The app catalogue: uploaded APKs by package, and their staged releases.
CREATE TYPE "AppReleaseStatus" AS ENUM ('active', 'paused', 'rolled_back');

CREATE TABLE "CatalogueApp" (
    "packageName" TEXT NOT NULL,
    "certSha256" CHAR(64) NOT NULL,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "CatalogueApp_pkey" PRIMARY KEY ("packageName")
);

CREATE TABLE "AppVersion" (
    "id" UUID NOT NULL,
    "packageName" TEXT NOT NULL,
    "versionCode" INTEGER NOT NULL,
    "versionName" TEXT,
    "sha256" CHAR(64) NOT NULL,
    "sizeBytes" BIGINT NOT NULL,
    "certSha256" CHAR(64) NOT NULL,
    "uploadedBy" TEXT,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "AppVersion_pkey" PRIMARY KEY ("id")
);
CREATE UNIQUE INDEX "AppVersion_packageName_versionCode_key" ON "AppVersion"("packageName", "versionCode");
ALTER TABLE "AppVersion" ADD CONSTRAINT "AppVersion_packageName_fkey" FOREIGN KEY ("packageName") REFERENCES "CatalogueApp"("packageName") ON DELETE CASCADE ON UPDATE CASCADE;

CREATE TABLE "AppRelease" (
    "id" UUID NOT NULL,
    "packageName" TEXT NOT NULL,
    "versionId" UUID NOT NULL,
    "previousVersionId" UUID,
    "target" JSONB NOT NULL,
    "percent" INTEGER NOT NULL,
    "status" "AppReleaseStatus" NOT NULL DEFAULT 'active',
    "autoAdvance" BOOLEAN NOT NULL DEFAULT false,
    "maxFailurePercent" INTEGER NOT NULL DEFAULT 5,
    "createdBy" TEXT,
    "createdAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    "updatedAt" TIMESTAMPTZ(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
    CONSTRAINT "AppRelease_pkey" PRIMARY KEY ("id")
);
CREATE INDEX "AppRelease_status_idx" ON "AppRelease"("status");
ALTER TABLE "AppRelease" ADD CONSTRAINT "AppRelease_packageName_fkey" FOREIGN KEY ("packageName") REFERENCES "CatalogueApp"("packageName") ON DELETE CASCADE ON UPDATE CASCADE;
ALTER TABLE "AppRelease" ADD CONSTRAINT "AppRelease_versionId_fkey" FOREIGN KEY ("versionId") REFERENCES "AppVersion"("id") ON DELETE RESTRICT ON UPDATE CASCADE;
ALTER TABLE "AppRelease" ADD CONSTRAINT "AppRelease_previousVersionId_fkey" FOREIGN KEY ("previousVersionId") REFERENCES "AppVersion"("id") ON DELETE SET NULL ON UPDATE CASCADE;

CREATE TABLE "AppReleaseDevice" (
    "releaseId" UUID NOT NULL,
    "deviceId" UUID NOT NULL,
    "versionId" UUID NOT NULL,
    "requestId" UUID,
    "sentAt" TIMESTAMPTZ(3) NOT NULL,
    CONSTRAINT "AppReleaseDevice_pkey" PRIMARY KEY ("releaseId", "deviceId")
);
CREATE INDEX "AppReleaseDevice_requestId_idx" ON "AppReleaseDevice"("requestId");
ALTER TABLE "AppReleaseDevice" ADD CONSTRAINT "AppReleaseDevice_releaseId_fkey" FOREIGN KEY ("releaseId") REFERENCES "AppRelease"("id") ON DELETE CASCADE ON UPDATE CASCADE;
