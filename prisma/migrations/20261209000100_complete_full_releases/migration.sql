-- Releases already at 100% were sent to their whole target: they are complete (a new
-- enum value can only be used once the migration adding it has committed, hence apart).
-- The rollout job's top-up sends them to any device of the target they missed.
UPDATE "AppRelease" SET status = 'completed' WHERE status = 'active' AND percent = 100;
