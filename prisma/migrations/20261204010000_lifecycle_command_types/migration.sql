-- Command types of the device lifecycle: erase the device, lost mode, and locate.
-- AlterEnum
ALTER TYPE "CommandType" ADD VALUE 'wipe';
ALTER TYPE "CommandType" ADD VALUE 'factory_reset';
ALTER TYPE "CommandType" ADD VALUE 'lost_mode';
ALTER TYPE "CommandType" ADD VALUE 'locate';
