-- A task is created with its steps in one transaction, so it is in process
-- from its first visible moment. Submit used to insert it pending and then
-- update it to steps_in_process in the same transaction: a second
-- statement, a non-HOT update with its index entries, and a second trigger
-- run per batch, about a third of the cost of creating a task. It is now
-- inserted as steps_in_process, and the audit still records both moves,
-- in order (created pending, then pending -> steps_in_process), each
-- checked against the legal moves as before.

CREATE OR REPLACE FUNCTION tasker.task_transitions_on_insert() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    bad record;
BEGIN
    SELECT n.task_uuid, n.state INTO bad
    FROM new_rows n
    WHERE NOT EXISTS (SELECT 1 FROM tasker.task_state_transitions t
                      WHERE t.from_state = '' AND t.to_state = n.state)
      AND NOT (n.state = 'steps_in_process'
               AND EXISTS (SELECT 1 FROM tasker.task_state_transitions t
                           WHERE t.from_state = '' AND t.to_state = 'pending')
               AND EXISTS (SELECT 1 FROM tasker.task_state_transitions t
                           WHERE t.from_state = 'pending' AND t.to_state = 'steps_in_process'))
    LIMIT 1;
    IF FOUND THEN
        RAISE EXCEPTION 'illegal task transition: task % cannot be created in state %', bad.task_uuid, bad.state
            USING ERRCODE = 'check_violation', CONSTRAINT = 'task_state_transition';
    END IF;
    -- k orders the two moves of a task created in process (ids are given
    -- in output order).
    INSERT INTO tasker.task_transitions (task_uuid, from_state, to_state, worker_id, metadata)
    SELECT n.task_uuid, m.from_state, m.to_state, nullif(current_setting('tasker.worker_id', true), ''),
           tasker.transition_metadata()
    FROM new_rows n
    CROSS JOIN LATERAL (VALUES
        (0, NULL, CASE WHEN n.state = 'steps_in_process' THEN 'pending' ELSE n.state END),
        (1, 'pending', n.state)
    ) AS m(k, from_state, to_state)
    WHERE m.k = 0 OR n.state = 'steps_in_process'
    ORDER BY m.k;
    RETURN NULL;
END
$$;
