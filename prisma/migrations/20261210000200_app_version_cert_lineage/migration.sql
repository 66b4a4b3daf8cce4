-- The signing certificate lineage of each version (APK Signature Scheme v3 key rotation),
-- oldest first, ending with its certificate.
ALTER TABLE "AppVersion" ADD COLUMN "certLineage" TEXT[] DEFAULT ARRAY[]::TEXT[];

-- Versions uploaded before: their certificate alone (their lineage was not read).
UPDATE "AppVersion" SET "certLineage" = ARRAY["certSha256"::TEXT];
