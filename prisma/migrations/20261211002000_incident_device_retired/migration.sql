-- A device retired or deleted while away no longer keeps its incident open, but it did not
-- come back either: the incident says how many left the fleet apart from how many are back.
ALTER TABLE "AlertIncidentDevice" ADD COLUMN "retired" BOOLEAN NOT NULL DEFAULT false;
-- Before this column, leaving the fleet was recorded as returning, at the sweep after the
-- retirement: mark those (a device retired only after it came back keeps its return).
UPDATE "AlertIncidentDevice" d SET "retired" = true
WHERE d."returnedAt" IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM "Device" v WHERE v.id = d."deviceId" AND (v."retiredAt" IS NULL OR v."retiredAt" > d."returnedAt"));
-- The digest says so too, in a section of its own.
ALTER TYPE "AlertEventKind" ADD VALUE 'device_retired';
-- Each device's name when it joined, so that one deleted since is still named.
ALTER TABLE "AlertIncidentDevice" ADD COLUMN "name" TEXT;
UPDATE "AlertIncidentDevice" d SET "name" = COALESCE(v.alias, v."serialNumber", v.model) FROM "Device" v WHERE v.id = d."deviceId";
