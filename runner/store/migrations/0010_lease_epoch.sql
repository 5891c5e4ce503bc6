-- The completion fence was (lease owner, attempt), but a release, a yield
-- and an open breaker give the attempt back, so the same runner re-claiming
-- the step got the same pair again and a late write of the earlier claim
-- (a re-send after a lost commit reply, say) could land on the new one.
-- lease_epoch only ever goes up: every claim and rescue takes the next
-- value, and completions, lease extensions and releases must present the
-- value of their claim. Not indexed: updates stay HOT.
ALTER TABLE tasker.steps ADD COLUMN lease_epoch bigint NOT NULL DEFAULT 0;
