-- Retired devices: their token is refused, they leave the fleet's lists and counts, and
-- their history stays until the device is deleted.
-- AlterTable
ALTER TABLE "Device" ADD COLUMN "retiredAt" TIMESTAMPTZ(3),
ADD COLUMN "retiredBy" TEXT;
