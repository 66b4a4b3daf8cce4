-- When a device's last socket closed, so the dashboard can show "disconnected since".
-- AlterTable
ALTER TABLE "Device" ADD COLUMN "socketDisconnectedAt" TIMESTAMPTZ(3);
