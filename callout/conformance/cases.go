package conformance

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/tasker-runner/tasker-runner/callout"
	"github.com/tasker-runner/tasker-runner/contracts"
	handlerv1 "github.com/tasker-runner/tasker-runner/contracts/gen/tasker/handler/v1"
	"github.com/tasker-runner/tasker-runner/contracts/webhook"
)

// AnswerRule is the requirement the ordinary cases share; their
// [Case.Requirement] refers to it as "the answer rule".
const AnswerRule = "answer within the deadline with a StepExecutionResult valid against contracts/schema/step-result.schema.json " +
	"(success true or false: a business failure is a valid answer), or report a failure the contract classifies: an error " +
	"status (not 401, 403, 404 or a redirect) whose body is a failed StepExecutionResult, 429 or 503 with Retry-After, or " +
	"the Connect/gRPC codes UNAVAILABLE, RESOURCE_EXHAUSTED or ABORTED"

var catalogue = []Case{
	{
		Name:        "minimal-envelope",
		Description: "one step envelope with every required field and no optional one: a root step, attempt 1 of 3, the configured task context, empty inputs, no dependency results",
		Requirement: "the answer rule.",
		run:         (*suite).minimalEnvelope,
	},
	{
		Name:        "full-envelope",
		Description: "an envelope with every optional field set: parent_correlation_id, priority, tags, batch cursor inputs, a checkpoint to resume from, handler method and initialization, timeout_seconds",
		Requirement: "the answer rule.",
		run:         (*suite).fullEnvelope,
	},
	{
		Name:        "dependency-results",
		Description: "a step with two direct dependencies and a transitive ancestor in dependency_results (an object result, an absent result, a string result with metadata)",
		Requirement: "the answer rule.",
		run:         (*suite).dependencyResults,
	},
	{
		Name:        "retry-attempt",
		Description: "the minimal-envelope step again, as its second attempt: same step_uuid (Idempotency-Key), new event_id, step.attempts 2 and Tasker-Attempt: 2",
		Requirement: "the answer rule; a handler that deduplicates on step_uuid may answer with the first attempt's result.",
		run:         (*suite).retryAttempt,
	},
	{
		Name:        "idempotent-redelivery",
		Description: "the minimal-envelope step delivered again exactly as the first time (same step_uuid, Idempotency-Key and attempt, new event_id), as after a lost answer",
		Requirement: "the answer rule, with the same answer as the first delivery: the same success and status, the same result (JSON-equal), the same error_type and retryable; metadata may differ. Make side effects idempotent on step_uuid: do them once and answer a repeat as the first time (or derive ids from step_uuid).",
		run:         (*suite).idempotentRedelivery,
	},
	{
		Name:        "unknown-fields",
		Description: "an envelope with fields the contract does not define at every level (envelope, task, step, step_definition, handler, dependency result); unknown protobuf fields over Connect/gRPC",
		Requirement: "the answer rule, ignoring the unknown fields (the contract grows by adding optional ones); if minimal-envelope got a result this must get one too, so a strict decoder's 400 fails.",
		run:         (*suite).unknownFields,
	},
	{
		Name:        "large-context",
		Description: fmt.Sprintf("an envelope whose task context is about %d KiB (the configured context plus a conformance_padding array)", LargeContextBytes>>10),
		Requirement: "the answer rule, or a clean rejection within the deadline: 400, 413 or 422 (Connect/gRPC: INVALID_ARGUMENT, FAILED_PRECONDITION, OUT_OF_RANGE); a 5xx, a reset connection or a timeout fails.",
		run:         (*suite).largeContext,
	},
	{
		Name:        "concurrent-calls",
		Description: fmt.Sprintf("%d envelopes of different steps sent at once, as a runner dispatching in parallel does", ConcurrentCalls),
		Requirement: "the answer rule, for every call.",
		run:         (*suite).concurrentCalls,
	},
	{
		Name:        "deadline-passed",
		Description: "over HTTP: an envelope whose Tasker-Deadline passed a minute before it was sent (the runner has given up on it and will send the step again)",
		Requirement: "do not run the step: answer a retryable failure at once (a failed StepExecutionResult whose retryable is not false, or 408, 503 or 504), not a success, a checkpoint or a permanent failure. Check Tasker-Deadline before starting work and bound the work by it.",
		run:         (*suite).deadlinePassed,
	},
	{
		Name:        "batch",
		Description: fmt.Sprintf(`only with --batch (Config.Batch): one batched call of %d steps, {"steps": [...]} over HTTP or ExecuteBatch over Connect/gRPC, then one of a single step (an endpoint with batch_max > 1 gets the batch shape even for one step)`, BatchSize),
		Requirement: `answer 200 with {"results": [...]} valid against contracts/schema/batch-response.schema.json: exactly one StepExecutionResult per step, each carrying its step's step_uuid (any order); or report a failure of the whole call as a single call may.`,
		run:         (*suite).batch,
	},
	{
		Name:        "decision-outcome",
		Description: "only with --decision CALLABLE (Config.Decision): an envelope for that decision step, with the configured task context",
		Requirement: `answer success with a result holding a decision_point_outcome the runner accepts: {"type": "create_steps", "step_names": [...]} (at least one name, none repeated) or {"type": "no_branches"} (contracts/README.md#decision-and-batch-outcomes). Give a --context the step can decide on.`,
		run:         (*suite).decisionOutcome,
	},
	{
		Name:        "batch-outcome",
		Description: "only with --batchable CALLABLE (Config.Batchable): an envelope for that batchable step, with the configured task context",
		Requirement: `answer success with a result holding a batch_processing_outcome the runner accepts: create_batches with a worker_template_name and cursor configs with unique batch ids (worker_count, if present, equal to their number), or no_batches.`,
		run:         (*suite).batchOutcome,
	},
	{
		Name:        "yields",
		Description: "only with --yielding CALLABLE (Config.Yielding): a batch worker's envelope for that step (step.inputs {cursor, batch_metadata, is_no_op}: the first cursor of batch-outcome's answer, else rows 0 to 1000), then, while it yields, the same step again with step.checkpoint set to its last checkpoint, attempt unchanged, as the runner does",
		Requirement: fmt.Sprintf(`yield at least once ({"success": false, "status": "yielded", "checkpoint": {...}}), each checkpoint different from the one it resumed from (progress), and finish with success within %d calls.`, MaxYieldCalls),
		run:         (*suite).yields,
	},
	{
		Name:        "signature-rotation",
		Description: "only with --secret (Config.Secret), over HTTP: a request signed twice, as during a secret rotation: first with a secret the handler does not know, then with its own (every other case is signed with its secret alone)",
		Requirement: "accept it (a request is genuine when any of its signatures matches): the answer rule.",
		run:         (*suite).signatureRotation,
	},
	{
		Name:        "unsigned-rejected",
		Description: "only with --secret, over HTTP: the minimal envelope without webhook-id, webhook-timestamp and webhook-signature",
		Requirement: "answer 401 (403 is accepted too) without running the step.",
		run:         (*suite).unsignedRejected,
	},
	{
		Name:        "tampered-body-rejected",
		Description: "only with --secret, over HTTP: a signed request whose body was changed after signing (its signature is of the same envelope for another step_uuid)",
		Requirement: "verify the signature over the raw body and answer 401 (or 403) without running the step.",
		run:         (*suite).tamperedBodyRejected,
	},
	{
		Name:        "stale-timestamp-rejected",
		Description: "only with --secret, over HTTP: a correctly signed request whose webhook-timestamp is 10 minutes old (a replay)",
		Requirement: "reject timestamps more than 5 minutes from the clock: answer 401 (or 403) without running the step.",
		run:         (*suite).staleTimestampRejected,
	},
}

// expectResult is the pass rule of the ordinary cases.
func (s *suite) expectResult(v verdict) (Status, string) {
	switch v.class {
	case classResult, classFailure:
		return Pass, v.text
	case classRejected:
		switch {
		case s.cfg.Protocol != ProtocolHTTP:
			return Fail, v.text + "; want a result (does the service need credentials the suite cannot send?)"
		case s.signer == nil:
			return Fail, v.text + "; want 200 with a StepExecutionResult (does the handler verify signatures? pass its secret with --secret)"
		default:
			return Fail, v.text + "; want 200 with a StepExecutionResult: the request carried a valid signature for the secret given (is it the handler's secret?)"
		}
	}
	return Fail, v.text
}

func (s *suite) minimalEnvelope(ctx context.Context) (Status, string) {
	env := s.envelope("minimal_envelope")
	s.first = env
	a := s.call(ctx, env, nil, s.sign())
	v := s.judge(a, env)
	s.baseline = v.class
	if v.class == classResult || v.class == classFailure {
		s.firstRes = &a.res
	}
	return s.expectResult(v)
}

func (s *suite) idempotentRedelivery(ctx context.Context) (Status, string) {
	if s.firstRes == nil {
		return Fail, "minimal-envelope got no answer to compare with: see its failure"
	}
	env := *s.first
	env.EventID = newID()
	a := s.call(ctx, &env, nil, s.sign())
	v := s.judge(a, &env)
	if st, reason := s.expectResult(v); st != Pass {
		return st, reason
	}
	if diff := answerDiff(*s.firstRes, a.res); diff != "" {
		return Fail, fmt.Sprintf("the same step (step_uuid %s, attempt %d) delivered twice got different answers: %s; "+
			"a step can be delivered more than once: make it idempotent on step_uuid (do its side effects once, answer a repeat as the first time, or derive ids from step_uuid)",
			env.Step.StepUUID, env.Step.Attempts, diff)
	}
	return Pass, "delivered twice, the same answer both times: " + summary(a.res)
}

// answerDiff says how two results of the same step differ in what the
// runner records of them (not metadata); "" when they do not.
func answerDiff(first, again contracts.StepResult) string {
	var diffs []string
	if first.Success != again.Success || first.Status != again.Status {
		diffs = append(diffs, fmt.Sprintf("first %s, then %s", summary(first), summary(again)))
	}
	if !jsonEqual(first.Result, again.Result) {
		diffs = append(diffs, fmt.Sprintf("result %s, then %s", excerpt(first.Result), excerpt(again.Result)))
	}
	if !jsonEqual(first.Checkpoint, again.Checkpoint) {
		diffs = append(diffs, fmt.Sprintf("checkpoint %s, then %s", excerpt(first.Checkpoint), excerpt(again.Checkpoint)))
	}
	if (first.Error == nil) != (again.Error == nil) ||
		(first.Error != nil && (first.Error.ErrorType != again.Error.ErrorType || first.Error.Retryable != again.Error.Retryable)) {
		diffs = append(diffs, fmt.Sprintf("first %s, then %s", summary(first), summary(again)))
	}
	return strings.Join(slices.Compact(diffs), "; ")
}

// jsonEqual compares two JSON values (absent and null alike).
func jsonEqual(a, b json.RawMessage) bool {
	var x, y any
	if len(bytes.TrimSpace(a)) == 0 {
		a = json.RawMessage("null")
	}
	if len(bytes.TrimSpace(b)) == 0 {
		b = json.RawMessage("null")
	}
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return bytes.Equal(a, b)
	}
	return reflect.DeepEqual(x, y)
}

// deadlineLayout is how the runner writes Tasker-Deadline.
const deadlineLayout = "2006-01-02T15:04:05.000Z07:00"

func (s *suite) deadlinePassed(ctx context.Context) (Status, string) {
	if s.cfg.Protocol != ProtocolHTTP {
		return Skip, "over Connect and gRPC the step's deadline is the RPC's, which the protocol enforces and which cannot be sent already past"
	}
	env := s.envelope("deadline_passed")
	passed := time.Now().Add(-time.Minute).UTC().Format(deadlineLayout)
	rec := &recorder{header: func(h http.Header) { h.Set(callout.HeaderDeadline, passed) }}
	a := s.call(ctx, env, rec, s.sign())
	v := s.judge(a, env)
	r := a.res
	sent := fmt.Sprintf("Tasker-Deadline %s (a minute before the request)", passed)
	switch {
	case v.class == classRejected || a.ex == nil || a.ex.status == 0:
		return s.expectResult(v)
	case r.Success || r.Status == contracts.StatusYielded:
		return Fail, fmt.Sprintf("with %s the handler ran the step and %s; the runner recorded handler_timeout at the deadline and will send the step again, so this work is wasted or done twice: "+
			"check Tasker-Deadline before starting a step and answer a retryable failure (contracts/README.md#deadlines)", sent, v.text)
	case r.Error != nil && !r.Error.Retryable:
		return Fail, fmt.Sprintf("with %s the handler %s: a permanent failure; the step is to be sent again, so answer a retryable failure (contracts/README.md#deadlines)", sent, v.text)
	case v.class == classResult || v.class == classFailure:
		return Pass, "did not run the step: " + v.text
	case a.ex.status == http.StatusRequestTimeout || a.ex.status == http.StatusServiceUnavailable || a.ex.status == http.StatusGatewayTimeout:
		return Pass, "did not run the step: answered " + statusText(a.ex.status) + " (retryable)"
	}
	return s.expectResult(v)
}

// outcomeAnswer calls callable with the configured context and reads the
// outcomes of its answer; st is set when the case is decided already.
func (s *suite) outcomeAnswer(ctx context.Context, callable, stepName, what string) (contracts.Outcomes, contracts.StepResult, Status, string) {
	env := s.envelope(stepName)
	env.StepDefinition.Handler.Callable = callable
	a := s.call(ctx, env, nil, s.sign())
	v := s.judge(a, env)
	if v.class != classResult && v.class != classFailure {
		st, reason := s.expectResult(v)
		return contracts.Outcomes{}, a.res, st, reason
	}
	if !a.res.Success || a.res.Status == contracts.StatusYielded {
		return contracts.Outcomes{}, a.res, Fail, fmt.Sprintf("callable %q %s; a %s step must answer success with its outcome (give a --context it can decide on)", callable, v.text, what)
	}
	outs, err := contracts.ParseOutcomes(a.res.Result)
	if err != nil {
		return outs, a.res, Fail, fmt.Sprintf("callable %q answered an outcome the runner rejects (the step would fail with invalid_outcome, never retried): %v; result %s", callable, err, excerpt(a.res.Result))
	}
	return outs, a.res, "", ""
}

func (s *suite) decisionOutcome(ctx context.Context) (Status, string) {
	if s.cfg.Decision == "" {
		return Skip, "not asked: name a decision step's callable with --decision (and a --context it decides on)"
	}
	outs, res, st, reason := s.outcomeAnswer(ctx, s.cfg.Decision, "decide", "decision")
	if st != "" {
		return st, reason
	}
	d := outs.DecisionPointOutcome
	if d == nil {
		return Fail, fmt.Sprintf(`callable %q answered success without a decision_point_outcome in its result (%s): the runner would create none of the steps that depend on it; answer {"decision_point_outcome": {"type": "create_steps", "step_names": [...]}} or {"type": "no_branches"}`,
			s.cfg.Decision, excerpt(res.Result))
	}
	if err := d.Validate(); err != nil {
		return Fail, fmt.Sprintf("callable %q answered a decision_point_outcome the runner rejects: %v", s.cfg.Decision, err)
	}
	if d.Type == contracts.OutcomeNoBranches {
		return Pass, "decision_point_outcome no_branches"
	}
	return Pass, fmt.Sprintf("decision_point_outcome create_steps %s", strings.Join(d.StepNames, ", "))
}

func (s *suite) batchOutcome(ctx context.Context) (Status, string) {
	if s.cfg.Batchable == "" {
		return Skip, "not asked: name a batchable step's callable with --batchable (and a --context it splits)"
	}
	outs, res, st, reason := s.outcomeAnswer(ctx, s.cfg.Batchable, "split", "batchable")
	if st != "" {
		return st, reason
	}
	b := outs.BatchProcessingOutcome
	if b == nil {
		return Fail, fmt.Sprintf(`callable %q answered success without a batch_processing_outcome in its result (%s): the runner would create no batch workers; answer {"batch_processing_outcome": {"type": "create_batches", ...}} or {"type": "no_batches"}`,
			s.cfg.Batchable, excerpt(res.Result))
	}
	if err := b.Validate(); err != nil {
		return Fail, fmt.Sprintf("callable %q answered a batch_processing_outcome the runner rejects: %v", s.cfg.Batchable, err)
	}
	if b.Type == contracts.OutcomeNoBatches {
		return Pass, "batch_processing_outcome no_batches"
	}
	s.cursor = &b.CursorConfigs[0]
	return Pass, fmt.Sprintf("batch_processing_outcome create_batches: %d workers %s_%s.., %d items", len(b.CursorConfigs), b.WorkerTemplateName, b.CursorConfigs[0].BatchID, b.TotalItems)
}

func (s *suite) yields(ctx context.Context) (Status, string) {
	if s.cfg.Yielding == "" {
		return Skip, "not asked: name a step that yields checkpoints (a batch worker) with --yielding"
	}
	cursor, from := DefaultCursor, "rows 0 to 1000"
	if s.cursor != nil {
		cursor, from = *s.cursor, "the first batch of batch-outcome"
	}
	inputs, err := json.Marshal(contracts.BatchWorkerInputs{
		Cursor: cursor, BatchMetadata: contracts.BatchMetadata{CursorField: "id", FailureStrategy: "continue_on_failure"},
	})
	if err != nil {
		return Fail, err.Error()
	}
	env := s.envelope("conformance_worker_" + cursor.BatchID)
	env.StepDefinition.Handler.Callable = s.cfg.Yielding
	env.Step.TemplateStepName = "conformance_worker"
	env.Step.Inputs = inputs
	yields := 0
	for call := 1; call <= MaxYieldCalls; call++ {
		a := s.call(ctx, env, nil, s.sign())
		v := s.judge(a, env)
		if v.class != classResult && v.class != classFailure {
			st, reason := s.expectResult(v)
			return st, fmt.Sprintf("call %d (after %d yields): %s", call, yields, reason)
		}
		r := a.res
		if r.Status != contracts.StatusYielded {
			switch {
			case yields == 0:
				return Fail, fmt.Sprintf("callable %q %s at once, without yielding (worker inputs from %s): name a step that yields, with a --context that gives it more than one call's work", s.cfg.Yielding, v.text, from)
			case !r.Success:
				return Fail, fmt.Sprintf("callable %q %s after %d yields, resuming from its last checkpoint %s", s.cfg.Yielding, v.text, yields, excerpt(env.Step.Checkpoint))
			}
			return Pass, fmt.Sprintf("%d yields (worker inputs from %s), each resumed from its checkpoint with attempt %d kept, then %s", yields, from, env.Step.Attempts, summary(r))
		}
		if len(bytes.TrimSpace(r.Checkpoint)) == 0 || jsonEqual(r.Checkpoint, nil) {
			return Fail, fmt.Sprintf("call %d: status yielded without a checkpoint; the runner fails such a step with invalid_handler_response", call)
		}
		if env.Step.Checkpoint != nil && jsonEqual(r.Checkpoint, env.Step.Checkpoint) {
			return Fail, fmt.Sprintf("call %d: resumed from checkpoint %s and yielded the same checkpoint again: no progress (the runner would call it again and again until max_yields_per_step fails it)", call, excerpt(r.Checkpoint))
		}
		yields++
		next := *env
		next.EventID = newID()
		next.Step.Checkpoint = r.Checkpoint
		env = &next
	}
	return Fail, fmt.Sprintf("callable %q still yields after %d calls", s.cfg.Yielding, MaxYieldCalls)
}

func (s *suite) fullEnvelope(ctx context.Context) (Status, string) {
	env := s.envelope("process_batch_001")
	env.Task.ParentCorrelationID = newID()
	env.Task.Priority = 5
	env.Task.Tags = []string{"conformance", "full-envelope"}
	env.Step.TemplateStepName = "process_batch"
	env.Step.Inputs = json.RawMessage(`{"batch_id": "001", "start_cursor": 0, "end_cursor": 500, "batch_size": 500}`)
	env.Step.Checkpoint = json.RawMessage(`{"cursor": 250, "items_processed": 250, "accumulated_results": {"total": 1234.5}}`)
	env.StepDefinition.Handler.Method = "call"
	env.StepDefinition.Handler.Initialization = map[string]any{"mode": "conformance", "retries": 2}
	env.StepDefinition.TimeoutSeconds = max(1, int((s.cfg.Timeout+time.Second-1)/time.Second))
	return s.expectResult(s.judge(s.call(ctx, env, nil, s.sign()), env))
}

// withDependencies adds dependency results to env.
func withDependencies(env *contracts.StepEnvelope) {
	env.StepDefinition.Dependencies = []string{"fetch_input", "enrich"}
	env.DependencyResults = map[string]contracts.StepResult{
		"fetch_input": {Success: true, Status: contracts.StatusCompleted, Result: json.RawMessage(`{"rows": 3, "valid": true}`)},
		"enrich":      {Success: true, Status: contracts.StatusCompleted},
		"start": {Success: true, Status: contracts.StatusCompleted, Result: json.RawMessage(`"started"`),
			Metadata: json.RawMessage(`{"execution_time_ms": 4}`)},
	}
}

func (s *suite) dependencyResults(ctx context.Context) (Status, string) {
	env := s.envelope("combine")
	withDependencies(env)
	return s.expectResult(s.judge(s.call(ctx, env, nil, s.sign()), env))
}

func (s *suite) retryAttempt(ctx context.Context) (Status, string) {
	env := *s.first
	env.EventID = newID()
	env.Step.Attempts = 2
	return s.expectResult(s.judge(s.call(ctx, &env, nil, s.sign()), &env))
}

func (s *suite) unknownFields(ctx context.Context) (Status, string) {
	env := s.envelope("unknown_fields")
	withDependencies(env)
	rec := &recorder{mutate: addUnknownJSON}
	if s.cfg.Protocol != ProtocolHTTP {
		rec.mutate = addUnknownProto
	}
	if s.signer != nil {
		rec.resign = func(h http.Header, body []byte) { s.signer.Sign(h, h.Get(webhook.HeaderID), time.Now(), body) }
	}
	v := s.judge(s.call(ctx, env, rec, s.sign()), env)
	status, reason := s.expectResult(v)
	if status == Pass && s.baseline == classResult && v.class != classResult {
		return Fail, reason + "; but minimal-envelope, the same envelope without unknown fields, got a result: ignore fields you do not know"
	}
	return status, reason
}

// unknownJSON is the value of every added field.
var unknownJSON = map[string]any{"added_by": "tasker-runner conformance", "values": []any{1, "two", nil, true}}

// addUnknownJSON adds x_conformance_unknown to every object of an envelope.
func addUnknownJSON(_ string, body []byte) ([]byte, error) {
	var m map[string]any
	d := json.NewDecoder(bytes.NewReader(body))
	d.UseNumber()
	if err := d.Decode(&m); err != nil {
		return nil, err
	}
	add := func(v any) {
		if o, ok := v.(map[string]any); ok {
			o["x_conformance_unknown"] = unknownJSON
		}
	}
	add(m)
	m["x_conformance_version"] = 99
	add(m["task"])
	add(m["step"])
	if sd, ok := m["step_definition"].(map[string]any); ok {
		add(sd)
		add(sd["handler"])
	}
	if deps, ok := m["dependency_results"].(map[string]any); ok {
		for _, r := range deps {
			add(r)
		}
	}
	return json.Marshal(m)
}

// addUnknownProto adds unknown fields to every message of an
// ExecuteRequest, sent as Connect (application/proto) or gRPC.
func addUnknownProto(contentType string, body []byte) ([]byte, error) {
	grpc := strings.HasPrefix(contentType, "application/grpc")
	msg := body
	if grpc {
		if len(body) < 5 || body[0] != 0 || int(binary.BigEndian.Uint32(body[1:5])) != len(body)-5 {
			return nil, errors.New("not a single uncompressed gRPC message")
		}
		msg = body[5:]
	} else if contentType != "application/proto" {
		return nil, fmt.Errorf("unexpected content type %q", contentType)
	}
	var req handlerv1.ExecuteRequest
	if err := proto.Unmarshal(msg, &req); err != nil {
		return nil, err
	}
	unknown := protowire.AppendTag(nil, 4242, protowire.BytesType)
	unknown = protowire.AppendString(unknown, "added by tasker-runner conformance")
	unknown = protowire.AppendTag(unknown, 4243, protowire.VarintType)
	unknown = protowire.AppendVarint(unknown, 99)
	msgs := []proto.Message{&req}
	if req.Task != nil {
		msgs = append(msgs, req.Task)
	}
	if req.Step != nil {
		msgs = append(msgs, req.Step)
	}
	if req.StepDefinition != nil {
		msgs = append(msgs, req.StepDefinition)
		if req.StepDefinition.Handler != nil {
			msgs = append(msgs, req.StepDefinition.Handler)
		}
	}
	for _, r := range req.DependencyResults {
		if r != nil {
			msgs = append(msgs, r)
		}
	}
	for _, m := range msgs {
		r := m.ProtoReflect()
		r.SetUnknown(append(r.GetUnknown(), unknown...))
	}
	out, err := proto.Marshal(&req)
	if err != nil {
		return nil, err
	}
	if grpc {
		frame := make([]byte, 5, 5+len(out))
		binary.BigEndian.PutUint32(frame[1:], uint32(len(out)))
		out = append(frame, out...)
	}
	return out, nil
}

func (s *suite) largeContext(ctx context.Context) (Status, string) {
	env := s.envelope("large_context")
	big, err := padContext(s.cfg.Context, LargeContextBytes)
	if err != nil {
		return Fail, "cannot build the context: " + err.Error()
	}
	env.Task.Context = big
	v := s.judge(s.call(ctx, env, nil, s.sign()), env)
	size := fmt.Sprintf("a %d KiB context", len(big)>>10)
	switch {
	case v.class == classResult || v.class == classFailure:
		return Pass, size + ": " + v.text
	case s.cfg.Protocol == ProtocolHTTP && (v.status == http.StatusBadRequest || v.status == http.StatusRequestEntityTooLarge || v.status == http.StatusUnprocessableEntity):
		return Pass, size + ": rejected cleanly with " + statusText(v.status)
	case s.cfg.Protocol != ProtocolHTTP && (v.code == "invalid_argument" || v.code == "failed_precondition" || v.code == "out_of_range"):
		return Pass, size + ": rejected cleanly with " + strings.ToUpper(v.code)
	}
	status, reason := s.expectResult(v)
	return status, size + ": " + reason + "; accept it, or reject it cleanly with 413"
}

// padContext returns ctx (a JSON object) with a conformance_padding array
// that makes it at least size bytes.
func padContext(ctx json.RawMessage, size int) (json.RawMessage, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(ctx, &m); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteByte('[')
	note := strings.Repeat("x", 64)
	for i := 0; b.Len() < size; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"index":%d,"sku":"SKU-%06d","quantity":%d,"note":"%s"}`, i, i, i%7+1, note)
	}
	b.WriteByte(']')
	m["conformance_padding"] = b.Bytes()
	return json.Marshal(m)
}

func (s *suite) concurrentCalls(ctx context.Context) (Status, string) {
	verdicts := make([]verdict, ConcurrentCalls)
	var wg sync.WaitGroup
	for i := range verdicts {
		env := s.envelope(fmt.Sprintf("concurrent_%d", i+1))
		wg.Go(func() { verdicts[i] = s.judge(s.call(ctx, env, nil, s.sign()), env) })
	}
	wg.Wait()
	var failed []string
	for i, v := range verdicts {
		if st, reason := s.expectResult(v); st != Pass {
			failed = append(failed, fmt.Sprintf("call %d: %s", i+1, reason))
		}
	}
	if len(failed) > 0 {
		return Fail, fmt.Sprintf("%d of %d calls at once failed; %s", len(failed), ConcurrentCalls, failed[0])
	}
	return Pass, fmt.Sprintf("%d calls at once, every one %s", ConcurrentCalls, verdicts[0].text)
}

func (s *suite) batch(ctx context.Context) (Status, string) {
	if !s.cfg.Batch {
		return Skip, `not asked: run with --batch when the endpoint is registered with batch_max > 1 (it then receives {"steps": [...]})`
	}
	envs := make([]*contracts.StepEnvelope, BatchSize)
	for i := range envs {
		envs[i] = s.envelope(fmt.Sprintf("batch_item_%d", i+1))
	}
	envs[1].Step.Attempts = 2
	withDependencies(envs[2])
	rec := &recorder{}
	inv, err := s.newInvoker(rec, s.sign())
	if err != nil {
		return Fail, err.Error()
	}
	cctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	results := inv.InvokeBatch(cctx, envs)
	a := answer{res: results[0], ex: rec.last()}

	procedure := "ExecuteBatch"
	var v verdict
	if s.cfg.Protocol == ProtocolHTTP {
		v = s.judgeBatchHTTP(a)
	} else {
		v = s.judgeRPC(a, procedure)
	}
	if v.class != classResult {
		return s.expectResult(v)
	}
	var parts []string
	for i, r := range results {
		if !r.Success && r.Error != nil && r.Error.ErrorType == contracts.ErrorTypeInvalidResponse {
			return Fail, fmt.Sprintf("step %d of %d (%s): %s", i+1, len(envs), envs[i].Step.StepUUID, r.Error.Message)
		}
		parts = append(parts, summary(r))
	}
	first := fmt.Sprintf("%d steps in one call: %s; results matched by step_uuid: %s", len(envs), v.text, strings.Join(parts, ", "))

	// A lone step still comes in the batch shape.
	lone := s.envelope("batch_alone")
	rec = &recorder{}
	if inv, err = s.newInvoker(rec, s.sign()); err != nil {
		return Fail, err.Error()
	}
	lctx, lcancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer lcancel()
	results = inv.InvokeBatch(lctx, []*contracts.StepEnvelope{lone})
	a = answer{res: results[0], ex: rec.last()}
	if s.cfg.Protocol == ProtocolHTTP {
		v = s.judgeBatchHTTP(a)
	} else {
		v = s.judgeRPC(a, procedure)
	}
	if v.class != classResult {
		st, reason := s.expectResult(v)
		return st, first + "; then a batch of one step: " + reason
	}
	if r := results[0]; !r.Success && r.Error != nil && r.Error.ErrorType == contracts.ErrorTypeInvalidResponse {
		return Fail, first + "; then a batch of one step (Tasker-Batch-Size: 1, which an endpoint with batch_max > 1 gets when one step is ready): " + r.Error.Message
	}
	return Pass, first + "; a batch of one step: " + summary(results[0])
}

// judgeBatchHTTP classifies the answer to a batched HTTP call as a whole.
func (s *suite) judgeBatchHTTP(a answer) verdict {
	ex := a.ex
	if ex == nil || ex.status == 0 || ex.status < 200 || ex.status > 299 {
		return s.judge(a, &contracts.StepEnvelope{})
	}
	st := statusText(ex.status)
	if len(bytes.TrimSpace(ex.body)) == 0 {
		return verdict{class: classResult, status: ex.status, text: "answered " + st + " with an empty body (every step succeeds with a null result)"}
	}
	if probs := schemaProblems(batchSchema, ex.body); len(probs) > 0 {
		return verdict{class: classBroken, status: ex.status, text: fmt.Sprintf(
			`POST %s answered %s with a body that is not a batch response: %s; body %s; want {"results": [<StepExecutionResult with step_uuid>...]}`,
			ex.url, st, strings.Join(probs, "; "), excerpt(ex.body))}
	}
	return verdict{class: classResult, status: ex.status, text: "answered " + st}
}

// signatureSkip returns why a signature case does not apply, if it does not.
func (s *suite) signatureSkip() string {
	switch {
	case s.cfg.Protocol != ProtocolHTTP:
		return "Connect and gRPC calls are not signed"
	case s.signer == nil:
		return "no secret: pass the handler's secret with --secret to check that it verifies signatures"
	}
	return ""
}

func (s *suite) signatureRotation(ctx context.Context) (Status, string) {
	if why := s.signatureSkip(); why != "" {
		return Skip, why
	}
	rotating, err := callout.NewRequestSigner([]string{webhook.NewSecret(), s.cfg.Secret})
	if err != nil {
		return Fail, err.Error()
	}
	env := s.envelope("signature_rotation")
	v := s.judge(s.call(ctx, env, nil, rotating.Sign), env)
	if v.class == classRejected {
		return Fail, v.text + "; want 200: the second signature is valid, and during a secret rotation the runner signs with the new and the old secret: accept a request when any signature matches"
	}
	return s.expectResult(v)
}

// expectRejected is the pass rule of the cases a verifying handler refuses.
func (s *suite) expectRejected(ctx context.Context, what string, sign signFunc, env *contracts.StepEnvelope) (Status, string) {
	a := s.call(ctx, env, nil, sign)
	v := s.judge(a, env)
	switch {
	case v.class == classRejected:
		return Pass, "rejected: " + v.text
	case v.status >= 200 && v.status <= 299:
		return Fail, fmt.Sprintf("POST %s accepted a request %s (answered %s); want 401: verify the Standard Webhooks signature over the raw body before running the step (contracts/webhook.Middleware does)",
			a.ex.url, what, statusText(v.status))
	}
	return Fail, v.text + "; want 401 Unauthorized"
}

func (s *suite) unsignedRejected(ctx context.Context) (Status, string) {
	if why := s.signatureSkip(); why != "" {
		return Skip, why
	}
	return s.expectRejected(ctx, "without a signature", nil, s.envelope("unsigned"))
}

func (s *suite) tamperedBodyRejected(ctx context.Context) (Status, string) {
	if why := s.signatureSkip(); why != "" {
		return Skip, why
	}
	env := s.envelope("tampered_body")
	other := []byte(newID())
	sign := func(h http.Header, id string, ts time.Time, body []byte) {
		s.signer.Sign(h, id, ts, bytes.ReplaceAll(body, []byte(env.Step.StepUUID), other))
	}
	return s.expectRejected(ctx, "whose body does not match its signature", sign, env)
}

func (s *suite) staleTimestampRejected(ctx context.Context) (Status, string) {
	if why := s.signatureSkip(); why != "" {
		return Skip, why
	}
	sign := func(h http.Header, id string, ts time.Time, body []byte) {
		s.signer.Sign(h, id, ts.Add(-10*time.Minute), body)
	}
	return s.expectRejected(ctx, "signed 10 minutes ago", sign, s.envelope("stale_timestamp"))
}
