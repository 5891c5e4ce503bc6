-- The update triggers of 0002 pair old and new rows by joining the two
-- transition tables. With LIMIT 1 on the legality check the planner expects
-- to stop at the first row and picks a nested loop, which is quadratic when
-- (as always) no illegal move is found: 5,000 rows cost 25 million
-- comparisons, seconds per statement. PL/pgSQL also caches the first plan
-- it makes, whatever the transition tables held then. So: no LIMIT, and no
-- nested loops inside these functions (the joins become hash joins, linear
-- in the rows changed, whatever size the first call had).

CREATE OR REPLACE FUNCTION tasker.step_transitions_on_update() RETURNS trigger
LANGUAGE plpgsql
SET enable_nestloop = off
AS $$
DECLARE
    bad record;
BEGIN
    -- A new claim of an in_progress step (lease rescue) shows as a new attempt.
    -- SELECT INTO keeps the first row; the statement has no LIMIT so that it
    -- is planned for the usual case of finding none.
    SELECT n.step_uuid, o.state AS from_state, n.state AS to_state INTO bad
    FROM new_rows n JOIN old_rows o USING (step_uuid)
    WHERE (n.state <> o.state OR n.attempts > o.attempts)
      AND NOT EXISTS (SELECT 1 FROM tasker.step_state_transitions t
                      WHERE t.from_state = o.state AND t.to_state = n.state);
    IF FOUND THEN
        RAISE EXCEPTION 'illegal step transition: step % cannot move from % to %', bad.step_uuid, bad.from_state, bad.to_state
            USING ERRCODE = 'check_violation', CONSTRAINT = 'step_state_transition';
    END IF;
    INSERT INTO tasker.step_transitions (step_uuid, task_uuid, from_state, to_state, attempt, worker_id, metadata)
    SELECT n.step_uuid, n.task_uuid, o.state, n.state, n.attempts,
           coalesce(n.lease_owner, o.lease_owner, nullif(current_setting('tasker.worker_id', true), '')),
           CASE
               WHEN n.state IN ('waiting_for_retry', 'error') AND n.last_error IS NOT NULL
                   THEN jsonb_build_object('error', n.last_error) || coalesce(tasker.transition_metadata(), '{}')
               WHEN o.state = 'in_progress' AND n.state = 'in_progress'
                   THEN jsonb_build_object('lease_rescued_from', o.lease_owner) || coalesce(tasker.transition_metadata(), '{}')
               ELSE tasker.transition_metadata()
           END
    FROM new_rows n JOIN old_rows o USING (step_uuid)
    WHERE n.state <> o.state OR n.attempts > o.attempts;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION tasker.task_transitions_on_update() RETURNS trigger
LANGUAGE plpgsql
SET enable_nestloop = off
AS $$
DECLARE
    bad record;
BEGIN
    SELECT n.task_uuid, o.state AS from_state, n.state AS to_state INTO bad
    FROM new_rows n JOIN old_rows o USING (task_uuid)
    WHERE n.state <> o.state
      AND NOT EXISTS (SELECT 1 FROM tasker.task_state_transitions t
                      WHERE t.from_state = o.state AND t.to_state = n.state);
    IF FOUND THEN
        RAISE EXCEPTION 'illegal task transition: task % cannot move from % to %', bad.task_uuid, bad.from_state, bad.to_state
            USING ERRCODE = 'check_violation', CONSTRAINT = 'task_state_transition';
    END IF;
    INSERT INTO tasker.task_transitions (task_uuid, from_state, to_state, worker_id, metadata)
    SELECT n.task_uuid, o.state, n.state, nullif(current_setting('tasker.worker_id', true), ''), tasker.transition_metadata()
    FROM new_rows n JOIN old_rows o USING (task_uuid)
    WHERE n.state <> o.state;
    RETURN NULL;
END
$$;
