package conformance_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/tasker-runner/tasker-runner/callout/conformance"
	"github.com/tasker-runner/tasker-runner/contracts"
	handlerv1 "github.com/tasker-runner/tasker-runner/contracts/gen/tasker/handler/v1"
)

// stepFunc answers one envelope.
type stepFunc func(env *contracts.StepEnvelope) contracts.StepResult

// decide is a correct decision step.
func decide(*contracts.StepEnvelope) contracts.StepResult {
	return contracts.CreateSteps("manual_review", "notify").Result(map[string]any{"why": "amount"})
}

// split is a correct batchable step: 100 rows in 2 workers.
func split(*contracts.StepEnvelope) contracts.StepResult {
	return contracts.CreateBatches("process", contracts.EvenCursors(100, 2), 100).Result(nil)
}

// work is a correct batch worker: 20 rows per call, a checkpoint after each
// call but the last.
func work(env *contracts.StepEnvelope) contracts.StepResult {
	in, err := env.BatchWorker()
	if err != nil {
		return contracts.Failure("bad_inputs", err.Error(), false)
	}
	start, end, err := in.Cursor.IntRange()
	if err != nil {
		return contracts.Failure("bad_inputs", err.Error(), false)
	}
	pos := start
	if cp, ok, err := env.ResumeFrom(); err != nil {
		return contracts.Failure("bad_checkpoint", err.Error(), false)
	} else if ok {
		if pos, err = cp.IntCursor(); err != nil {
			return contracts.Failure("bad_checkpoint", err.Error(), false)
		}
	}
	next := min(pos+20, end)
	if next < end {
		return contracts.Yield(contracts.Checkpoint{Cursor: json.RawMessage(strconv.FormatInt(next, 10)), ItemsProcessed: next - start})
	}
	return contracts.StepResult{Success: true, Status: contracts.StatusCompleted, Result: json.RawMessage(fmt.Sprintf(`{"rows": %d}`, end-start))}
}

// dynamicService answers the callables in steps and echoes the others, as
// echoHandler does; it records the worker calls.
type dynamicService struct {
	steps map[string]stepFunc
	mu    sync.Mutex
	calls []contracts.StepEnvelope // of "etl.work"
}

func (d *dynamicService) answer(env *contracts.StepEnvelope) contracts.StepResult {
	f, ok := d.steps[env.StepDefinition.Handler.Callable]
	if !ok {
		return contracts.StepResult{Success: true, Status: contracts.StatusCompleted, Result: json.RawMessage(`"echo"`)}
	}
	if env.StepDefinition.Handler.Callable == "etl.work" {
		d.mu.Lock()
		d.calls = append(d.calls, *env)
		d.mu.Unlock()
	}
	return f(env)
}

func (d *dynamicService) handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			contracts.StepEnvelope
			Steps []contracts.StepEnvelope `json:"steps"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			writeJSON(w, 400, contracts.Failure("bad_request", err.Error(), false))
			return
		}
		late := deadlinePassed(r)
		run := func(env *contracts.StepEnvelope) contracts.StepResult {
			res := contracts.Failure("deadline_exceeded", "late", true)
			if !late {
				res = d.answer(env)
			}
			res.StepUUID = env.Step.StepUUID
			return res
		}
		if req.Steps != nil {
			out := map[string][]contracts.StepResult{"results": {}}
			for i := range req.Steps {
				out["results"] = append(out["results"], run(&req.Steps[i]))
			}
			writeJSON(w, 200, out)
			return
		}
		writeJSON(w, 200, run(&req.StepEnvelope))
	})
}

var dynamicConfig = conformance.Config{Decision: "shop.decide", Batchable: "etl.split", Yielding: "etl.work", Batch: true}

// TestDynamicCases: a handler whose decision, batchable and worker steps
// answer as the contract says passes every dynamic case; the worker is
// sent the first batch of the split and each checkpoint it yielded, with
// its attempt kept.
func TestDynamicCases(t *testing.T) {
	t.Parallel()
	d := &dynamicService{steps: map[string]stepFunc{"shop.decide": decide, "etl.split": split, "etl.work": work}}
	cfg := dynamicConfig
	cfg.URL = serve(t, d.handler())
	rep := run(t, cfg)
	wantStatuses(t, rep, conformance.Pass, with(notAsked, "decision-outcome", conformance.Pass, "batch-outcome", conformance.Pass, "yields", conformance.Pass))
	for name, frag := range map[string]string{
		"decision-outcome": "create_steps manual_review, notify",
		"batch-outcome":    "create_batches: 2 workers process_001.., 100 items",
		"yields":           "2 yields (worker inputs from the first batch of batch-outcome), each resumed from its checkpoint with attempt 1 kept, then success",
	} {
		if r := caseResult(t, rep, name).Reason; !strings.Contains(r, frag) {
			t.Errorf("%s: reason %q lacks %q", name, r, frag)
		}
	}
	if rep.Decision != "shop.decide" || rep.Batchable != "etl.split" || rep.Yielding != "etl.work" {
		t.Errorf("report header %+v", rep)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.calls) != 3 {
		t.Fatalf("the worker was called %d times, want 3 (0-20, 20-40, 40-50)", len(d.calls))
	}
	for i, c := range d.calls {
		in, err := c.BatchWorker()
		if err != nil || in.Cursor.BatchID != "001" || string(in.Cursor.StartCursor) != "0" || string(in.Cursor.EndCursor) != "50" {
			t.Errorf("call %d: inputs %s (%v), want the first batch of the split", i+1, c.Step.Inputs, err)
		}
		if c.Step.StepUUID != d.calls[0].Step.StepUUID || c.Step.Attempts != 1 || (i > 0 && c.EventID == d.calls[i-1].EventID) {
			t.Errorf("call %d: step %s attempt %d event %s: want the same step and attempt, a new event", i+1, c.Step.StepUUID, c.Step.Attempts, c.EventID)
		}
		want := map[int]string{0: "", 1: "20", 2: "40"}[i]
		cp, ok, _ := c.ResumeFrom()
		if (want == "") == ok || (ok && string(cp.Cursor) != want) {
			t.Errorf("call %d: checkpoint %s, want cursor %q", i+1, c.Step.Checkpoint, want)
		}
	}
}

// TestDynamicCasesWithoutBatchable: the worker gets the default cursor.
func TestDynamicCasesWithoutBatchable(t *testing.T) {
	t.Parallel()
	d := &dynamicService{steps: map[string]stepFunc{"etl.work": work}}
	rep := run(t, conformance.Config{URL: serve(t, d.handler()), Yielding: "etl.work"})
	if r := caseResult(t, rep, "yields"); r.Status != conformance.Pass || !strings.Contains(r.Reason, "49 yields (worker inputs from rows 0 to 1000)") {
		t.Errorf("yields: %+v", r)
	}
}

// TestBrokenDynamicHandlers: each wrong answer fails its dynamic case and
// says why.
func TestBrokenDynamicHandlers(t *testing.T) {
	t.Parallel()
	plain := func(result string) stepFunc {
		return func(*contracts.StepEnvelope) contracts.StepResult {
			return contracts.StepResult{Success: true, Result: json.RawMessage(result)}
		}
	}
	tests := []struct {
		name   string
		steps  map[string]stepFunc
		failed string // the case that fails
		reason []string
	}{
		{"decision without an outcome", map[string]stepFunc{"shop.decide": plain(`{"approved": true}`)},
			"decision-outcome", []string{"without a decision_point_outcome", "approved"}},
		{"decision with an empty create_steps", map[string]stepFunc{"shop.decide": plain(`{"decision_point_outcome": {"type": "create_steps", "step_names": []}}`)},
			"decision-outcome", []string{"breaks the contract", "/result/decision_point_outcome/step_names"}},
		{"decision answering a failure", map[string]stepFunc{"shop.decide": func(*contracts.StepEnvelope) contracts.StepResult {
			return contracts.Failure("no_amount", "the context has no amount", false)
		}}, "decision-outcome", []string{"failure no_amount (permanent)", "give a --context it can decide on"}},
		{"batchable answering a decision", map[string]stepFunc{"etl.split": decide},
			"batch-outcome", []string{"without a batch_processing_outcome"}},
		{"batchable with a repeated batch id", map[string]stepFunc{"etl.split": plain(`{"batch_processing_outcome": {"type": "create_batches", "worker_template_name": "w", "cursor_configs": [` +
			`{"batch_id": "001", "start_cursor": 0, "end_cursor": 5, "batch_size": 5}, {"batch_id": "001", "start_cursor": 5, "end_cursor": 9, "batch_size": 4}]}}`)},
			"batch-outcome", []string{"the runner rejects", "batch_id"}},
		{"worker that never yields", map[string]stepFunc{"etl.work": plain(`{"rows": 50}`)},
			"yields", []string{"at once, without yielding", "--context"}},
		{"worker that yields without progress", map[string]stepFunc{"etl.work": func(*contracts.StepEnvelope) contracts.StepResult {
			return contracts.Yield(contracts.Checkpoint{Cursor: json.RawMessage(`20`), ItemsProcessed: 20})
		}}, "yields", []string{"call 2: resumed from checkpoint", "yielded the same checkpoint again: no progress"}},
		{"worker that restarts instead of resuming", map[string]stepFunc{"etl.work": func(env *contracts.StepEnvelope) contracts.StepResult {
			if env.Step.Checkpoint != nil {
				return contracts.Failure("lost", "cannot resume", true)
			}
			return work(env)
		}}, "yields", []string{"failure lost (retryable): cannot resume after 1 yields", "resuming from its last checkpoint"}},
		{"worker that yields without a checkpoint", map[string]stepFunc{"etl.work": func(*contracts.StepEnvelope) contracts.StepResult {
			return contracts.StepResult{Success: false, Status: contracts.StatusYielded}
		}}, "yields", []string{"call 1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			steps := map[string]stepFunc{"shop.decide": decide, "etl.split": split, "etl.work": work}
			for k, v := range tt.steps {
				steps[k] = v
			}
			cfg := dynamicConfig
			cfg.URL = serve(t, (&dynamicService{steps: steps}).handler())
			rep := run(t, cfg)
			wantStatuses(t, rep, conformance.Pass, with(notAsked, "decision-outcome", conformance.Pass, "batch-outcome", conformance.Pass,
				"yields", conformance.Pass, tt.failed, conformance.Fail))
			r := caseResult(t, rep, tt.failed).Reason
			for _, f := range tt.reason {
				if !strings.Contains(r, f) {
					t.Errorf("%s: reason %q lacks %q", tt.failed, r, f)
				}
			}
		})
	}
}

// dynamicRPC is the dynamic service over Connect and gRPC: the results go
// through protobuf (outcomes and checkpoints as google.protobuf.Struct).
type dynamicRPC struct {
	connectService
	d *dynamicService
}

func (s *dynamicRPC) Execute(ctx context.Context, req *connect.Request[handlerv1.ExecuteRequest]) (*connect.Response[handlerv1.ExecuteResponse], error) {
	m := req.Msg
	callable := m.GetStepDefinition().GetHandler().GetCallable()
	if _, ok := s.d.steps[callable]; !ok {
		return s.connectService.Execute(ctx, req)
	}
	env := &contracts.StepEnvelope{EventID: m.GetEventId()}
	env.Step.StepUUID, env.Step.Attempts = m.GetStep().GetStepUuid(), int(m.GetStep().GetAttempts())
	env.StepDefinition.Handler.Callable = callable
	var err error
	if env.Step.Inputs, err = m.GetStep().GetInputs().MarshalJSON(); err != nil {
		return nil, err
	}
	if cp := m.GetStep().GetCheckpoint(); cp != nil {
		if env.Step.Checkpoint, err = cp.MarshalJSON(); err != nil {
			return nil, err
		}
	}
	res := s.d.answer(env)
	out := &handlerv1.ExecuteResponse{StepUuid: env.Step.StepUUID, Success: res.Success, Status: res.Status}
	if len(res.Result) > 0 {
		out.Result = &structpb.Value{}
		if err := out.Result.UnmarshalJSON(res.Result); err != nil {
			return nil, err
		}
	}
	if len(res.Checkpoint) > 0 {
		out.Checkpoint = &structpb.Struct{}
		if err := out.Checkpoint.UnmarshalJSON(res.Checkpoint); err != nil {
			return nil, err
		}
	}
	return connect.NewResponse(out), nil
}

func TestDynamicCasesOverConnectAndGRPC(t *testing.T) {
	t.Parallel()
	for _, protocol := range []string{"connect", "grpc"} {
		t.Run(protocol, func(t *testing.T) {
			t.Parallel()
			d := &dynamicService{steps: map[string]stepFunc{"shop.decide": decide, "etl.split": split, "etl.work": work}}
			cfg := dynamicConfig
			cfg.URL, cfg.Protocol = serveConnect(t, &dynamicRPC{d: d}), protocol
			rep := run(t, cfg)
			wantStatuses(t, rep, conformance.Pass, with(notAsked, "decision-outcome", conformance.Pass, "batch-outcome", conformance.Pass,
				"yields", conformance.Pass, "deadline-passed", conformance.Skip))
			if r := caseResult(t, rep, "yields").Reason; !strings.Contains(r, "2 yields") {
				t.Errorf("yields: %q", r)
			}
		})
	}
}
