-- Releases already at 100% (active, or paused there: nothing was left to advance) were
-- sent to their whole target: they are complete, and no longer block the app's next
-- release. (A new enum value can only be used once the migration adding it has
-- committed, hence apart.) The rollout job's top-up sends them to any device of the
-- target they missed.
UPDATE "AppRelease" SET status = 'completed' WHERE status IN ('active', 'paused') AND percent = 100;
