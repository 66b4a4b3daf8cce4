-- An instance renews the leases of all its device sockets every WS_LEASE_SECONDS / 3: with
-- 100,000 devices on WebSockets that is 5,000 row updates a second, more than their
-- heartbeats make. An index on socketLeaseExpiresAt, which every renewal changes, made each
-- of them a full (non-HOT) update rewriting every index of the row. The lease sweep finds
-- lapsed leases among the connected devices instead, through an index on the holder, which
-- a renewal leaves as it is (only connecting and disconnecting change it).
DROP INDEX IF EXISTS "Device_socketLeaseExpiresAt_idx";
CREATE INDEX "Device_socketInstanceId_idx" ON "Device"("socketInstanceId") WHERE "socketInstanceId" IS NOT NULL;
