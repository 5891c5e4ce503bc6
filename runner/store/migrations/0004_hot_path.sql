-- The hot path writes an audit row per state change, from the transition
-- triggers of 0002; the foreign keys on those rows cost an index probe of
-- steps/tasks for every row although the triggers only ever write rows for
-- the step or task that just changed. They are dropped: the audit tables
-- are append-only history (deleting a task leaves its history in place
-- until it is pruned by task_uuid). steps_task duplicates the leading
-- column of steps_name_unique (task_uuid, name) and is dropped too: one
-- index fewer to maintain on every claim and completion.
ALTER TABLE tasker.step_transitions DROP CONSTRAINT step_transitions_step_uuid_fkey;
ALTER TABLE tasker.task_transitions DROP CONSTRAINT task_transitions_task_uuid_fkey;
DROP INDEX tasker.steps_task;
