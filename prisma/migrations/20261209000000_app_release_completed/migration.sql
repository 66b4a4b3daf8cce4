-- A release at 100% sent to its whole target is complete, and no longer blocks the
-- app's next release.
ALTER TYPE "AppReleaseStatus" ADD VALUE 'completed';
