-- How many times a step has yielded (saved a checkpoint and asked to run
-- again): a yield consumes no attempt, so without a count a handler that
-- yields for ever would run for ever. The runner fails a step past its
-- limit; a redrive starts the count again.
ALTER TABLE tasker.steps ADD COLUMN yields integer NOT NULL DEFAULT 0 CONSTRAINT steps_yields_nonnegative CHECK (yields >= 0);
