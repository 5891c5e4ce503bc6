-- State machines. Every change of a step's or a task's state, by the runner,
-- the API or an operator with psql, passes through one function per table
-- that rejects moves not listed here and writes the audit row. The triggers
-- are per statement with transition tables, so a batch of N rows costs one
-- set-based check and one INSERT, not N trigger calls.

CREATE TABLE tasker.step_state_transitions (
    from_state text NOT NULL,
    to_state   text NOT NULL,
    PRIMARY KEY (from_state, to_state)
);

-- '' stands for "created in this state".
INSERT INTO tasker.step_state_transitions (from_state, to_state) VALUES
    ('', 'pending'), ('', 'enqueued'),
    ('pending', 'enqueued'), ('pending', 'cancelled'), ('pending', 'resolved_manually'),
    ('enqueued', 'in_progress'), ('enqueued', 'cancelled'), ('enqueued', 'resolved_manually'),
    -- in_progress -> in_progress is a lease rescue: another runner re-claims an expired lease.
    ('in_progress', 'in_progress'), ('in_progress', 'complete'), ('in_progress', 'waiting_for_retry'),
    ('in_progress', 'error'), ('in_progress', 'enqueued'), ('in_progress', 'cancelled'),
    ('in_progress', 'resolved_manually'),
    -- A due retry is claimed directly.
    ('waiting_for_retry', 'enqueued'), ('waiting_for_retry', 'in_progress'),
    ('waiting_for_retry', 'cancelled'), ('waiting_for_retry', 'resolved_manually'),
    -- The dead-letter set can be redriven or settled by hand.
    ('error', 'enqueued'), ('error', 'cancelled'), ('error', 'resolved_manually');

CREATE TABLE tasker.task_state_transitions (
    from_state text NOT NULL,
    to_state   text NOT NULL,
    PRIMARY KEY (from_state, to_state)
);

INSERT INTO tasker.task_state_transitions (from_state, to_state) VALUES
    ('', 'pending'),
    ('pending', 'steps_in_process'), ('pending', 'cancelled'),
    ('steps_in_process', 'complete'), ('steps_in_process', 'blocked_by_failures'),
    ('steps_in_process', 'cancelled'), ('steps_in_process', 'resolved_manually'),
    ('blocked_by_failures', 'steps_in_process'), ('blocked_by_failures', 'complete'),
    ('blocked_by_failures', 'cancelled'), ('blocked_by_failures', 'resolved_manually');

-- Callers may describe why they change states (the API's manual actions do):
--   SELECT set_config('tasker.transition_metadata', '{"reason": "..."}', true);
--   SELECT set_config('tasker.worker_id', 'api', true);
CREATE FUNCTION tasker.transition_metadata() RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT nullif(current_setting('tasker.transition_metadata', true), '')::jsonb
$$;

CREATE FUNCTION tasker.step_transitions_on_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    bad record;
BEGIN
    SELECT n.step_uuid, n.state INTO bad
    FROM new_rows n
    WHERE NOT EXISTS (SELECT 1 FROM tasker.step_state_transitions t
                      WHERE t.from_state = '' AND t.to_state = n.state)
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'illegal step transition: step % cannot be created in state %', bad.step_uuid, bad.state
            USING ERRCODE = 'check_violation', CONSTRAINT = 'step_state_transition';
    END IF;
    INSERT INTO tasker.step_transitions (step_uuid, task_uuid, from_state, to_state, attempt, worker_id, metadata)
    SELECT n.step_uuid, n.task_uuid, NULL, n.state, n.attempts,
           nullif(current_setting('tasker.worker_id', true), ''), tasker.transition_metadata()
    FROM new_rows n;
    RETURN NULL;
END
$$;

CREATE FUNCTION tasker.step_transitions_on_update() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    bad record;
BEGIN
    -- A new claim of an in_progress step (lease rescue) shows as a new attempt.
    SELECT n.step_uuid, o.state AS from_state, n.state AS to_state INTO bad
    FROM new_rows n JOIN old_rows o USING (step_uuid)
    WHERE (n.state <> o.state OR n.attempts > o.attempts)
      AND NOT EXISTS (SELECT 1 FROM tasker.step_state_transitions t
                      WHERE t.from_state = o.state AND t.to_state = n.state)
    LIMIT 1;
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

CREATE TRIGGER steps_transition_insert AFTER INSERT ON tasker.steps
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION tasker.step_transitions_on_insert();
CREATE TRIGGER steps_transition_update AFTER UPDATE ON tasker.steps
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION tasker.step_transitions_on_update();

CREATE FUNCTION tasker.task_transitions_on_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    bad record;
BEGIN
    SELECT n.task_uuid, n.state INTO bad
    FROM new_rows n
    WHERE NOT EXISTS (SELECT 1 FROM tasker.task_state_transitions t
                      WHERE t.from_state = '' AND t.to_state = n.state)
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'illegal task transition: task % cannot be created in state %', bad.task_uuid, bad.state
            USING ERRCODE = 'check_violation', CONSTRAINT = 'task_state_transition';
    END IF;
    INSERT INTO tasker.task_transitions (task_uuid, from_state, to_state, worker_id, metadata)
    SELECT n.task_uuid, NULL, n.state, nullif(current_setting('tasker.worker_id', true), ''), tasker.transition_metadata()
    FROM new_rows n;
    RETURN NULL;
END
$$;

CREATE FUNCTION tasker.task_transitions_on_update() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    bad record;
BEGIN
    SELECT n.task_uuid, o.state AS from_state, n.state AS to_state INTO bad
    FROM new_rows n JOIN old_rows o USING (task_uuid)
    WHERE n.state <> o.state
      AND NOT EXISTS (SELECT 1 FROM tasker.task_state_transitions t
                      WHERE t.from_state = o.state AND t.to_state = n.state)
    LIMIT 1;
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

CREATE TRIGGER tasks_transition_insert AFTER INSERT ON tasker.tasks
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION tasker.task_transitions_on_insert();
CREATE TRIGGER tasks_transition_update AFTER UPDATE ON tasker.tasks
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION tasker.task_transitions_on_update();
