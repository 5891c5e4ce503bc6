-- Tasker's state machine: a step waiting_for_retry becomes enqueued when its run_at
-- passes, then in_progress when claimed. The claim takes a due retry
-- straight from waiting_for_retry (no write at run_at, no sweeper), so
-- the audit now records both moves for it: waiting_for_retry -> enqueued
-- (metadata due_at: its run_at) and enqueued -> in_progress, in that order.
-- The shortcut itself is no longer a legal move of its own.

DELETE FROM tasker.step_state_transitions WHERE from_state = 'waiting_for_retry' AND to_state = 'in_progress';

-- Written without LATERAL: with nested loops off (0003), a lateral join is
-- still forced into one, and the planner then nests the transition tables
-- too (quadratic); a materialized CTE scanned twice keeps every join hashed.
CREATE OR REPLACE FUNCTION tasker.step_transitions_on_update() RETURNS trigger
LANGUAGE plpgsql
SET enable_nestloop = off
AS $$
BEGIN
    -- A new claim of an in_progress step (lease rescue) shows as a new attempt.
    -- k orders a due retry's two moves (ids are given in output order).
    WITH changed AS MATERIALIZED (
        SELECT n.step_uuid, n.task_uuid, o.state AS old_state, n.state AS new_state,
               o.attempts AS old_attempts, n.attempts AS new_attempts,
               coalesce(n.lease_owner, o.lease_owner, nullif(current_setting('tasker.worker_id', true), '')) AS worker,
               o.lease_owner AS old_owner, n.last_error, o.run_at AS old_run_at,
               o.state = 'waiting_for_retry' AND n.state = 'in_progress' AS due_retry
        FROM new_rows n JOIN old_rows o USING (step_uuid)
        WHERE n.state <> o.state OR n.attempts > o.attempts
    ),
    moves AS (
        SELECT 0 AS k, c.*, 'waiting_for_retry'::text AS from_state, 'enqueued'::text AS to_state, c.old_attempts AS attempt
        FROM changed c WHERE c.due_retry
        UNION ALL
        SELECT 1, c.*, CASE WHEN c.due_retry THEN 'enqueued' ELSE c.old_state END, c.new_state, c.new_attempts
        FROM changed c
    )
    INSERT INTO tasker.step_transitions (step_uuid, task_uuid, from_state, to_state, attempt, worker_id, metadata)
    SELECT m.step_uuid, m.task_uuid, m.from_state, m.to_state, m.attempt, m.worker,
           CASE
               WHEN t.to_state IS NULL
                   THEN tasker.illegal_step_transition(m.step_uuid, m.from_state, m.to_state)
               WHEN m.k = 0
                   THEN jsonb_build_object('due_at', m.old_run_at) || coalesce(tasker.transition_metadata(), '{}')
               WHEN m.new_state IN ('waiting_for_retry', 'error') AND m.last_error IS NOT NULL
                   THEN jsonb_build_object('error', m.last_error) || coalesce(tasker.transition_metadata(), '{}')
               WHEN m.old_state = 'in_progress' AND m.new_state = 'in_progress'
                   THEN jsonb_build_object('lease_rescued_from', m.old_owner) || coalesce(tasker.transition_metadata(), '{}')
               ELSE tasker.transition_metadata()
           END
    FROM moves m
    LEFT JOIN tasker.step_state_transitions t ON t.from_state = m.from_state AND t.to_state = m.to_state
    ORDER BY m.k;
    RETURN NULL;
END
$$;
