package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-runner/tasker-runner/contracts"
	"github.com/tasker-runner/tasker-runner/runner/store"
	"github.com/tasker-runner/tasker-runner/runner/workflow"
)

// Client registers templates, submits tasks, and carries the admin
// operations: read tasks, steps, dead letters, templates, endpoints,
// workers and queues, and change them by hand (cancel, retry, redrive,
// resolve). It is safe for concurrent use and needs no running [Runner].
type Client struct {
	db       store.DB
	defaults workflow.RetryDefaults
	now      func() time.Time
	tpls     *templateCache
	// ids maps (namespace, name, version) to a template id. Versions are
	// immutable, so an explicit version never needs looking up twice; an
	// empty version (the latest) always asks the database.
	ids sync.Map
}

// ClientConfig configures a [Client].
type ClientConfig struct {
	// RetryDefaults apply to template steps that set no retry values.
	RetryDefaults workflow.RetryDefaults
	// Now defaults to time.Now.
	Now func() time.Time
}

// NewClient returns a [Client] writing through db (a *pgxpool.Pool, say).
func NewClient(db DB, cfg ClientConfig) *Client {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Client{db: db, defaults: cfg.RetryDefaults, now: cfg.Now, tpls: newTemplateCache(db)}
}

// TemplateInfo identifies a registered template.
type TemplateInfo struct {
	ID        int64
	Namespace string
	Name      string
	Version   string
	// Created is false when the identical version was already registered.
	Created bool
	// Warnings lists what the document has that loads but has no effect
	// ([workflow.Template.Warnings]).
	Warnings []workflow.Problem
}

// RegisterTemplate parses, validates and stores a template (YAML or JSON).
// A [*workflow.ValidationError] lists every problem with its path; a
// [*workflow.DefinitionTooLargeError] reports a template whose stored
// definition runners could not load back.
func (c *Client) RegisterTemplate(ctx context.Context, doc []byte) (TemplateInfo, error) {
	tpl, err := workflow.Parse(doc)
	if err != nil {
		return TemplateInfo{}, err
	}
	def, err := json.Marshal(tpl)
	if err != nil {
		return TemplateInfo{}, fmt.Errorf("runner: encoding template: %w", err)
	}
	if err := workflow.CheckDefinitionSize(len(def)); err != nil {
		return TemplateInfo{}, err
	}
	row := store.Template{
		Namespace: tpl.NamespaceName, Name: tpl.Name, Version: tpl.Version, Description: tpl.Description, Definition: def,
		MaxDefinitionBytes: workflow.MaxDefinitionBytes,
	}
	id, created, err := store.RegisterTemplate(ctx, c.db, row)
	if tooLarge := (*store.DefinitionTooLargeError)(nil); errors.As(err, &tooLarge) {
		return TemplateInfo{}, &workflow.DefinitionTooLargeError{Size: tooLarge.Size}
	}
	if err != nil {
		return TemplateInfo{}, err
	}
	row.ID = id
	c.tpls.put(row, tpl)
	return TemplateInfo{ID: id, Namespace: tpl.NamespaceName, Name: tpl.Name, Version: tpl.Version, Created: created, Warnings: tpl.Warnings()}, nil
}

// SubmitRequest asks for one task.
type SubmitRequest struct {
	Namespace string
	Name      string
	// Version empty picks the latest registered version.
	Version string
	// Context is the task's input, a JSON object validated against the
	// template's input_schema.
	Context             json.RawMessage
	Priority            int
	CorrelationID       uuid.UUID // zero: generated
	ParentCorrelationID uuid.UUID // zero: none
	// IdempotencyKey, when set, makes resubmission return the first task.
	IdempotencyKey string
	Initiator      string
	SourceSystem   string
	Reason         string
	Tags           []string
}

// Submitted reports a submitted task.
type Submitted struct {
	TaskUUID uuid.UUID
	// Created is false when the idempotency key returned an earlier task.
	Created bool
}

// ErrInvalidContext wraps context validation failures.
var ErrInvalidContext = errors.New("task context does not match the template's input_schema")

// Submit creates a task and its initial steps in one transaction.
func (c *Client) Submit(ctx context.Context, req SubmitRequest) (Submitted, error) {
	out, err := c.SubmitMany(ctx, []SubmitRequest{req})
	if err != nil {
		return Submitted{}, err
	}
	return out[0], nil
}

// ErrInvalidRequest wraps a submission refused for a value out of range.
var ErrInvalidRequest = errors.New("invalid request")

// SubmitMany creates many tasks in one transaction with a fixed number of
// statements. Either all are created (or found by idempotency key) or none.
func (c *Client) SubmitMany(ctx context.Context, reqs []SubmitRequest) ([]Submitted, error) {
	out, err := c.submitMany(ctx, reqs)
	if errors.Is(err, store.ErrTemplateDeleted) {
		// A template this process had cached was deleted (perhaps by
		// another process, perhaps re-registered since): look again.
		for _, req := range reqs {
			c.forget(templateKey{req.Namespace, req.Name, req.Version})
		}
		out, err = c.submitMany(ctx, reqs)
	}
	return out, err
}

// DeleteTemplate removes a template version together with its finished
// tasks (complete, cancelled, resolved_manually), their steps and history,
// in one transaction, and returns how many tasks went with it. A template
// with unfinished tasks is refused with a [*TemplateInUseError], an
// unknown one with an error matching [ErrNotFound].
func (c *Client) DeleteTemplate(ctx context.Context, namespace, name, version string) (int, error) {
	n, err := store.DeleteTemplate(ctx, c.db, namespace, name, version)
	c.forget(templateKey{namespace, name, version})
	return n, adminError(err)
}

// forget drops what this process cached about a template version.
func (c *Client) forget(k templateKey) {
	if id, ok := c.ids.LoadAndDelete(k); ok {
		c.tpls.forget(id.(int64))
	}
}

func (c *Client) submitMany(ctx context.Context, reqs []SubmitRequest) ([]Submitted, error) {
	plans := map[templateKey]struct {
		tpl  *cachedTemplate
		plan *workflow.Plan
	}{}
	now := c.now()
	tasks := make([]store.NewTask, 0, len(reqs))
	for i, req := range reqs {
		k := templateKey{req.Namespace, req.Name, req.Version}
		p, ok := plans[k]
		if !ok {
			id, err := c.templateID(ctx, k)
			if err != nil {
				return nil, err
			}
			p.tpl, err = c.tpls.get(ctx, id)
			if err != nil {
				return nil, err
			}
			row := p.tpl.row
			if p.plan, err = p.tpl.tpl.Plan(c.defaults); err != nil {
				return nil, fmt.Errorf("runner: planning %s/%s@%s: %w", row.Namespace, row.Name, row.Version, err)
			}
			plans[k] = p
		}
		if req.Priority < contracts.MinInt32 || req.Priority > contracts.MaxInt32 {
			return nil, fmt.Errorf("runner: %w: priority %d is out of range (%d to %d)", ErrInvalidRequest, req.Priority, contracts.MinInt32, contracts.MaxInt32)
		}
		taskCtx := req.Context
		if len(taskCtx) == 0 || string(taskCtx) == "null" {
			taskCtx = json.RawMessage(`{}`)
		}
		if err := p.tpl.tpl.ValidateContext(taskCtx); err != nil {
			if len(reqs) > 1 {
				return nil, fmt.Errorf("runner: request %d: %w: %w", i, ErrInvalidContext, err)
			}
			return nil, fmt.Errorf("runner: %w: %w", ErrInvalidContext, err)
		}
		t := store.NewTask{
			TaskUUID:        uuid.Must(uuid.NewV7()),
			TemplateID:      p.tpl.row.ID,
			Namespace:       p.tpl.row.Namespace,
			TemplateName:    p.tpl.row.Name,
			TemplateVersion: p.tpl.row.Version,
			Context:         taskCtx,
			Priority:        req.Priority,
			CorrelationID:   req.CorrelationID,
			IdempotencyKey:  req.IdempotencyKey,
			Initiator:       req.Initiator,
			SourceSystem:    req.SourceSystem,
			Reason:          req.Reason,
			Tags:            req.Tags,
			Steps:           make([]store.NewStep, len(p.plan.Steps)),
		}
		if t.CorrelationID == uuid.Nil {
			t.CorrelationID = uuid.New()
		}
		if req.ParentCorrelationID != uuid.Nil {
			t.ParentCorrelationID = uuid.NullUUID{UUID: req.ParentCorrelationID, Valid: true}
		}
		for j, ps := range p.plan.Steps {
			policy, err := json.Marshal(ps.Retry)
			if err != nil {
				return nil, fmt.Errorf("runner: encoding retry policy: %w", err)
			}
			t.Steps[j] = store.NewStep{
				StepUUID:         uuid.Must(uuid.NewV7()),
				Name:             ps.Name,
				TemplateStepName: ps.Name,
				Handler:          ps.Handler.Callable,
				Type:             string(ps.Type),
				Parents:          ps.Parents,
				MaxAttempts:      ps.MaxAttempts,
				Retryable:        ps.Retryable,
				RetryPolicy:      policy,
				TimeoutMs:        ps.TimeoutSeconds * 1000,
			}
		}
		tasks = append(tasks, t)
	}
	created, err := store.CreateTasks(ctx, c.db, now, tasks)
	if err != nil {
		return nil, err
	}
	out := make([]Submitted, len(created))
	for i, ct := range created {
		out[i] = Submitted{TaskUUID: ct.TaskUUID, Created: ct.Created}
	}
	return out, nil
}

type templateKey struct{ ns, name, version string }

func (c *Client) templateID(ctx context.Context, k templateKey) (int64, error) {
	if id, ok := c.ids.Load(k); ok {
		return id.(int64), nil
	}
	row, err := store.GetTemplate(ctx, c.db, k.ns, k.name, k.version)
	if err != nil {
		return 0, err
	}
	if k.version != "" {
		c.ids.Store(k, row.ID)
	}
	return row.ID, nil
}
