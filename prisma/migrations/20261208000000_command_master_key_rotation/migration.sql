-- Fleet-wide rotation of the command master key: which master key (by COMMAND_KEY_ID) each
-- device's command key derives from, and its pending key's. Devices enrolled before this
-- migration keep NULL: the key that is COMMAND_KEY_ID_PREVIOUS while one is set, else
-- COMMAND_KEY_ID (their key was derived from the only master key there was).
-- AlterTable
ALTER TABLE "Device" ADD COLUMN "commandMasterKeyId" TEXT,
ADD COLUMN "pendingMasterKeyId" TEXT;

-- CreateIndex
CREATE INDEX "Device_commandMasterKeyId_idx" ON "Device"("commandMasterKeyId");
