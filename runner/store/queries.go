package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/tasker-runner/tasker-runner/contracts"
)

// The read queries of the management API. Filters are added to the SQL only
// when set (always as parameters), so each combination gets a plan that can
// use the matching index instead of one generic plan full of "$1 IS NULL OR".

// Task is a row of tasker.tasks as the management API shows it.
type Task struct {
	TaskUUID            uuid.UUID
	TemplateID          int64
	Namespace           string
	TemplateName        string
	TemplateVersion     string
	Context             []byte
	State               contracts.TaskState
	Priority            int
	CorrelationID       uuid.UUID
	ParentCorrelationID uuid.NullUUID
	IdempotencyKey      string
	Initiator           string
	SourceSystem        string
	Reason              string
	Tags                []string
	StepsTotal          int
	StepsDone           int
	CreatedAt           time.Time
	UpdatedAt           time.Time
	CompletedAt         *time.Time
}

const taskColumns = `t.task_uuid, t.template_id, t.namespace, t.template_name, t.template_version, t.context, t.state,
	t.priority, t.correlation_id, t.parent_correlation_id, coalesce(t.idempotency_key, ''), t.initiator, t.source_system,
	t.reason, t.tags, t.steps_total, t.steps_done, t.created_at, t.updated_at, t.completed_at`

func scanTask(row pgx.Row) (Task, error) {
	var t Task
	err := row.Scan(&t.TaskUUID, &t.TemplateID, &t.Namespace, &t.TemplateName, &t.TemplateVersion, &t.Context, &t.State,
		&t.Priority, &t.CorrelationID, &t.ParentCorrelationID, &t.IdempotencyKey, &t.Initiator, &t.SourceSystem,
		&t.Reason, &t.Tags, &t.StepsTotal, &t.StepsDone, &t.CreatedAt, &t.UpdatedAt, &t.CompletedAt)
	return t, err
}

// Step is a row of tasker.steps as the management API shows it.
type Step struct {
	StepUUID         uuid.UUID
	TaskUUID         uuid.UUID
	Namespace        string
	Name             string
	TemplateStepName string
	Handler          string
	Type             string
	State            contracts.StepState
	// DependsOn names the step's parents, sorted.
	DependsOn      []string
	PendingParents int
	Attempts       int
	MaxAttempts    int
	// Yields counts the times the step yielded (saved a checkpoint and ran
	// again without using an attempt); a redrive resets it.
	Yields         int
	Retryable      bool
	TimeoutMs      int
	RunAt          time.Time
	LeaseOwner     string
	LeaseExpiresAt *time.Time
	Inputs         []byte
	Results        []byte
	Checkpoint     []byte
	LastError      []byte
	CreatedAt      time.Time
	UpdatedAt      time.Time
	// LastAttemptedAt is when the latest attempt was claimed.
	LastAttemptedAt *time.Time
	CompletedAt     *time.Time
}

const stepColumns = `s.step_uuid, s.task_uuid, s.namespace, s.name, s.template_step_name, s.handler, s.type, s.state,
	ARRAY(SELECT p.name FROM tasker.step_edges e JOIN tasker.steps p ON p.step_uuid = e.from_step
	      WHERE e.to_step = s.step_uuid ORDER BY p.name) AS depends_on,
	s.pending_parents, s.attempts, s.max_attempts, s.yields, s.retryable, coalesce(s.timeout_ms, 0), s.run_at,
	coalesce(s.lease_owner, ''), s.lease_expires_at, s.inputs, s.results, s.checkpoint, s.last_error,
	s.created_at, s.updated_at, s.last_attempted_at, s.completed_at`

func scanStep(row pgx.Row, extra ...any) (Step, error) {
	var s Step
	dest := []any{&s.StepUUID, &s.TaskUUID, &s.Namespace, &s.Name, &s.TemplateStepName, &s.Handler, &s.Type, &s.State,
		&s.DependsOn, &s.PendingParents, &s.Attempts, &s.MaxAttempts, &s.Yields, &s.Retryable, &s.TimeoutMs, &s.RunAt,
		&s.LeaseOwner, &s.LeaseExpiresAt, &s.Inputs, &s.Results, &s.Checkpoint, &s.LastError,
		&s.CreatedAt, &s.UpdatedAt, &s.LastAttemptedAt, &s.CompletedAt}
	err := row.Scan(append(dest, extra...)...)
	return s, err
}

// Transition is one audit row of a task or a step.
type Transition struct {
	ID int64
	// StepUUID is set for step transitions, unset for the task's own.
	StepUUID uuid.NullUUID
	// FromState is "" for the row written when the task or step was created.
	FromState string
	ToState   string
	// Attempt is the step's attempt count at the change (0 for tasks).
	Attempt   int
	WorkerID  string
	Metadata  []byte
	CreatedAt time.Time
}

// GetTask returns one task, or an error wrapping [ErrNotFound].
func GetTask(ctx context.Context, db DB, id uuid.UUID) (Task, error) {
	t, err := scanTask(db.QueryRow(ctx, `SELECT `+taskColumns+` FROM tasker.tasks t WHERE t.task_uuid = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return t, fmt.Errorf("store: task %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return t, fmt.Errorf("store: reading task %s: %w", id, err)
	}
	return t, nil
}

// ListTaskSteps returns a task's steps in creation order (step uuids are
// version 7, so their order is the order they were made in).
func ListTaskSteps(ctx context.Context, db DB, task uuid.UUID) ([]Step, error) {
	rows, err := db.Query(ctx, `SELECT `+stepColumns+` FROM tasker.steps s WHERE s.task_uuid = $1 ORDER BY s.step_uuid`, task)
	if err != nil {
		return nil, fmt.Errorf("store: listing steps of task %s: %w", task, err)
	}
	steps, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Step, error) { return scanStep(r) })
	if err != nil {
		return nil, fmt.Errorf("store: listing steps of task %s: %w", task, err)
	}
	return steps, nil
}

// GetStep returns one step, or an error wrapping [ErrNotFound].
func GetStep(ctx context.Context, db DB, id uuid.UUID) (Step, error) {
	s, err := scanStep(db.QueryRow(ctx, `SELECT `+stepColumns+` FROM tasker.steps s WHERE s.step_uuid = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return s, fmt.Errorf("store: step %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return s, fmt.Errorf("store: reading step %s: %w", id, err)
	}
	return s, nil
}

// where builds a parameterised WHERE clause.
type where struct {
	conds []string
	args  []any
}

// add appends a condition; each "?" in cond becomes the next parameter.
func (w *where) add(cond string, args ...any) {
	for _, a := range args {
		w.args = append(w.args, a)
		cond = strings.Replace(cond, "?", "$"+strconv.Itoa(len(w.args)), 1)
	}
	w.conds = append(w.conds, cond)
}

func (w *where) sql() string {
	if len(w.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(w.conds, " AND ")
}

// param adds an argument and returns its placeholder.
func (w *where) param(a any) string {
	w.args = append(w.args, a)
	return "$" + strconv.Itoa(len(w.args))
}

// TaskFilter selects tasks for [ListTasks]. Zero fields do not filter.
type TaskFilter struct {
	States       []string
	Namespace    string
	TemplateName string
	// CorrelationID selects the tasks of one correlation id (served by the
	// tasks_correlation_id index); uuid.Nil does not filter.
	CorrelationID uuid.UUID
	// CreatedAfter (inclusive) and CreatedBefore (exclusive) bound created_at.
	CreatedAfter  time.Time
	CreatedBefore time.Time
	// Before continues a listing: only tasks whose uuid sorts before it
	// (older tasks: uuids are version 7).
	Before uuid.UUID
	// Limit is the page size (at least 1).
	Limit int
}

// ListTasks returns a page of tasks, newest first, and whether more follow.
// Paging is by task uuid (keyset), so pages stay consistent while tasks
// are created; the (namespace, state, task_uuid) and (state, task_uuid)
// indexes serve the filters on unfinished states in order, and the primary
// key (uuid v7, newest first) the rest, complete tasks being most tasks.
// A correlation id is served by the tasks_correlation_id index (few tasks
// each, sorted after).
func ListTasks(ctx context.Context, db DB, f TaskFilter) ([]Task, bool, error) {
	var w where
	if len(f.States) > 0 {
		w.add("t.state = ANY(?)", f.States)
	}
	if f.Namespace != "" {
		w.add("t.namespace = ?", f.Namespace)
	}
	if f.TemplateName != "" {
		w.add("t.template_name = ?", f.TemplateName)
	}
	if f.CorrelationID != uuid.Nil {
		w.add("t.correlation_id = ?", f.CorrelationID)
	}
	if !f.CreatedAfter.IsZero() {
		w.add("t.created_at >= ?", f.CreatedAfter)
	}
	if !f.CreatedBefore.IsZero() {
		w.add("t.created_at < ?", f.CreatedBefore)
	}
	if f.Before != uuid.Nil {
		w.add("t.task_uuid < ?", f.Before)
	}
	limit := max(f.Limit, 1)
	sql := `SELECT ` + taskColumns + ` FROM tasker.tasks t` + w.sql() + ` ORDER BY t.task_uuid DESC LIMIT ` + w.param(limit+1)
	rows, err := db.Query(ctx, sql, w.args...)
	if err != nil {
		return nil, false, fmt.Errorf("store: listing tasks: %w", err)
	}
	tasks, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (Task, error) { return scanTask(r) })
	if err != nil {
		return nil, false, fmt.Errorf("store: listing tasks: %w", err)
	}
	if len(tasks) > limit {
		return tasks[:limit], true, nil
	}
	return tasks, false, nil
}

// TemplateSummary is a registered template without its definition.
type TemplateSummary struct {
	ID          int64
	Namespace   string
	Name        string
	Version     string
	Description string
	Steps       int
	CreatedAt   time.Time
}

// TemplateFilter selects templates for [ListTemplates].
type TemplateFilter struct {
	Namespace string
	Name      string
	// Before continues a listing: templates registered before this id.
	Before int64
	Limit  int
}

// ListTemplates returns a page of registered templates, most recently
// registered first, and whether more follow.
func ListTemplates(ctx context.Context, db DB, f TemplateFilter) ([]TemplateSummary, bool, error) {
	var w where
	if f.Namespace != "" {
		w.add("namespace = ?", f.Namespace)
	}
	if f.Name != "" {
		w.add("name = ?", f.Name)
	}
	if f.Before > 0 {
		w.add("template_id < ?", f.Before)
	}
	limit := max(f.Limit, 1)
	rows, err := db.Query(ctx, `
		SELECT template_id, namespace, name, version, description,
		       coalesce(jsonb_array_length(CASE WHEN jsonb_typeof(definition->'steps') = 'array' THEN definition->'steps' END), 0),
		       created_at
		FROM tasker.templates`+w.sql()+` ORDER BY template_id DESC LIMIT `+w.param(limit+1), w.args...)
	if err != nil {
		return nil, false, fmt.Errorf("store: listing templates: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (TemplateSummary, error) {
		var t TemplateSummary
		err := r.Scan(&t.ID, &t.Namespace, &t.Name, &t.Version, &t.Description, &t.Steps, &t.CreatedAt)
		return t, err
	})
	if err != nil {
		return nil, false, fmt.Errorf("store: listing templates: %w", err)
	}
	if len(out) > limit {
		return out[:limit], true, nil
	}
	return out, false, nil
}

// DeadLetter is a step in state error with the template of its task.
type DeadLetter struct {
	Step
	TemplateName    string
	TemplateVersion string
}

// DeadLetterCursor is the position after the last dead letter of a page.
// Dead letters are listed by the time they failed (updated_at), newest
// first, with the step uuid breaking ties.
type DeadLetterCursor struct {
	FailedAt time.Time
	StepUUID uuid.UUID
}

// DeadLetterFilter selects dead letters (steps in state error). Zero fields
// do not filter.
type DeadLetterFilter struct {
	Namespace    string
	Handler      string
	TaskUUID     uuid.UUID
	TemplateName string
	// FailedAfter (inclusive) and FailedBefore (exclusive) bound the time
	// the step failed.
	FailedAfter  time.Time
	FailedBefore time.Time
}

func (f DeadLetterFilter) where(w *where) {
	w.add("s.state = 'error'")
	if f.Namespace != "" {
		w.add("s.namespace = ?", f.Namespace)
	}
	if f.Handler != "" {
		w.add("s.handler = ?", f.Handler)
	}
	if f.TaskUUID != uuid.Nil {
		w.add("s.task_uuid = ?", f.TaskUUID)
	}
	if f.TemplateName != "" {
		w.add("t.template_name = ?", f.TemplateName)
	}
	if !f.FailedAfter.IsZero() {
		w.add("s.updated_at >= ?", f.FailedAfter)
	}
	if !f.FailedBefore.IsZero() {
		w.add("s.updated_at < ?", f.FailedBefore)
	}
}

// ListDeadLetters returns a page of dead letters, most recently failed
// first, and whether more follow. after, when set, continues a listing. The
// partial index steps_errored (namespace, updated_at) serves it.
func ListDeadLetters(ctx context.Context, db DB, f DeadLetterFilter, after *DeadLetterCursor, limit int) ([]DeadLetter, bool, error) {
	var w where
	f.where(&w)
	if after != nil {
		w.add("(s.updated_at, s.step_uuid) < (?, ?)", after.FailedAt, after.StepUUID)
	}
	limit = max(limit, 1)
	rows, err := db.Query(ctx, `
		SELECT `+stepColumns+`, t.template_name, t.template_version
		FROM tasker.steps s JOIN tasker.tasks t ON t.task_uuid = s.task_uuid`+w.sql()+`
		ORDER BY s.updated_at DESC, s.step_uuid DESC LIMIT `+w.param(limit+1), w.args...)
	if err != nil {
		return nil, false, fmt.Errorf("store: listing dead letters: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (DeadLetter, error) {
		var d DeadLetter
		var err error
		d.Step, err = scanStep(r, &d.TemplateName, &d.TemplateVersion)
		return d, err
	})
	if err != nil {
		return nil, false, fmt.Errorf("store: listing dead letters: %w", err)
	}
	if len(out) > limit {
		return out[:limit], true, nil
	}
	return out, false, nil
}

// NamespaceQueue describes one namespace's work.
type NamespaceQueue struct {
	Name string
	// Ready counts steps claimable now (enqueued, or waiting_for_retry
	// whose run_at passed); OldestReadyAt is the earliest run_at among them.
	Ready         int
	OldestReadyAt *time.Time
	// Scheduled counts enqueued or waiting_for_retry steps whose run_at is
	// still ahead (retries in backoff, steps given back by an open breaker).
	Scheduled  int
	InProgress int
	// DeadLetters counts steps in state error.
	DeadLetters int
}

// ListNamespaceQueues returns every namespace's queue depth. Each count
// walks one partial index (steps_claimable, steps_lease_expiry,
// steps_errored), so the cost follows the work outstanding, not history.
func ListNamespaceQueues(ctx context.Context, db DB, now time.Time) ([]NamespaceQueue, error) {
	rows, err := db.Query(ctx, `
		SELECT n.name, q.ready, q.oldest, q.scheduled, p.n, e.n
		FROM tasker.namespaces n
		CROSS JOIN LATERAL (
			SELECT count(*) FILTER (WHERE s.run_at <= $1)::int AS ready,
			       min(s.run_at) FILTER (WHERE s.run_at <= $1) AS oldest,
			       count(*) FILTER (WHERE s.run_at > $1)::int AS scheduled
			FROM tasker.steps s
			WHERE s.namespace = n.name AND s.state IN ('enqueued', 'waiting_for_retry')
		) q
		CROSS JOIN LATERAL (
			SELECT count(*)::int AS n FROM tasker.steps s
			WHERE s.state = 'in_progress' AND s.lease_expires_at IS NOT NULL AND s.namespace = n.name
		) p
		CROSS JOIN LATERAL (
			SELECT count(*)::int AS n FROM tasker.steps s WHERE s.state = 'error' AND s.namespace = n.name
		) e
		ORDER BY n.name`, now)
	if err != nil {
		return nil, fmt.Errorf("store: reading queue depths: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (NamespaceQueue, error) {
		var q NamespaceQueue
		err := r.Scan(&q.Name, &q.Ready, &q.OldestReadyAt, &q.Scheduled, &q.InProgress, &q.DeadLetters)
		return q, err
	})
	if err != nil {
		return nil, fmt.Errorf("store: reading queue depths: %w", err)
	}
	return out, nil
}

const (
	taskActiveStatesSQL = `('pending', 'steps_in_process', 'blocked_by_failures')`
	// Every state but complete: the state indexes hold these only.
	taskNotCompleteStatesSQL = `('pending', 'steps_in_process', 'blocked_by_failures', 'cancelled', 'resolved_manually')`
	// Steps a manual cancel or resolve may still change.
	stepOpenStatesSQL = `('pending', 'enqueued', 'in_progress', 'waiting_for_retry', 'error')`
)

// CountTasksByState counts tasks per state: every unfinished task (pending,
// steps_in_process, blocked_by_failures), and the finished ones (complete,
// cancelled, resolved_manually) created since since. Finished tasks pile up
// for ever, so they are counted over a window, which the task uuid (version
// 7: its first 48 bits are the creation time in milliseconds) turns into a
// key range. Complete tasks are not in the state indexes (their completion
// would cost an index entry each): they are the window's tasks, counted on
// the primary key, less the others, counted on the state index; both
// index-only scans in one snapshot. Every state is present in the map.
func CountTasksByState(ctx context.Context, db DB, since time.Time) (map[string]int, error) {
	rows, err := db.Query(ctx, `
		SELECT state, count(*)::int FROM tasker.tasks WHERE state IN `+taskActiveStatesSQL+` GROUP BY state
		UNION ALL
		SELECT state, count(*)::int FROM tasker.tasks
		WHERE state IN ('cancelled', 'resolved_manually') AND task_uuid >= $1 GROUP BY state
		UNION ALL
		SELECT 'complete', (SELECT count(*) FROM tasker.tasks WHERE task_uuid >= $1)::int
		                   - (SELECT count(*) FROM tasker.tasks WHERE state IN `+taskNotCompleteStatesSQL+` AND task_uuid >= $1)::int`,
		UUIDv7Floor(since))
	if err != nil {
		return nil, fmt.Errorf("store: counting tasks: %w", err)
	}
	out := make(map[string]int, len(contracts.TaskStates()))
	for _, s := range contracts.TaskStates() {
		out[string(s)] = 0
	}
	var (
		state string
		n     int
	)
	if _, err := pgx.ForEachRow(rows, []any{&state, &n}, func() error { out[state] = n; return nil }); err != nil {
		return nil, fmt.Errorf("store: counting tasks: %w", err)
	}
	return out, nil
}

// UUIDv7Floor returns the smallest version 7 uuid of time t (millisecond
// precision): every uuid made at or after t sorts at or after it.
func UUIDv7Floor(t time.Time) uuid.UUID {
	var u uuid.UUID
	ms := max(t.UnixMilli(), 0)
	for i := range 6 {
		u[i] = byte(ms >> (8 * (5 - i)))
	}
	return u
}
