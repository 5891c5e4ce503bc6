package store

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
)

// NewTask is one task to create with all of its initial steps.
type NewTask struct {
	TaskUUID            uuid.UUID
	TemplateID          int64
	Namespace           string
	TemplateName        string
	TemplateVersion     string
	Context             []byte // JSON object
	Priority            int
	CorrelationID       uuid.UUID
	ParentCorrelationID uuid.NullUUID
	// IdempotencyKey, when set, makes a repeated submission return the task
	// created first instead of creating another.
	IdempotencyKey string
	Initiator      string
	SourceSystem   string
	Reason         string
	Tags           []string
	Steps          []NewStep
}

// NewStep is one step of a [NewTask]. Parents index into the task's Steps;
// a step without parents is created ready (enqueued). Ancestors are not
// stored: a claim finds them through the edges.
type NewStep struct {
	StepUUID         uuid.UUID
	Name             string
	TemplateStepName string
	Handler          string
	Type             string
	Parents          []int
	MaxAttempts      int
	Retryable        bool
	RetryPolicy      []byte // JSON; the template's retry block
	TimeoutMs        int    // 0 = no step timeout (the callout default applies)
	Inputs           []byte // JSON object or nil
}

// CreatedTask reports the outcome of one [NewTask].
type CreatedTask struct {
	TaskUUID uuid.UUID
	// Created is false when an earlier task with the same idempotency key
	// was returned instead.
	Created bool
}

// CreateTasks creates tasks, their steps, edges and first transitions in one
// transaction, and notifies each namespace that has ready steps when it
// commits. Results are in the order of tasks. The work is set-based: a batch
// of any size costs a fixed number of statements.
func CreateTasks(ctx context.Context, db DB, now time.Time, tasks []NewTask) ([]CreatedTask, error) {
	if len(tasks) == 0 {
		return nil, nil
	}
	var (
		tr taskRows
		sr stepRows
	)
	for ti, t := range tasks {
		if err := tr.add(ti, t, &sr); err != nil {
			return nil, err
		}
	}

	// One round trip: the statements are pipelined and run in one
	// transaction (implicit, or db's). Steps and edges only touch the tasks
	// this batch inserted: a task whose idempotency key already existed was
	// skipped by ON CONFLICT, and its fresh uuid names no row.
	//
	// Its steps are enqueued in the same transaction, so a task is in
	// process from the start (Tasker: pending -> steps_in_process once its
	// steps are enqueued); it is inserted so, with created_state saying so:
	// its history shows both moves at created_at (migration 0011). The namespaces of the inserted tasks are
	// notified at commit.
	var b pgx.Batch
	tr.queue(&b, now)
	sr.queue(&b, now)

	var inserted []uuid.UUID
	if err := sendBatch(ctx, db, &b, "creating tasks", func(br pgx.BatchResults) (err error) {
		inserted, err = createTasksResults(br, &sr)
		return err
	}); err != nil {
		return nil, err
	}
	return createdTasks(ctx, db, tasks, inserted)
}

// taskRows are the columns of the tasks of one [CreateTasks] call, sent as
// arrays and unnested.
type taskRows struct {
	// [16]byte, not uuid.UUID: pgx encodes a uuid.UUID through its
	// driver.Valuer (text), trying and failing a binary plan for each.
	uuid, corr                                        [][16]byte
	parent                                            []pgtype.UUID
	template                                          []int64
	ns, name, version, key, initiator, source, reason []string
	ctx                                               [][]byte
	prio, total                                       []int32
	tags                                              []string // JSON arrays; pgx cannot send text[][]
}

// add checks the ti-th task t and appends it to r, and its steps and edges
// to sr.
func (r *taskRows) add(ti int, t NewTask, sr *stepRows) error {
	if len(t.Steps) == 0 {
		return fmt.Errorf("store: task %d (%s): a task needs at least one step", ti, t.TaskUUID)
	}
	if t.Priority < math.MinInt32 || t.Priority > math.MaxInt32 {
		return fmt.Errorf("store: task %d (%s): priority %d is out of range (%d to %d)", ti, t.TaskUUID, t.Priority, math.MinInt32, math.MaxInt32)
	}
	for si, s := range t.Steps {
		for _, p := range s.Parents {
			if p < 0 || p >= len(t.Steps) || p == si {
				return fmt.Errorf("store: task %s step %d: parent index %d out of range", t.TaskUUID, si, p)
			}
		}
	}
	r.uuid = append(r.uuid, t.TaskUUID)
	r.corr = append(r.corr, t.CorrelationID)
	r.parent = append(r.parent, pgtype.UUID{Bytes: t.ParentCorrelationID.UUID, Valid: t.ParentCorrelationID.Valid})
	r.template = append(r.template, t.TemplateID)
	r.ns = append(r.ns, t.Namespace)
	r.name = append(r.name, t.TemplateName)
	r.version = append(r.version, t.TemplateVersion)
	r.key = append(r.key, t.IdempotencyKey)
	r.initiator = append(r.initiator, t.Initiator)
	r.source = append(r.source, t.SourceSystem)
	r.reason = append(r.reason, t.Reason)
	r.ctx = append(r.ctx, orJSON(t.Context, "{}"))
	r.prio = append(r.prio, int32(t.Priority))
	r.total = append(r.total, int32(len(t.Steps)))
	r.tags = append(r.tags, jsonStrings(t.Tags))
	for _, s := range t.Steps {
		for _, p := range s.Parents {
			sr.edge(t.TaskUUID, t.Steps[p].StepUUID, s.StepUUID)
		}
		sr.step(t.TaskUUID, t.Namespace, t.Priority, s, len(s.Parents), len(s.Parents))
	}
	return nil
}

// queue queues the insert of r's tasks, which notifies their namespaces
// and returns the uuids of the tasks it inserted.
func (r *taskRows) queue(b *pgx.Batch, now time.Time) {
	b.Queue(`
		WITH ins AS (
			INSERT INTO tasker.tasks (task_uuid, template_id, namespace, template_name, template_version, context,
			                          priority, correlation_id, parent_correlation_id, idempotency_key,
			                          initiator, source_system, reason, tags, steps_total, state, created_state, created_at, updated_at)
			SELECT u, tpl, ns, name, ver, ctx, prio, corr, parent, nullif(key, ''), ini, src, rsn,
			       ARRAY(SELECT jsonb_array_elements_text(tags)), total, 'steps_in_process', 'steps_in_process', $16, $16
			FROM unnest($1::uuid[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::jsonb[], $7::int[],
			            $8::uuid[], $9::uuid[], $10::text[], $11::text[], $12::text[], $13::text[], $14::jsonb[], $15::int[])
			     AS t(u, tpl, ns, name, ver, ctx, prio, corr, parent, key, ini, src, rsn, tags, total)
			ON CONFLICT (idempotency_key) WHERE idempotency_key IS NOT NULL DO NOTHING
			RETURNING task_uuid, namespace
		),
		notified AS (
			SELECT count(pg_notify($17 || namespace, '')) AS n FROM (SELECT DISTINCT namespace FROM ins) x
		)
		SELECT ins.task_uuid FROM ins, notified`,
		r.uuid, r.template, r.ns, r.name, r.version, r.ctx, r.prio, r.corr, r.parent, r.key, r.initiator, r.source, r.reason, r.tags, r.total, now,
		ChannelPrefix)
}

// createdTasks are the results of [CreateTasks], in the order of tasks,
// given the uuids of the tasks it inserted: a task not inserted because its
// idempotency key was taken answers the task holding the key.
func createdTasks(ctx context.Context, db DB, tasks []NewTask, inserted []uuid.UUID) ([]CreatedTask, error) {
	out := make([]CreatedTask, len(tasks))
	created := make(map[uuid.UUID]bool, len(inserted))
	for _, u := range inserted {
		created[u] = true
	}
	var dupKeys []string
	for i, t := range tasks {
		out[i] = CreatedTask{TaskUUID: t.TaskUUID, Created: created[t.TaskUUID]}
		if !out[i].Created {
			if t.IdempotencyKey == "" {
				return nil, fmt.Errorf("store: task %s was not created", t.TaskUUID)
			}
			dupKeys = append(dupKeys, t.IdempotencyKey)
		}
	}
	if len(dupKeys) == 0 {
		return out, nil
	}
	// Committed: the tasks that hold the keys now (ours, if two requests in
	// the batch shared a key, or someone else's).
	existing := map[string]uuid.UUID{}
	rows, err := db.Query(ctx, `SELECT idempotency_key, task_uuid FROM tasker.tasks WHERE idempotency_key = ANY($1)`, dupKeys)
	if err != nil {
		return nil, fmt.Errorf("store: resolving idempotency keys: %w", err)
	}
	var k string
	var u uuid.UUID
	if _, err := pgx.ForEachRow(rows, []any{&k, &u}, func() error { existing[k] = u; return nil }); err != nil {
		return nil, fmt.Errorf("store: resolving idempotency keys: %w", err)
	}
	for i := range out {
		if !out[i].Created {
			u, ok := existing[tasks[i].IdempotencyKey]
			if !ok {
				return nil, fmt.Errorf("store: idempotency key %q conflicted but no task holds it", tasks[i].IdempotencyKey)
			}
			out[i].TaskUUID = u
		}
	}
	return out, nil
}

// createTasksResults reads the outcomes of CreateTasks's batch: the uuids
// of the tasks inserted, then the steps and edges.
func createTasksResults(br pgx.BatchResults, sr *stepRows) ([]uuid.UUID, error) {
	rows, err := br.Query()
	if err != nil {
		return nil, fmt.Errorf("store: creating tasks: %w", templateGone(err))
	}
	inserted, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	if err != nil {
		return nil, fmt.Errorf("store: creating tasks: %w", templateGone(err))
	}
	if err := sr.results(br); err != nil {
		return nil, err
	}
	return inserted, nil
}

// stepRows collects steps and edges column by column for one set-based
// insert (pgx sends each column as one array).
type stepRows struct {
	sUUID, sTask                    [][16]byte // see CreateTasks
	sNS, sName, sTplName, sHandler  []string
	sType, sState                   []string
	sPrio, sPending, sMax, sTimeout []int32
	sParents                        []int32
	sRetryable                      []bool
	sPolicy, sInputs                [][]byte
	eTask, eFrom, eTo               [][16]byte
}

// step adds a step with its count of direct parents; with pending parents
// it starts pending, else enqueued.
func (r *stepRows) step(task uuid.UUID, ns string, priority int, s NewStep, parents, pending int) {
	state := "enqueued"
	if pending > 0 {
		state = "pending"
	}
	r.sUUID = append(r.sUUID, s.StepUUID)
	r.sTask = append(r.sTask, task)
	r.sNS = append(r.sNS, ns)
	r.sPrio = append(r.sPrio, int32(priority))
	r.sName = append(r.sName, s.Name)
	r.sTplName = append(r.sTplName, s.TemplateStepName)
	r.sHandler = append(r.sHandler, s.Handler)
	r.sType = append(r.sType, cmp.Or(s.Type, "standard"))
	r.sState = append(r.sState, state)
	r.sPending = append(r.sPending, int32(pending))
	r.sParents = append(r.sParents, int32(parents))
	r.sMax = append(r.sMax, int32(max(s.MaxAttempts, 1)))
	r.sRetryable = append(r.sRetryable, s.Retryable)
	r.sPolicy = append(r.sPolicy, orJSON(s.RetryPolicy, "{}"))
	r.sTimeout = append(r.sTimeout, int32(s.TimeoutMs))
	r.sInputs = append(r.sInputs, orJSON(s.Inputs, "{}"))
}

func (r *stepRows) edge(task, from, to uuid.UUID) {
	r.eTask = append(r.eTask, task)
	r.eFrom = append(r.eFrom, from)
	r.eTo = append(r.eTo, to)
}

// queue adds the statements inserting the steps and edges to b. Rows of
// tasks that do not exist (their submit was skipped for an existing
// idempotency key, earlier in the batch) are left out.
//
// The inserts run with generic plans (see [forceGenericPlansSQL]).
func (r *stepRows) queue(b *pgx.Batch, now time.Time) {
	b.Queue(forceGenericPlansSQL)
	b.Queue(`
		INSERT INTO tasker.steps (step_uuid, task_uuid, namespace, priority, name, template_step_name, handler, type,
		                          state, created_state, pending_parents, parents, max_attempts, retryable, retry_policy,
		                          timeout_ms, inputs, run_at, created_at, updated_at)
		SELECT u, task, ns, prio, name, tname, handler, type, state, state, pending, parents, maxa, retryable, policy,
		       nullif(timeout, 0), inputs, $17, $17, $17
		FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::int[], $5::text[], $6::text[], $7::text[], $8::text[],
		            $9::text[], $10::int[], $11::int[], $12::int[], $13::bool[], $14::jsonb[], $15::int[], $16::jsonb[])
		     AS s(u, task, ns, prio, name, tname, handler, type, state, pending, parents, maxa, retryable, policy, timeout, inputs)
		WHERE EXISTS (SELECT 1 FROM tasker.tasks t WHERE t.task_uuid = s.task)`,
		r.sUUID, r.sTask, r.sNS, r.sPrio, r.sName, r.sTplName, r.sHandler, r.sType, r.sState, r.sPending, r.sParents,
		r.sMax, r.sRetryable, r.sPolicy, r.sTimeout, r.sInputs, now)
	if len(r.eFrom) > 0 {
		b.Queue(`
			INSERT INTO tasker.step_edges (task_uuid, from_step, to_step)
			SELECT task, f, t FROM unnest($1::uuid[], $2::uuid[], $3::uuid[]) AS e(task, f, t)
			WHERE EXISTS (SELECT 1 FROM tasker.tasks x WHERE x.task_uuid = e.task)`, r.eTask, r.eFrom, r.eTo)
	}
	b.Queue(restorePlanCacheModeSQL)
}

// results reads the outcomes of what queue added.
func (r *stepRows) results(br pgx.BatchResults) error {
	if _, err := br.Exec(); err != nil {
		return fmt.Errorf("store: creating steps: choosing generic plans: %w", err)
	}
	if _, err := br.Exec(); err != nil {
		return fmt.Errorf("store: creating steps: %w", err)
	}
	if len(r.eFrom) > 0 {
		if _, err := br.Exec(); err != nil {
			return fmt.Errorf("store: creating step edges: %w", err)
		}
	}
	if _, err := br.Exec(); err != nil {
		return fmt.Errorf("store: creating steps: restoring plan_cache_mode: %w", err)
	}
	return nil
}

// sendBatch sends b in one round trip (one implicit transaction outside a
// transaction, or part of db's), lets read consume the results in order,
// and closes the batch; what names the work in an error of the close.
func sendBatch(ctx context.Context, db DB, b *pgx.Batch, what string, read func(pgx.BatchResults) error) error {
	br := db.SendBatch(ctx, b)
	err := read(br)
	if cerr := br.Close(); err == nil && cerr != nil {
		err = fmt.Errorf("store: %s: %w", what, cerr)
	}
	return err
}

// ErrTemplateDeleted is returned (wrapped) by [CreateTasks] for a task of
// a template that was deleted (see [DeleteTemplate]). It matches
// [ErrNotFound] too.
var ErrTemplateDeleted = fmt.Errorf("the template was deleted: %w", ErrNotFound)

// templateGone turns the foreign key violation of a task whose template
// no longer exists into [ErrTemplateDeleted].
func templateGone(err error) error {
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "23503" && pe.ConstraintName == "tasks_template_id_fkey" {
		return ErrTemplateDeleted
	}
	return err
}

func orJSON(b []byte, def string) []byte {
	if len(b) == 0 {
		return []byte(def)
	}
	return b
}

func joinComma(s []string) string { return strings.Join(s, ",") }

func jsonStrings(s []string) string {
	if len(s) == 0 {
		return "[]"
	}
	b, _ := json.Marshal(s) // strings always marshal
	return string(b)
}
