-- Every revocation of a device token (retired, deleted, rotation started or completed) writes
-- a row in its own transaction. Each instance reads the rows of the last minutes every few
-- seconds and drops those devices from its token cache: the event bus tells it at once, this
-- makes sure it hears even when an event was lost, so its cache may keep a token for longer
-- than a heartbeat interval. Housekeeping deletes rows a day old.
CREATE TABLE "DeviceTokenRevocation" (
  "id" BIGSERIAL PRIMARY KEY,
  "deviceId" UUID NOT NULL,
  "revokedAt" TIMESTAMPTZ(3) NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX "DeviceTokenRevocation_revokedAt_idx" ON "DeviceTokenRevocation"("revokedAt");
