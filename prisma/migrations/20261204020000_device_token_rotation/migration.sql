-- Re-keying a device through its own channel: the new token waits (hashed) until the device
-- first uses it or reports the rotation done; the old one stays valid until then, at most
-- until rotationGraceUntil. commandKeyGeneration selects the device's command key.
-- AlterEnum
ALTER TYPE "CommandType" ADD VALUE 'rotate_token';

-- AlterTable
ALTER TABLE "Device" ADD COLUMN "commandKeyGeneration" INTEGER NOT NULL DEFAULT 0,
ADD COLUMN "pendingTokenHash" CHAR(64),
ADD COLUMN "pendingKeyGeneration" INTEGER,
ADD COLUMN "rotationGraceUntil" TIMESTAMPTZ(3);
