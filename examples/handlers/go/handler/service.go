// Package handler is the HTTP side of the Go example handler service
// (examples/handlers/go): it receives step envelopes from tasker-runner,
// runs the step function registered for step_definition.handler.callable
// and answers with a StepExecutionResult, as contracts/README.md describes.
//
// A step function returns its result value, or an error. A [*Failure]
// controls how the failure is reported (error type, retryable, an HTTP
// status such as 503 with Retry-After); any other error is a retryable
// handler_error. A [contracts.StepResult] value (from the helpers of
// package contracts: a decision or batch outcome, a checkpoint) is sent as
// it is.
package handler

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/tasker-runner/tasker-runner/contracts"
	"github.com/tasker-runner/tasker-runner/contracts/webhook"
)

// StepFunc runs one step.
type StepFunc func(ctx context.Context, env *contracts.StepEnvelope) (result any, err error)

// Failure is an error a StepFunc returns to fail its step in a chosen way.
type Failure struct {
	Type    string // error_type, e.g. "card_declined"
	Message string
	// Retryable false (the zero value) makes the failure permanent: the step
	// is dead-lettered whatever attempts remain.
	Retryable bool
	// Status, when set, is the HTTP status of a single-step answer (503,
	// 422...) instead of 200; in a batched call it becomes error.status_code.
	Status int
	// RetryAfter asks the runner to wait this long before the next attempt
	// (the Retry-After header, or orchestration_metadata.backoff_hint).
	RetryAfter time.Duration
}

func (f *Failure) Error() string { return f.Type + ": " + f.Message }

// MaxBodyBytes is the largest request body the service reads.
const MaxBodyBytes = 4 << 20

// Options configures [New].
type Options struct {
	// Secrets, when any, make the service verify the Standard Webhooks
	// signature of every step request (several during a rotation).
	Secrets []string
	// Steps by callable; default [Steps].
	Steps map[string]StepFunc
	// Logger; default slog.Default().
	Logger *slog.Logger
}

// New returns the service: POST / and POST /{callable} run steps (the
// callable comes from the envelope, the path is for the reader of access
// logs), GET /health answers 200.
func New(o Options) (http.Handler, error) {
	if o.Steps == nil {
		o.Steps = Steps()
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	var steps http.Handler = &service{steps: o.Steps, log: o.Logger}
	if len(o.Secrets) > 0 {
		v, err := webhook.NewVerifier(o.Secrets...)
		if err != nil {
			return nil, err
		}
		v.MaxBodyBytes = MaxBodyBytes
		steps = webhook.Middleware(v, steps)
	}
	mux := http.NewServeMux()
	mux.Handle("POST /", steps)
	mux.Handle("POST /{callable}", steps)
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, "ok\n") })
	return mux, nil
}

type service struct {
	steps map[string]StepFunc
	log   *slog.Logger
}

// request is a single envelope or a batch: {"steps": [...]}.
type request struct {
	contracts.StepEnvelope
	Steps []contracts.StepEnvelope `json:"steps"`
}

func (s *service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	// Work past Tasker-Deadline is wasted: the runner has stopped waiting
	// (it records a timeout and sends the step again).
	var expired bool
	if dl, err := time.Parse(time.RFC3339Nano, r.Header.Get("Tasker-Deadline")); err == nil {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, dl)
		defer cancel()
		expired = !time.Now().Before(dl)
	}
	var req request
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err == nil {
		err = json.Unmarshal(body, &req) // unknown fields are ignored
	}
	if err != nil {
		writeJSON(w, http.StatusBadRequest, failed(&Failure{Type: "bad_request", Message: "not a step envelope: " + err.Error()}))
		return
	}
	run := s.run
	if expired { // do not start: answer a retryable failure, the step comes again
		run = func(_ context.Context, env *contracts.StepEnvelope) (contracts.StepResult, int, time.Duration) {
			res := failed(&Failure{Type: "deadline_exceeded", Message: "Tasker-Deadline passed before the step started", Retryable: true})
			res.StepUUID = env.Step.StepUUID
			return res, http.StatusOK, 0
		}
	}
	if req.Steps != nil { // a batched call: one result per step, matched by step_uuid
		out := struct {
			Results []contracts.StepResult `json:"results"`
		}{Results: make([]contracts.StepResult, len(req.Steps))}
		for i := range req.Steps {
			res, _, _ := run(ctx, &req.Steps[i])
			out.Results[i] = res
		}
		writeJSON(w, http.StatusOK, out)
		return
	}
	res, status, retryAfter := run(ctx, &req.StepEnvelope)
	if retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(retryAfter.Seconds()))))
	}
	writeJSON(w, status, res)
}

// run runs one step and returns its result, with the HTTP status and
// Retry-After a single-step answer should carry.
func (s *service) run(ctx context.Context, env *contracts.StepEnvelope) (contracts.StepResult, int, time.Duration) {
	callable := env.StepDefinition.Handler.Callable
	log := s.log.With("callable", callable, "step_uuid", env.Step.StepUUID, "attempt", env.Step.Attempts)
	fn, ok := s.steps[callable]
	if !ok {
		log.Warn("no such callable")
		res := failed(&Failure{Type: "handler_not_found", Message: fmt.Sprintf("this service has no step %q", callable), Status: http.StatusNotFound})
		res.StepUUID = env.Step.StepUUID
		return res, http.StatusNotFound, 0
	}
	start := time.Now()
	value, err := fn(ctx, env)
	metadata, _ := json.Marshal(map[string]any{"execution_time_ms": time.Since(start).Milliseconds(), "handler": "examples/handlers/go"})
	res, f := answer(value, err)
	res.StepUUID, res.Metadata = env.Step.StepUUID, metadata
	switch {
	case f != nil:
		log.Info("step failed", "error_type", f.Type, "retryable", f.Retryable, "message", f.Message)
		return res, cmp.Or(f.Status, http.StatusOK), f.RetryAfter
	case isResult(value):
		log.Info("step answered", "status", res.Status)
	default:
		log.Info("step completed")
	}
	return res, http.StatusOK, 0
}

// Answer turns what a [StepFunc] returned into the step's result, as the
// service sends it: a contracts.StepResult (an outcome or a checkpoint from
// the contracts helpers) as it is, a [*Failure] as that failure, any other
// error as a retryable handler_error, anything else as the result of a
// success. The `make run` demo uses it to run these steps in process.
func Answer(value any, err error) contracts.StepResult {
	res, _ := answer(value, err)
	return res
}

func isResult(v any) bool { _, ok := v.(contracts.StepResult); return ok }

// answer is Answer, also returning the failure a StepFunc reported.
func answer(value any, err error) (contracts.StepResult, *Failure) {
	if err != nil {
		var f *Failure
		if !errors.As(err, &f) {
			f = &Failure{Type: "handler_error", Message: err.Error(), Retryable: true}
		}
		return failed(f), f
	}
	if res, ok := value.(contracts.StepResult); ok {
		return res, nil
	}
	result, err := json.Marshal(value)
	if err != nil {
		f := &Failure{Type: "handler_error", Message: "cannot encode the result: " + err.Error()}
		return failed(f), f
	}
	return contracts.StepResult{Success: true, Status: contracts.StatusCompleted, Result: result}, nil
}

// failed turns a Failure into a failed StepExecutionResult.
func failed(f *Failure) contracts.StepResult {
	res := contracts.Failure(f.Type, f.Message, f.Retryable)
	res.Error.StatusCode = f.Status
	if f.RetryAfter > 0 {
		res.OrchestrationMetadata = &contracts.OrchestrationMetadata{BackoffHint: &contracts.BackoffHint{
			DelaySeconds: f.RetryAfter.Seconds(), BackoffType: "server_requested",
		}}
	}
	return res
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
