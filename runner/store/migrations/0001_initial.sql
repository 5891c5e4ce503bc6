-- The initial schema (README, Architecture). Every object lives in schema tasker (created by
-- the migrator before this file runs, together with tasker.schema_migrations).

-- A namespace name is at most 56 characters so that its LISTEN channel,
-- 'tasker_' || name, fits PostgreSQL's 63-byte identifier limit.
CREATE TABLE tasker.namespaces (
    name       text        PRIMARY KEY
        CONSTRAINT namespaces_name_format CHECK (name ~ '^[a-z0-9_][a-z0-9_.-]{0,55}$'),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE tasker.templates (
    template_id bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    namespace   text        NOT NULL REFERENCES tasker.namespaces (name),
    name        text        NOT NULL CHECK (length(name) BETWEEN 1 AND 128),
    version     text        NOT NULL CHECK (length(version) BETWEEN 1 AND 64),
    description text        NOT NULL DEFAULT '',
    definition  jsonb       NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT templates_identity UNIQUE (namespace, name, version)
);

CREATE TABLE tasker.tasks (
    task_uuid             uuid        PRIMARY KEY,
    template_id           bigint      NOT NULL REFERENCES tasker.templates (template_id),
    -- Denormalised from the template so lists and filters need no join.
    namespace             text        NOT NULL,
    template_name         text        NOT NULL,
    template_version      text        NOT NULL,
    context               jsonb       NOT NULL DEFAULT '{}',
    state                 text        NOT NULL DEFAULT 'pending'
        CONSTRAINT tasks_state_valid CHECK (state IN (
            'pending', 'steps_in_process', 'complete', 'blocked_by_failures',
            'cancelled', 'resolved_manually')),
    priority              integer     NOT NULL DEFAULT 0,
    correlation_id        uuid        NOT NULL,
    parent_correlation_id uuid,
    idempotency_key       text        CHECK (length(idempotency_key) BETWEEN 1 AND 255),
    initiator             text        NOT NULL DEFAULT '',
    source_system         text        NOT NULL DEFAULT '',
    reason                text        NOT NULL DEFAULT '',
    tags                  text[]      NOT NULL DEFAULT '{}',
    steps_total           integer     NOT NULL DEFAULT 0 CHECK (steps_total >= 0),
    steps_done            integer     NOT NULL DEFAULT 0 CHECK (steps_done >= 0),
    created_at            timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now(),
    completed_at          timestamptz,
    CONSTRAINT tasks_steps_done_le_total CHECK (steps_done <= steps_total)
);

CREATE UNIQUE INDEX tasks_idempotency_key ON tasker.tasks (idempotency_key)
    WHERE idempotency_key IS NOT NULL;
-- Listing: newest first per state / namespace, with the uuid (v7, time-ordered) as the cursor.
CREATE INDEX tasks_namespace_state ON tasker.tasks (namespace, state, task_uuid DESC);
CREATE INDEX tasks_state ON tasker.tasks (state, task_uuid DESC);
CREATE INDEX tasks_correlation_id ON tasker.tasks (correlation_id);

CREATE TABLE tasker.steps (
    step_uuid          uuid        PRIMARY KEY,
    task_uuid          uuid        NOT NULL REFERENCES tasker.tasks (task_uuid) ON DELETE CASCADE,
    -- Denormalised from the task: the claim query filters and orders on them.
    namespace          text        NOT NULL,
    priority           integer     NOT NULL DEFAULT 0,
    name               text        NOT NULL,
    template_step_name text        NOT NULL,
    handler            text        NOT NULL,
    type               text        NOT NULL DEFAULT 'standard'
        CONSTRAINT steps_type_valid CHECK (type IN (
            'standard', 'decision', 'deferred_convergence', 'batchable', 'batch_worker')),
    state              text        NOT NULL DEFAULT 'pending'
        CONSTRAINT steps_state_valid CHECK (state IN (
            'pending', 'enqueued', 'in_progress', 'complete', 'waiting_for_retry',
            'error', 'cancelled', 'resolved_manually')),
    pending_parents    integer     NOT NULL DEFAULT 0 CHECK (pending_parents >= 0),
    ancestors          uuid[]      NOT NULL DEFAULT '{}',
    attempts           integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    max_attempts       integer     NOT NULL DEFAULT 3 CHECK (max_attempts >= 1),
    retryable          boolean     NOT NULL DEFAULT true,
    -- The template's retry block (backoff kind, base, cap) so retries need no template lookup.
    retry_policy       jsonb       NOT NULL DEFAULT '{}',
    timeout_ms         integer     CHECK (timeout_ms > 0),
    run_at             timestamptz NOT NULL DEFAULT now(),
    lease_owner        text,
    lease_expires_at   timestamptz,
    inputs             jsonb       NOT NULL DEFAULT '{}',
    results            jsonb,
    checkpoint         jsonb,
    checkpoint_history jsonb       NOT NULL DEFAULT '[]',
    last_error         jsonb,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    last_attempted_at  timestamptz,
    completed_at       timestamptz,
    CONSTRAINT steps_name_unique UNIQUE (task_uuid, name),
    -- A leased step always knows its owner and expiry; nothing else holds a lease.
    CONSTRAINT steps_lease_consistent CHECK (
        (state = 'in_progress') = (lease_owner IS NOT NULL AND lease_expires_at IS NOT NULL))
);

-- The claim query: ready steps of the served namespaces in priority, then run_at order.
-- waiting_for_retry steps become claimable when run_at passes, so they share the index.
CREATE INDEX steps_claimable ON tasker.steps (namespace, priority DESC, run_at)
    WHERE state IN ('enqueued', 'waiting_for_retry');
-- Lease rescue: in-flight steps by expiry.
CREATE INDEX steps_lease_expiry ON tasker.steps (lease_expires_at)
    WHERE state = 'in_progress';
CREATE INDEX steps_task ON tasker.steps (task_uuid);
-- The dead-letter set.
CREATE INDEX steps_errored ON tasker.steps (namespace, updated_at DESC)
    WHERE state = 'error';

CREATE TABLE tasker.step_edges (
    task_uuid uuid NOT NULL REFERENCES tasker.tasks (task_uuid) ON DELETE CASCADE,
    from_step uuid NOT NULL REFERENCES tasker.steps (step_uuid) ON DELETE CASCADE,
    to_step   uuid NOT NULL REFERENCES tasker.steps (step_uuid) ON DELETE CASCADE,
    PRIMARY KEY (from_step, to_step),
    CONSTRAINT step_edges_no_self_loop CHECK (from_step <> to_step)
);
CREATE INDEX step_edges_to_step ON tasker.step_edges (to_step);

CREATE TABLE tasker.step_transitions (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    step_uuid  uuid        NOT NULL REFERENCES tasker.steps (step_uuid) ON DELETE CASCADE,
    task_uuid  uuid        NOT NULL,
    from_state text
        CONSTRAINT step_transitions_from_valid CHECK (from_state IN (
            'pending', 'enqueued', 'in_progress', 'complete', 'waiting_for_retry',
            'error', 'cancelled', 'resolved_manually')),
    to_state   text        NOT NULL
        CONSTRAINT step_transitions_to_valid CHECK (to_state IN (
            'pending', 'enqueued', 'in_progress', 'complete', 'waiting_for_retry',
            'error', 'cancelled', 'resolved_manually')),
    attempt    integer     NOT NULL DEFAULT 0,
    worker_id  text,
    metadata   jsonb,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX step_transitions_step ON tasker.step_transitions (step_uuid, id);

CREATE TABLE tasker.task_transitions (
    id         bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    task_uuid  uuid        NOT NULL REFERENCES tasker.tasks (task_uuid) ON DELETE CASCADE,
    from_state text
        CONSTRAINT task_transitions_from_valid CHECK (from_state IN (
            'pending', 'steps_in_process', 'complete', 'blocked_by_failures',
            'cancelled', 'resolved_manually')),
    to_state   text        NOT NULL
        CONSTRAINT task_transitions_to_valid CHECK (to_state IN (
            'pending', 'steps_in_process', 'complete', 'blocked_by_failures',
            'cancelled', 'resolved_manually')),
    worker_id  text,
    metadata   jsonb,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX task_transitions_task ON tasker.task_transitions (task_uuid, id);

CREATE TABLE tasker.handler_endpoints (
    endpoint_id                  bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- '' means every namespace; a namespace default is the pattern '*' within a namespace.
    namespace                    text        NOT NULL DEFAULT '',
    pattern                      text        NOT NULL CHECK (length(pattern) BETWEEN 1 AND 255),
    url                          text        NOT NULL DEFAULT '' CHECK (length(url) <= 2048),
    protocol                     text        NOT NULL DEFAULT 'http'
        CONSTRAINT handler_endpoints_protocol_valid CHECK (protocol IN ('http', 'connect', 'grpc', 'go')),
    timeout_ms                   integer     NOT NULL DEFAULT 0 CHECK (timeout_ms >= 0),
    max_concurrency              integer     NOT NULL DEFAULT 0 CHECK (max_concurrency >= 0),
    batch_max                    integer     NOT NULL DEFAULT 1 CHECK (batch_max >= 1),
    batch_window_ms              integer     NOT NULL DEFAULT 2 CHECK (batch_window_ms >= 0),
    breaker_max_requests         integer     NOT NULL DEFAULT 0 CHECK (breaker_max_requests >= 0),
    breaker_interval_ms          integer     NOT NULL DEFAULT 0 CHECK (breaker_interval_ms >= 0),
    breaker_open_timeout_ms      integer     NOT NULL DEFAULT 0 CHECK (breaker_open_timeout_ms >= 0),
    breaker_consecutive_failures integer     NOT NULL DEFAULT 0 CHECK (breaker_consecutive_failures >= 0),
    headers                      jsonb       NOT NULL DEFAULT '{}',
    -- A reference (env var name or file) to the signing secret, never the secret itself.
    secret_ref                   text        NOT NULL DEFAULT '',
    created_at                   timestamptz NOT NULL DEFAULT now(),
    updated_at                   timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT handler_endpoints_identity UNIQUE (namespace, pattern)
);

CREATE TABLE tasker.workers (
    worker_id    text        PRIMARY KEY,
    hostname     text        NOT NULL,
    version      text        NOT NULL,
    namespaces   text[]      NOT NULL DEFAULT '{}',
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now(),
    stopped_at   timestamptz
);
