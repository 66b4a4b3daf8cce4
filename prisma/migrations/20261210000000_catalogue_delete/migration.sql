-- Versions can be deleted from the catalogue. A release keeps its history when a version it
-- names is deleted: its version code (and name), its previous version's code and each of
-- its devices' version code are kept on its own rows, and its links to the deleted version
-- are cleared (a rollback looks its previous version up by code).
ALTER TABLE "AppRelease" ADD COLUMN "versionCode" INTEGER, ADD COLUMN "versionName" TEXT, ADD COLUMN "previousVersionCode" INTEGER;
UPDATE "AppRelease" r SET "versionCode" = v."versionCode", "versionName" = v."versionName" FROM "AppVersion" v WHERE v.id = r."versionId";
UPDATE "AppRelease" r SET "previousVersionCode" = v."versionCode" FROM "AppVersion" v WHERE v.id = r."previousVersionId";
ALTER TABLE "AppRelease" ALTER COLUMN "versionCode" SET NOT NULL, ALTER COLUMN "versionId" DROP NOT NULL;
ALTER TABLE "AppRelease" DROP CONSTRAINT "AppRelease_versionId_fkey";
ALTER TABLE "AppRelease" ADD CONSTRAINT "AppRelease_versionId_fkey" FOREIGN KEY ("versionId") REFERENCES "AppVersion"("id") ON DELETE SET NULL ON UPDATE CASCADE;

ALTER TABLE "AppReleaseDevice" ADD COLUMN "versionCode" INTEGER;
UPDATE "AppReleaseDevice" rd SET "versionCode" = v."versionCode" FROM "AppVersion" v WHERE v.id = rd."versionId";
ALTER TABLE "AppReleaseDevice" ALTER COLUMN "versionCode" SET NOT NULL;

-- A download URL names a file by its hash: it is served only while a version refers to it,
-- and the file is removed once none does.
CREATE INDEX "AppVersion_sha256_idx" ON "AppVersion"("sha256");
