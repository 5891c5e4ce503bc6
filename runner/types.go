package runner

import (
	"context"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/tasker-runner/tasker-runner/contracts"
	"github.com/tasker-runner/tasker-runner/runner/store"
)

// The public vocabulary of the runner's admin operations ([Client] methods):
// tasks, steps, their audit rows, templates, handler endpoints, workers and
// queues as the runner shows them. Each mirrors a database row; the runner
// converts them, so callers never need the store package.

// StepState is a step's state; [contracts.StepStates] lists every value.
// It is contracts' type, re-exported so the runner's API reads alone.
type StepState = contracts.StepState

// TaskState is a task's state; [contracts.TaskStates] lists every value.
// It is contracts' type, re-exported so the runner's API reads alone.
type TaskState = contracts.TaskState

// DB is what a [Client] runs on: a *pgxpool.Pool, a connection or a
// transaction.
type DB interface {
	Begin(ctx context.Context) (pgx.Tx, error)
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	// SendBatch pipelines statements in one round trip.
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}

// Task is a task as the management API shows it.
type Task struct {
	TaskUUID            uuid.UUID
	TemplateID          int64
	Namespace           string
	TemplateName        string
	TemplateVersion     string
	Context             []byte
	State               TaskState
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

// Step is a step as the management API shows it.
type Step struct {
	StepUUID         uuid.UUID
	TaskUUID         uuid.UUID
	Namespace        string
	Name             string
	TemplateStepName string
	Handler          string
	Type             string
	State            StepState
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

// Transition is one audit row of a task or a step.
type Transition struct {
	ID int64
	// StepUUID is set for step transitions, unset for the task's own.
	StepUUID uuid.NullUUID
	// FromState is "" for the row written when the task or step was
	// created. States are a [TaskState] or a [StepState], as strings.
	FromState string
	ToState   string
	// Attempt is the step's attempt count at the change (0 for tasks).
	Attempt   int
	WorkerID  string
	Metadata  []byte
	CreatedAt time.Time
}

// DeadLetter is a step in state error with the template of its task.
type DeadLetter struct {
	Step
	TemplateName    string
	TemplateVersion string
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

// Template is a registered template version.
type Template struct {
	ID          int64
	Namespace   string
	Name        string
	Version     string
	Description string
	// Definition is the validated template as JSON.
	Definition []byte
	CreatedAt  time.Time
}

// HandlerEndpoint is a handler endpoint registered in the database: where
// the steps whose handler matches Pattern in Namespace are sent. Runners
// load them at start and on every change ([Endpoints.Reload]).
type HandlerEndpoint struct {
	ID                         int64
	Namespace                  string
	Pattern                    string
	URL                        string
	Protocol                   string
	TimeoutMs                  int
	MaxConcurrency             int
	BatchMax                   int
	BatchWindowMs              int
	BreakerMaxRequests         int
	BreakerIntervalMs          int
	BreakerOpenTimeoutMs       int
	BreakerConsecutiveFailures int
	Headers                    map[string]string
	// SecretRef names where the signing secrets are ("env:NAME" or
	// "file:/path"), never the secrets themselves.
	SecretRef string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Worker is a runner process of the live registry.
type Worker struct {
	WorkerID    string
	Hostname    string
	Version     string
	Namespaces  []string
	StartedAt   time.Time
	HeartbeatAt time.Time
	StoppedAt   *time.Time
}

// Status reports "stopped" for a worker that shut down gracefully, "stale"
// for one that missed three heartbeats (it probably died; its leases will
// be rescued), and "alive" otherwise.
func (w Worker) Status(now time.Time, heartbeatInterval time.Duration) string {
	return store.Worker(w).Status(now, heartbeatInterval)
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

// QueueStat describes the ready steps of one namespace.
type QueueStat struct {
	Namespace string
	// Ready counts steps claimable now. Steps whose expired lease awaits
	// rescue are not counted.
	Ready int64
	// OldestAge is how long the oldest of them has been ready; 0 when none is.
	OldestAge time.Duration
}

// convertAll converts each row with conv.
func convertAll[R, T any](rows []R, conv func(R) T) []T {
	if rows == nil {
		return nil
	}
	out := make([]T, len(rows))
	for i, r := range rows {
		out[i] = conv(r)
	}
	return out
}

func taskFromRow(r store.Task) Task                           { return Task(r) }
func stepFromRow(r store.Step) Step                           { return Step(r) }
func transitionFromRow(r store.Transition) Transition         { return Transition(r) }
func endpointFromRow(r store.HandlerEndpoint) HandlerEndpoint { return HandlerEndpoint(r) }
func deadLetterFromRow(r store.DeadLetter) DeadLetter {
	return DeadLetter{Step: Step(r.Step), TemplateName: r.TemplateName, TemplateVersion: r.TemplateVersion}
}
func templateFromRow(r store.Template) Template {
	return Template{ID: r.ID, Namespace: r.Namespace, Name: r.Name, Version: r.Version, Description: r.Description,
		Definition: r.Definition, CreatedAt: r.CreatedAt}
}
