-- History v2: the happy path's moves live in columns, rows only for the
-- rest.
--
-- Until now a statement trigger wrote one audit row for every state change:
-- a step's claim, its completion and its task's completion each cost a row,
-- an index entry and the trigger's transition tables. Most steps only ever
-- make the happy moves, so these are now read from columns of the row:
--
--   step created (state created_state)         at steps.created_at
--   pending -> enqueued (its parents completed) at steps.enqueued_at
--   enqueued -> in_progress (the open claim)    at steps.claimed_at, by claimed_by, attempt = attempts
--   in_progress -> complete (of that claim)     at steps.completed_at
--   task created (pending, then steps_in_process when created_state says so) at tasks.created_at
--   steps_in_process -> complete                at tasks.completed_at
--
-- Every other move (retries, failures, rescues, releases, yields, cancels,
-- manual changes, a due retry's return to enqueued) still writes a row, now
-- from a row-level trigger whose WHEN clause skips the happy moves without
-- calling any function, so the hot path pays nothing for it. When a move
-- ends a claim that is only in columns (a retry after a claim, say), the
-- trigger first writes that claim as a row and clears claimed_at: the
-- columns only ever describe moves made after every row. Legal-move
-- checking stays in the trigger (the happy moves are legal by
-- construction, and a test keeps them in the transition tables).
--
-- Rows written before this migration stay as they are (created_state is
-- NULL on those steps and tasks: their creation is in rows). A step in
-- flight now has no claimed_at, so its completion writes a row.

ALTER TABLE tasker.steps
    ADD COLUMN created_state text,
    ADD COLUMN enqueued_at timestamptz,
    ADD COLUMN claimed_at timestamptz,
    ADD COLUMN claimed_by text,
    ADD CONSTRAINT steps_created_state_valid CHECK (created_state IN ('pending', 'enqueued')),
    ADD CONSTRAINT steps_claim_consistent CHECK (claimed_at IS NULL OR claimed_by IS NOT NULL);

ALTER TABLE tasker.tasks
    ADD COLUMN created_state text,
    ADD CONSTRAINT tasks_created_state_valid CHECK (created_state IN ('pending', 'steps_in_process'));

-- Direct parents, fixed at creation: a claim walks step_edges for the
-- ancestors' results only when there are some. -1 (the value steps created
-- before this migration get) means unknown: walk.
ALTER TABLE tasker.steps ADD COLUMN parents integer NOT NULL DEFAULT -1;
ALTER TABLE tasker.steps ALTER COLUMN parents SET DEFAULT 0;

-- Ancestors are resolved at claim time from step_edges: storing every
-- step's transitive ancestors made a chain's submit quadratic.
ALTER TABLE tasker.steps DROP COLUMN ancestors;

-- The results of a step's completed ancestors by name, for its claim. A
-- function, declared cheap, keeps the recursive walk's estimated cost out
-- of the claim's plan (it made the claim look expensive enough for JIT).
CREATE FUNCTION tasker.dependency_results(step uuid) RETURNS jsonb
    LANGUAGE plpgsql STABLE COST 10
    -- One index probe per edge walked: a hash join would read all of
    -- step_edges once per level (a 1,000-step chain's last step took
    -- ~100 ms, and more as the table grows).
    SET enable_hashjoin = off SET enable_mergejoin = off
AS $$
BEGIN
    RETURN (
        WITH RECURSIVE anc(step_uuid) AS (
            SELECT e.from_step FROM tasker.step_edges e WHERE e.to_step = step
            UNION
            SELECT e.from_step FROM tasker.step_edges e JOIN anc ON e.to_step = anc.step_uuid
        )
        SELECT jsonb_object_agg(a.name, a.results)
        FROM anc JOIN tasker.steps a ON a.step_uuid = anc.step_uuid
        WHERE a.state IN ('complete', 'resolved_manually'));
END
$$;

DROP TRIGGER steps_transition_insert ON tasker.steps;
DROP TRIGGER steps_transition_update ON tasker.steps;
DROP TRIGGER tasks_transition_insert ON tasker.tasks;
DROP TRIGGER tasks_transition_update ON tasker.tasks;
DROP FUNCTION tasker.step_transitions_on_insert();
DROP FUNCTION tasker.step_transitions_on_update();
DROP FUNCTION tasker.task_transitions_on_insert();
DROP FUNCTION tasker.task_transitions_on_update();

-- Which moves are happy (kept in columns) is said once, here; the two
-- triggers below run only for the others. A WHEN clause is evaluated
-- without calling a function: the happy moves cost nothing here.
--
-- Before the row is written: a move that ends a claim kept in columns, and
-- a rescue (whose new claim is a row), clear claimed_at/claimed_by.
CREATE FUNCTION tasker.step_claim_ends() RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    IF (OLD.state = 'in_progress' AND OLD.claimed_at IS NOT NULL) OR (OLD.state = 'in_progress' AND NEW.state = 'in_progress') THEN
        NEW.claimed_at := NULL;
        NEW.claimed_by := NULL;
    END IF;
    RETURN NEW;
END
$$;

-- After the row is written (and its constraints checked): check the move
-- and write its rows.
CREATE FUNCTION tasker.step_moved() RETURNS trigger
    LANGUAGE plpgsql
AS $$
DECLARE
    worker text := coalesce(NEW.lease_owner, OLD.lease_owner, nullif(current_setting('tasker.worker_id', true), ''));
    meta jsonb := tasker.transition_metadata();
    from_state text := OLD.state;
BEGIN
    IF OLD.state = 'waiting_for_retry' AND NEW.state = 'in_progress' THEN
        -- A due retry claimed: two moves. The wait's end is a row; the
        -- claim stays in the columns (claimed_at) like any claim.
        IF NOT EXISTS (SELECT 1 FROM tasker.step_state_transitions t
                       WHERE t.from_state = 'waiting_for_retry' AND t.to_state = 'enqueued')
           OR NOT EXISTS (SELECT 1 FROM tasker.step_state_transitions t
                          WHERE t.from_state = 'enqueued' AND t.to_state = 'in_progress') THEN
            PERFORM tasker.illegal_step_transition(NEW.step_uuid, OLD.state, NEW.state);
        END IF;
        INSERT INTO tasker.step_transitions (step_uuid, task_uuid, from_state, to_state, attempt, worker_id, metadata, created_at)
        VALUES (NEW.step_uuid, NEW.task_uuid, 'waiting_for_retry', 'enqueued', OLD.attempts, worker,
                jsonb_build_object('due_at', OLD.run_at) || coalesce(meta, '{}'), NEW.updated_at);
        IF NEW.claimed_at IS NULL THEN
            INSERT INTO tasker.step_transitions (step_uuid, task_uuid, from_state, to_state, attempt, worker_id, metadata, created_at)
            VALUES (NEW.step_uuid, NEW.task_uuid, 'enqueued', 'in_progress', NEW.attempts, worker, meta, NEW.updated_at);
        END IF;
        RETURN NULL;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM tasker.step_state_transitions t
                   WHERE t.from_state = OLD.state AND t.to_state = NEW.state) THEN
        PERFORM tasker.illegal_step_transition(NEW.step_uuid, OLD.state, NEW.state);
    END IF;
    -- The claim this move ends was only in columns: write it as a row first.
    IF OLD.state = 'in_progress' AND OLD.claimed_at IS NOT NULL THEN
        INSERT INTO tasker.step_transitions (step_uuid, task_uuid, from_state, to_state, attempt, worker_id, created_at)
        VALUES (OLD.step_uuid, OLD.task_uuid, 'enqueued', 'in_progress', OLD.attempts, OLD.claimed_by, OLD.claimed_at);
    END IF;
    IF OLD.state = 'in_progress' AND NEW.state = 'in_progress' THEN
        meta := jsonb_build_object('lease_rescued_from', OLD.lease_owner) || coalesce(meta, '{}');
    ELSIF NEW.state IN ('waiting_for_retry', 'error') AND NEW.last_error IS NOT NULL THEN
        meta := jsonb_build_object('error', NEW.last_error) || coalesce(meta, '{}');
    END IF;
    INSERT INTO tasker.step_transitions (step_uuid, task_uuid, from_state, to_state, attempt, worker_id, metadata, created_at)
    VALUES (NEW.step_uuid, NEW.task_uuid, OLD.state, NEW.state, NEW.attempts, worker, meta, NEW.updated_at);
    RETURN NULL;
END
$$;

CREATE TRIGGER steps_claim_ends BEFORE UPDATE ON tasker.steps
FOR EACH ROW
WHEN (OLD.state = 'in_progress' AND (OLD.claimed_at IS NOT NULL OR NEW.state = 'in_progress')
      AND NOT (NEW.state = 'complete' AND OLD.claimed_at IS NOT NULL)
      AND (NEW.state IS DISTINCT FROM OLD.state OR NEW.attempts > OLD.attempts))
EXECUTE FUNCTION tasker.step_claim_ends();

CREATE TRIGGER steps_moved AFTER UPDATE ON tasker.steps
FOR EACH ROW
WHEN ((OLD.state IS DISTINCT FROM NEW.state OR NEW.attempts > OLD.attempts)
      AND NOT (OLD.state = 'pending' AND NEW.state = 'enqueued' AND NEW.enqueued_at IS DISTINCT FROM OLD.enqueued_at)
      AND NOT (OLD.state = 'enqueued' AND NEW.state = 'in_progress' AND NEW.claimed_at IS NOT NULL)
      AND NOT (OLD.state = 'in_progress' AND NEW.state = 'complete' AND OLD.claimed_at IS NOT NULL))
EXECUTE FUNCTION tasker.step_moved();

CREATE FUNCTION tasker.task_moved() RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM tasker.task_state_transitions t
                   WHERE t.from_state = OLD.state AND t.to_state = NEW.state) THEN
        PERFORM tasker.illegal_task_transition(NEW.task_uuid, OLD.state, NEW.state);
    END IF;
    INSERT INTO tasker.task_transitions (task_uuid, from_state, to_state, worker_id, metadata, created_at)
    VALUES (NEW.task_uuid, OLD.state, NEW.state, nullif(current_setting('tasker.worker_id', true), ''),
            tasker.transition_metadata(), NEW.updated_at);
    RETURN NULL;
END
$$;

CREATE TRIGGER tasks_moved AFTER UPDATE ON tasker.tasks
FOR EACH ROW
WHEN (OLD.state IS DISTINCT FROM NEW.state
      AND NOT (OLD.state = 'steps_in_process' AND NEW.state = 'complete' AND OLD.created_state IS NOT NULL))
EXECUTE FUNCTION tasker.task_moved();

-- Creation: a row is created in a state a history can start with, and says
-- so in created_state (its creation move). Checked before the row's own
-- constraints, with the error the transition checks give.
CREATE FUNCTION tasker.illegal_creation() RETURNS trigger
    LANGUAGE plpgsql
AS $$
BEGIN
    IF TG_TABLE_NAME = 'steps' THEN
        RAISE EXCEPTION 'illegal step transition: step % cannot be created in state % (created_state %)',
            NEW.step_uuid, NEW.state, coalesce(NEW.created_state, 'NULL')
            USING ERRCODE = 'check_violation', CONSTRAINT = 'step_state_transition';
    END IF;
    RAISE EXCEPTION 'illegal task transition: task % cannot be created in state % (created_state %)',
        NEW.task_uuid, NEW.state, coalesce(NEW.created_state, 'NULL')
        USING ERRCODE = 'check_violation', CONSTRAINT = 'task_state_transition';
END
$$;

CREATE TRIGGER steps_created BEFORE INSERT ON tasker.steps
FOR EACH ROW
WHEN (NEW.created_state IS DISTINCT FROM NEW.state OR NEW.state NOT IN ('pending', 'enqueued'))
EXECUTE FUNCTION tasker.illegal_creation();

CREATE TRIGGER tasks_created BEFORE INSERT ON tasker.tasks
FOR EACH ROW
WHEN (NEW.created_state IS DISTINCT FROM NEW.state OR NEW.state NOT IN ('pending', 'steps_in_process'))
EXECUTE FUNCTION tasker.illegal_creation();

-- The whole history, rows and column moves together, in SQL: what the API
-- shows, for operators and tests. Order each step's (or task's) moves by
-- seq, then id.
CREATE VIEW tasker.step_history AS
SELECT s.step_uuid, s.task_uuid, 0 AS seq, NULL::bigint AS id, NULL::text AS from_state, s.created_state AS to_state,
       0 AS attempt, NULL::text AS worker_id, NULL::jsonb AS metadata, s.created_at
FROM tasker.steps s WHERE s.created_state IS NOT NULL
UNION ALL
-- Ready before any row, except for a step created before migration 0011.
SELECT s.step_uuid, s.task_uuid, CASE WHEN s.created_state IS NULL THEN 3 ELSE 1 END, NULL, 'pending', 'enqueued',
       0, NULL, NULL, s.enqueued_at
FROM tasker.steps s WHERE s.enqueued_at IS NOT NULL
UNION ALL
SELECT r.step_uuid, r.task_uuid, 2, r.id, r.from_state, r.to_state, r.attempt, r.worker_id, r.metadata, r.created_at
FROM tasker.step_transitions r
UNION ALL
SELECT s.step_uuid, s.task_uuid, 4, NULL, 'enqueued', 'in_progress', s.attempts, s.claimed_by, NULL, s.claimed_at
FROM tasker.steps s WHERE s.claimed_at IS NOT NULL
UNION ALL
SELECT s.step_uuid, s.task_uuid, 5, NULL, 'in_progress', 'complete', s.attempts, s.claimed_by, NULL, s.completed_at
FROM tasker.steps s WHERE s.claimed_at IS NOT NULL AND s.state = 'complete';

CREATE VIEW tasker.task_history AS
SELECT t.task_uuid, 0 AS seq, NULL::bigint AS id, NULL::text AS from_state, 'pending'::text AS to_state,
       NULL::text AS worker_id, NULL::jsonb AS metadata, t.created_at
FROM tasker.tasks t WHERE t.created_state IS NOT NULL
UNION ALL
SELECT t.task_uuid, 1, NULL, 'pending', 'steps_in_process', NULL, NULL, t.created_at
FROM tasker.tasks t WHERE t.created_state = 'steps_in_process'
UNION ALL
SELECT r.task_uuid, 2, r.id, r.from_state, r.to_state, r.worker_id, r.metadata, r.created_at
FROM tasker.task_transitions r
UNION ALL
-- The completion, unless a row has it (one from blocked_by_failures).
SELECT t.task_uuid, 3, NULL,
       coalesce((SELECT r.to_state FROM tasker.task_transitions r WHERE r.task_uuid = t.task_uuid ORDER BY r.id DESC LIMIT 1),
                'steps_in_process'),
       'complete', NULL, NULL, t.completed_at
FROM tasker.tasks t
WHERE t.created_state IS NOT NULL AND t.state = 'complete' AND t.completed_at IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM tasker.task_transitions r WHERE r.task_uuid = t.task_uuid AND r.to_state = 'complete');
