package dev

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-runner/tasker-runner/callout"
	"github.com/tasker-runner/tasker-runner/contracts"
	"github.com/tasker-runner/tasker-runner/runner"
)

// devTemplateFile is the example workflow, inside the examples directory.
var devTemplateFile = filepath.Join("templates", "order_fulfilment.yaml")

// findExamples returns the examples directory: dir when given, else the
// first "examples" holding the example template in the working directory
// or above it, or next to the executable or above it.
func findExamples(dir string) (string, error) {
	if dir != "" {
		if _, err := os.Stat(filepath.Join(dir, devTemplateFile)); err != nil {
			return "", fmt.Errorf("--examples %s: %w", dir, err)
		}
		return filepath.Abs(dir)
	}
	var starts []string
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if exe, err := os.Executable(); err == nil {
		starts = append(starts, filepath.Dir(exe))
	}
	for _, d := range starts {
		for {
			if _, err := os.Stat(filepath.Join(d, "examples", devTemplateFile)); err == nil {
				return filepath.Join(d, "examples"), nil
			}
			parent := filepath.Dir(d)
			if parent == d {
				break
			}
			d = parent
		}
	}
	return "", fmt.Errorf("no examples/%s in %s or above (run dev from a clone of the repository, or pass --examples DIR)", devTemplateFile, strings.Join(starts, " or "))
}

// devOrder returns the id and task context of the nth example order.
func devOrder(n int) (string, json.RawMessage) {
	id := fmt.Sprintf("ORD-%d", 1000+n)
	order := map[string]any{"order": map[string]any{
		"id": id, "total": 89.5 + 24.25*float64(n+1), "currency": "EUR", "address": "1 Main St, Springfield",
		"items": []map[string]any{{"sku": "KB-42", "quantity": 1}, {"sku": "MS-7", "quantity": n + 1}},
	}}
	b, _ := json.Marshal(order) // maps of strings and numbers always encode
	return id, b
}

// The tasks the demo submits to the dynamic example workflows
// (examples/templates/approval.yaml and batch_etl.yaml).

// devApproval returns the id and task context of the nth example approval
// request; the first one needs two approvals (manager and finance).
func devApproval(n int) (string, json.RawMessage) {
	id := fmt.Sprintf("REQ-%d", 2000+n)
	amounts := []float64{7500, 650, 2400, 0, 40_000}
	b, _ := json.Marshal(map[string]any{"request": map[string]any{
		"id": id, "amount": amounts[(n-1)%len(amounts)], "requester": "ada", "purpose": "a new build server",
	}})
	return id, b
}

// devETL returns the id and task context of the nth example ETL run: 10,000
// rows in 4 cursor ranges, a checkpoint every 1,000 rows.
func devETL(n int) (string, json.RawMessage) {
	id := fmt.Sprintf("ETL-%d", 3000+n)
	b, _ := json.Marshal(map[string]any{"etl": map[string]any{"id": id, "rows": devETLRows, "workers": 4, "checkpoint_every": 1000}})
	return id, b
}

const devETLRows = 10_000

// devProgress prints the outcomes of the example namespace's steps as they
// are written, naming who ran each step, and lets the demo wait for tasks.
type devProgress struct {
	out       io.Writer
	namespace string

	mu       sync.Mutex
	who      map[string]string       // callable -> "Python", "Go (in-process, for Python)"...
	finished map[uuid.UUID]string    // task -> its final state
	changed  chan struct{}           // closed (and replaced) whenever a task finishes
	since    map[uuid.UUID]time.Time // task -> when it was submitted
}

func newDevProgress(out io.Writer, namespace string) *devProgress {
	return &devProgress{out: out, namespace: namespace, who: map[string]string{},
		finished: map[uuid.UUID]string{}, changed: make(chan struct{}), since: map[uuid.UUID]time.Time{}}
}

// printf prints a line between progress lines, never inside one.
func (p *devProgress) printf(format string, args ...any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.out, format, args...)
}

func (p *devProgress) setWho(callable, who string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.who[callable] = who
}

func (p *devProgress) submitted(task uuid.UUID, at time.Time) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.since[task] = at
}

func (p *devProgress) onEvent(e runner.Event) {
	if e.Step.Namespace != p.namespace || e.Stale {
		return
	}
	label := taskLabel(e.Step.Context)
	p.mu.Lock()
	defer p.mu.Unlock()
	who := p.who[e.Step.Handler]
	if who == "" {
		who = e.Step.Handler
	}
	head := fmt.Sprintf("%-8s %-18s %-12s", label, e.Step.Name, who)
	took := e.Finished.Sub(e.Started).Round(10 * time.Microsecond)
	why := ""
	if err := e.Result.Error; err != nil {
		why = err.ErrorType
		if err.StatusCode != 0 {
			why += fmt.Sprintf(" (%d)", err.StatusCode)
		}
		why += ": " + err.Message
	}
	switch {
	case e.State == "complete":
		fmt.Fprintf(p.out, "  ✓ %s attempt %d, %s  %s\n", head, e.Step.Attempt, took, describeResult(e.Result.Result))
	case e.State == "waiting_for_retry":
		fmt.Fprintf(p.out, "  ↻ %s attempt %d of %d failed, retrying later: %s\n", head, e.Step.Attempt, e.Step.MaxAttempts, why)
	case e.State == "enqueued" && e.Result.Status == contracts.StatusYielded:
		var cp contracts.Checkpoint
		_ = json.Unmarshal(e.Result.Checkpoint, &cp) // the runner stored it: an object
		fmt.Fprintf(p.out, "  ⤷ %s checkpoint at %s (%d done), %s: called again at once, attempt %d kept\n", head, compact(cp.Cursor), cp.ItemsProcessed, took, e.Step.Attempt)
	case e.State == "enqueued" && e.Result.Error != nil && e.Result.Error.ErrorType == contracts.ErrorTypeCircuitOpen:
		fmt.Fprintf(p.out, "  ⏸ %s not called, breaker open: back in the queue, attempt %d not used\n", head, e.Step.Attempt)
	case e.State == "enqueued" && e.Result.Error != nil && e.Result.Error.ErrorType == contracts.ErrorTypeEndpointUnusable:
		fmt.Fprintf(p.out, "  ⏸ %s not called, endpoint unusable: back in the queue, attempt %d not used: %s\n", head, e.Step.Attempt, e.Result.Error.Message)
	case e.State == "enqueued":
		fmt.Fprintf(p.out, "  · %s given back (attempt %d not used)\n", head, e.Step.Attempt)
	default:
		fmt.Fprintf(p.out, "  ✗ %s %s after attempt %d: %s\n", head, e.State, e.Step.Attempt, why)
	}
	if e.TaskState != "" {
		took := ""
		if at, ok := p.since[e.Step.TaskUUID]; ok {
			took = fmt.Sprintf(" in %s", e.Finished.Sub(at).Round(time.Millisecond))
		}
		fmt.Fprintf(p.out, "task %s %s %s%s\n", e.Step.TaskUUID, label, strings.ToUpper(string(e.TaskState)), took)
		p.finished[e.Step.TaskUUID] = string(e.TaskState)
		close(p.changed)
		p.changed = make(chan struct{})
	}
}

// wait waits until every task has finished and returns their final states;
// it gives up after timeout.
func (p *devProgress) wait(ctx context.Context, tasks []uuid.UUID, timeout time.Duration) (map[uuid.UUID]string, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		p.mu.Lock()
		states := map[uuid.UUID]string{}
		for _, t := range tasks {
			if s, ok := p.finished[t]; ok {
				states[t] = s
			}
		}
		changed := p.changed
		p.mu.Unlock()
		if len(states) == len(tasks) {
			return states, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return states, ctx.Err()
		case <-deadline.C:
			return states, fmt.Errorf("%d of %d example tasks have not finished after %s; `tasker-runner tasks list --namespace examples` shows where they are", len(tasks)-len(states), len(tasks), timeout)
		}
	}
}

// taskLabel is the id of an example task: its context's order.id,
// request.id or etl.id.
func taskLabel(taskCtx json.RawMessage) string {
	var c map[string]struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(taskCtx, &c) // another task of the namespace: no id
	for _, k := range []string{"order", "request", "etl"} {
		if id := c[k].ID; id != "" {
			return id
		}
	}
	return ""
}

// describeResult shows a step's result, a decision or batch outcome in
// words ("creates manager_approval, finance_review"), the rest as JSON.
func describeResult(b []byte) string {
	o, err := contracts.ParseOutcomes(b)
	if err != nil || (o.DecisionPointOutcome == nil && o.BatchProcessingOutcome == nil) {
		return compact(b)
	}
	var rest map[string]json.RawMessage
	_ = json.Unmarshal(b, &rest) // ParseOutcomes found an object
	var says string
	if d := o.DecisionPointOutcome; d != nil {
		delete(rest, "decision_point_outcome")
		says = "decision: no branches"
		if d.Type == contracts.OutcomeCreateSteps {
			says = "decision: creates " + strings.Join(d.StepNames, ", ")
		}
	}
	if bo := o.BatchProcessingOutcome; bo != nil {
		delete(rest, "batch_processing_outcome")
		says = "batches: none (no_batches)"
		if n := len(bo.CursorConfigs); n > 0 {
			says = fmt.Sprintf("batches: %d workers %s_%s..%s over %d items", n, bo.WorkerTemplateName, bo.CursorConfigs[0].BatchID, bo.CursorConfigs[n-1].BatchID, bo.TotalItems)
		}
	}
	if len(rest) == 0 {
		return says
	}
	others, _ := json.Marshal(rest) // raw messages from a decoded object
	return says + "  " + compact(others)
}

func compact(b []byte) string {
	if len(b) > 120 {
		return string(b[:120]) + "..."
	}
	return string(b)
}

// endpointLister reports the live handler endpoints ([runner.Server.Endpoints]).
type endpointLister interface {
	Endpoints() []callout.EndpointStatus
}

// watchBreakers prints every change of the example endpoints' breakers
// until ctx ends. It polls: the registry has no change feed, and a 50 ms
// poll of an in-memory list costs nothing.
func watchBreakers(ctx context.Context, reg endpointLister, namespace string, p *devProgress) {
	last := map[string]string{}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		for _, e := range reg.Endpoints() {
			if e.Namespace != namespace || e.Protocol == callout.ProtocolGo {
				continue
			}
			prev, seen := last[e.Pattern]
			last[e.Pattern] = e.BreakerState
			if seen && prev != e.BreakerState {
				p.mu.Lock()
				who := p.who[e.Pattern]
				p.mu.Unlock()
				u, err := url.PathUnescape(e.URL) // the registry escapes {callable}
				if err != nil {
					u = e.URL
				}
				p.printf("  ⚡ breaker of %s (%s, %s): %s -> %s (failed calls so far: %d, steps held back: %d)\n",
					e.Pattern, who, u, prev, strings.ToUpper(e.BreakerState), e.Faults, e.Rejected)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// submitTask submits an example task and returns its id.
func submitTask(ctx context.Context, c *runner.Client, tpl runner.TemplateInfo, p *devProgress, taskCtx json.RawMessage) (uuid.UUID, error) {
	at := time.Now()
	s, err := c.Submit(ctx, runner.SubmitRequest{
		Namespace: tpl.Namespace, Name: tpl.Name, Version: tpl.Version,
		Context: taskCtx, Initiator: "tasker-runner dev", Reason: "example",
	})
	if err != nil {
		return uuid.Nil, err
	}
	p.submitted(s.TaskUUID, at)
	return s.TaskUUID, nil
}

// submitOrders submits n example orders numbered from first and returns
// their task ids.
func submitOrders(ctx context.Context, c *runner.Client, tpl runner.TemplateInfo, p *devProgress, first, n int) ([]uuid.UUID, error) {
	var ids []uuid.UUID
	for i := range n {
		id, order := devOrder(first + i)
		p.printf("submitting order %s to %s/%s@%s: %s\n", id, tpl.Namespace, tpl.Name, tpl.Version, order)
		at := time.Now()
		s, err := c.Submit(ctx, runner.SubmitRequest{
			Namespace: tpl.Namespace, Name: tpl.Name, Version: tpl.Version,
			Context: order, Initiator: "tasker-runner dev", Reason: "example",
		})
		if err != nil {
			return ids, fmt.Errorf("submitting example order %s: %w", id, err)
		}
		p.submitted(s.TaskUUID, at)
		ids = append(ids, s.TaskUUID)
	}
	return ids, nil
}
