-- A rollback returns each device to what it ran before the release, not to the app's
-- highest catalogue version below the release (which may never have been released, or may
-- have been withdrawn by another rollback). The version is recorded per device when the
-- release's install is sent; why a rollback sent a device nothing is kept beside it.
ALTER TABLE "AppReleaseDevice" ADD COLUMN "fromVersionCode" INTEGER;
ALTER TABLE "AppReleaseDevice" ADD COLUMN "rollbackSkipped" TEXT;
-- Rows sent before this column: the best record of what the device ran before is the version
-- an earlier release of the app last sent it (lower than this release's); else unknown (null),
-- and a rollback leaves that device as it is.
UPDATE "AppReleaseDevice" rd SET "fromVersionCode" = (
  SELECT prev."versionCode" FROM "AppReleaseDevice" prev
  JOIN "AppRelease" pr ON pr.id = prev."releaseId"
  WHERE prev."deviceId" = rd."deviceId" AND pr."packageName" = r."packageName" AND pr.id <> r.id
    AND prev."sentAt" <= rd."sentAt" AND prev."versionCode" < r."versionCode"
  ORDER BY prev."sentAt" DESC LIMIT 1)
FROM "AppRelease" r
WHERE r.id = rd."releaseId" AND rd."versionCode" = r."versionCode";
