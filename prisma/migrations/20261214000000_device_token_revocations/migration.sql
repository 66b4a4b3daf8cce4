-- Every revocation of a device token (retired, deleted, rotation started or completed) writes
-- a row in its own transaction. Each instance reads the new rows every few seconds and drops
-- those devices from its token cache (and closes sockets opened with a replaced token): the
-- event bus tells it at once, this makes sure it hears when an event was lost, so its cache
-- may keep a token for longer than a heartbeat interval. The rows new to an instance's read
-- are those of the transactions its previous read could not see (running then, or begun
-- since: pg_snapshot_xip and pg_snapshot_xmax), so however late a transaction commits, its
-- row is read, and once. Housekeeping deletes rows a day old.
CREATE TABLE "DeviceTokenRevocation" (
  "id" BIGSERIAL PRIMARY KEY,
  "deviceId" UUID NOT NULL,
  "reason" TEXT NOT NULL CHECK ("reason" IN ('retired', 'deleted', 'rotated')),
  "xid" XID8 NOT NULL DEFAULT pg_current_xact_id(),
  "revokedAt" TIMESTAMPTZ(3) NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX "DeviceTokenRevocation_xid_idx" ON "DeviceTokenRevocation"("xid");
CREATE INDEX "DeviceTokenRevocation_revokedAt_idx" ON "DeviceTokenRevocation"("revokedAt");
