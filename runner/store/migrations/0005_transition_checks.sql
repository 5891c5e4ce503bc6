-- The update triggers of 0002/0003 checked every move in one query over
-- the transition tables and wrote the audit rows in a second. Now the
-- insert looks each move up in the legal-moves table itself and raises on
-- the first illegal one: one pass over the changed rows per statement on
-- the hot path instead of two. Behaviour is unchanged.

CREATE FUNCTION tasker.illegal_step_transition(step uuid, from_state text, to_state text) RETURNS jsonb
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'illegal step transition: step % cannot move from % to %', step, from_state, to_state
        USING ERRCODE = 'check_violation', CONSTRAINT = 'step_state_transition';
END
$$;

CREATE FUNCTION tasker.illegal_task_transition(task uuid, from_state text, to_state text) RETURNS jsonb
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'illegal task transition: task % cannot move from % to %', task, from_state, to_state
        USING ERRCODE = 'check_violation', CONSTRAINT = 'task_state_transition';
END
$$;

CREATE OR REPLACE FUNCTION tasker.step_transitions_on_update() RETURNS trigger
LANGUAGE plpgsql
SET enable_nestloop = off
AS $$
BEGIN
    -- A new claim of an in_progress step (lease rescue) shows as a new attempt.
    INSERT INTO tasker.step_transitions (step_uuid, task_uuid, from_state, to_state, attempt, worker_id, metadata)
    SELECT n.step_uuid, n.task_uuid, o.state, n.state, n.attempts,
           coalesce(n.lease_owner, o.lease_owner, nullif(current_setting('tasker.worker_id', true), '')),
           CASE
               WHEN t.to_state IS NULL
                   THEN tasker.illegal_step_transition(n.step_uuid, o.state, n.state)
               WHEN n.state IN ('waiting_for_retry', 'error') AND n.last_error IS NOT NULL
                   THEN jsonb_build_object('error', n.last_error) || coalesce(tasker.transition_metadata(), '{}')
               WHEN o.state = 'in_progress' AND n.state = 'in_progress'
                   THEN jsonb_build_object('lease_rescued_from', o.lease_owner) || coalesce(tasker.transition_metadata(), '{}')
               ELSE tasker.transition_metadata()
           END
    FROM new_rows n JOIN old_rows o USING (step_uuid)
    LEFT JOIN tasker.step_state_transitions t ON t.from_state = o.state AND t.to_state = n.state
    WHERE n.state <> o.state OR n.attempts > o.attempts;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION tasker.task_transitions_on_update() RETURNS trigger
LANGUAGE plpgsql
SET enable_nestloop = off
AS $$
BEGIN
    INSERT INTO tasker.task_transitions (task_uuid, from_state, to_state, worker_id, metadata)
    SELECT n.task_uuid, o.state, n.state, nullif(current_setting('tasker.worker_id', true), ''),
           CASE
               WHEN t.to_state IS NULL
                   THEN tasker.illegal_task_transition(n.task_uuid, o.state, n.state)
               ELSE tasker.transition_metadata()
           END
    FROM new_rows n JOIN old_rows o USING (task_uuid)
    LEFT JOIN tasker.task_state_transitions t ON t.from_state = o.state AND t.to_state = n.state
    WHERE n.state <> o.state;
    RETURN NULL;
END
$$;
