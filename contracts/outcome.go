package contracts

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"
)

// Outcome types of [DecisionPointOutcome.Type] and [BatchProcessingOutcome.Type]:
// Tasker's tags, so a handler written for Tasker returns the same JSON.
const (
	// OutcomeCreateSteps asks the runner to create the steps named in
	// [DecisionPointOutcome.StepNames].
	OutcomeCreateSteps = "create_steps"
	// OutcomeNoBranches creates nothing after a decision step.
	OutcomeNoBranches = "no_branches"
	// OutcomeCreateBatches asks the runner to create one worker step per
	// [CursorConfig] in [BatchProcessingOutcome.CursorConfigs].
	OutcomeCreateBatches = "create_batches"
	// OutcomeNoBatches creates no worker steps after a batchable step.
	OutcomeNoBatches = "no_batches"
)

// The keys of a result object under which the runner looks for outcomes.
const (
	decisionKey = "decision_point_outcome"
	batchKey    = "batch_processing_outcome"
)

// DecisionPointOutcome is result.decision_point_outcome of a decision step
// (template type: decision): which of the steps depending on it to create.
// Build one with [CreateSteps] or [NoBranches] and answer with
// [DecisionPointOutcome.Result].
type DecisionPointOutcome struct {
	// Type is [OutcomeCreateSteps] or [OutcomeNoBranches].
	Type string `json:"type"`
	// StepNames are the template steps to create, with [OutcomeCreateSteps].
	StepNames []string `json:"step_names,omitempty"`
}

// CreateSteps returns the outcome that creates the named template steps.
// Each must depend on the decision step; the runner also creates the steps
// that depend only on them and on steps that already exist.
func CreateSteps(names ...string) DecisionPointOutcome {
	return DecisionPointOutcome{Type: OutcomeCreateSteps, StepNames: names}
}

// NoBranches returns the outcome that creates no step: the workflow goes on
// without any of the decision's branches.
func NoBranches() DecisionPointOutcome {
	return DecisionPointOutcome{Type: OutcomeNoBranches}
}

// Result returns a successful [StepResult] whose Result is
// {"decision_point_outcome": o} merged with extra, so a decision step can
// report what it saw next to what it chose. extra may be nil; its own
// "decision_point_outcome" key is overwritten, and extra itself is not
// modified. If extra cannot be encoded as JSON the result is a permanent
// [ErrorTypeInvalidResponse] failure saying why: a handler bug should fail
// the step visibly rather than panic inside the handler.
func (o DecisionPointOutcome) Result(extra map[string]any) StepResult {
	return outcomeResult(decisionKey, o, extra)
}

// Validate reports the first problem that would make the runner reject o,
// as an [*FieldError] naming the field; nil when o is usable. It does not
// check the step names against the template (the runner does).
func (o DecisionPointOutcome) Validate() error {
	switch o.Type {
	case OutcomeCreateSteps:
		if len(o.StepNames) == 0 {
			return outcomeErr(decisionKey+".step_names", "empty: create_steps needs at least one step name (use no_branches to create none)")
		}
		seen := make(map[string]int, len(o.StepNames))
		for i, n := range o.StepNames {
			at := decisionKey + ".step_names[" + strconv.Itoa(i) + "]"
			if n == "" {
				return outcomeErr(at, "empty")
			}
			if j, dup := seen[n]; dup {
				return outcomeErr(at, fmt.Sprintf("%q repeats step_names[%d]", n, j))
			}
			seen[n] = i
		}
	case OutcomeNoBranches:
		if len(o.StepNames) > 0 {
			// Contradictory: silently dropping the names would hide a bug.
			return outcomeErr(decisionKey+".step_names", "must be empty with no_branches")
		}
	case "":
		return outcomeErr(decisionKey+".type", "missing")
	default:
		return outcomeErr(decisionKey+".type", fmt.Sprintf("%q is not %s or %s", o.Type, OutcomeCreateSteps, OutcomeNoBranches))
	}
	return nil
}

// BatchProcessingOutcome is result.batch_processing_outcome of a batchable
// step (template type: batchable): how to split its work into batch worker
// steps. Build one with [CreateBatches] or [NoBatches] and answer with
// [BatchProcessingOutcome.Result].
type BatchProcessingOutcome struct {
	// Type is [OutcomeCreateBatches] or [OutcomeNoBatches].
	Type string `json:"type"`
	// WorkerTemplateName is the batch_worker template step to instantiate
	// once per cursor config; it must depend on the batchable step.
	WorkerTemplateName string `json:"worker_template_name,omitempty"`
	// WorkerCount is len(CursorConfigs); Tasker sends it, so it is checked
	// when present rather than trusted.
	WorkerCount int `json:"worker_count,omitempty"`
	// CursorConfigs are the workers' slices of the data, one worker each.
	CursorConfigs []CursorConfig `json:"cursor_configs,omitempty"`
	// TotalItems is how many items the batches cover together; informational.
	TotalItems int64 `json:"total_items,omitempty"`
}

// CreateBatches returns the outcome that creates one workerTemplate step per
// cursor (named "<workerTemplate>_<batch_id>"), with WorkerCount set to
// len(cursors). See [EvenCursors] and [CursorsBySize] for integer ranges.
func CreateBatches(workerTemplate string, cursors []CursorConfig, totalItems int64) BatchProcessingOutcome {
	return BatchProcessingOutcome{
		Type:               OutcomeCreateBatches,
		WorkerTemplateName: workerTemplate,
		WorkerCount:        len(cursors),
		CursorConfigs:      cursors,
		TotalItems:         totalItems,
	}
}

// NoBatches returns the outcome that creates no worker step, for example
// when there is nothing to process.
func NoBatches() BatchProcessingOutcome {
	return BatchProcessingOutcome{Type: OutcomeNoBatches}
}

// Result returns a successful [StepResult] whose Result is
// {"batch_processing_outcome": o} merged with extra, as
// [DecisionPointOutcome.Result] does.
func (o BatchProcessingOutcome) Result(extra map[string]any) StepResult {
	return outcomeResult(batchKey, o, extra)
}

// batchIDPattern keeps batch ids usable in the worker step's name
// "<worker_template>_<batch_id>", which must be a valid step name.
var batchIDPattern = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,64}$`)

// Validate reports the first problem that would make the runner reject o,
// as an [*FieldError] naming the field; nil when o is usable. It does not
// check the worker template against the task template (the runner does).
func (o BatchProcessingOutcome) Validate() error {
	switch o.Type {
	case OutcomeCreateBatches:
		if o.WorkerTemplateName == "" {
			return outcomeErr(batchKey+".worker_template_name", "missing: create_batches needs the batch_worker step to instantiate")
		}
		if len(o.CursorConfigs) == 0 {
			return outcomeErr(batchKey+".cursor_configs", "empty: create_batches needs at least one cursor config (use no_batches to create none)")
		}
		if o.WorkerCount != 0 && o.WorkerCount != len(o.CursorConfigs) {
			return outcomeErr(batchKey+".worker_count", fmt.Sprintf("%d, but there are %d cursor_configs", o.WorkerCount, len(o.CursorConfigs)))
		}
		if o.TotalItems < 0 {
			return outcomeErr(batchKey+".total_items", fmt.Sprintf("%d is negative", o.TotalItems))
		}
		seen := make(map[string]int, len(o.CursorConfigs))
		for i, c := range o.CursorConfigs {
			at := batchKey + ".cursor_configs[" + strconv.Itoa(i) + "]"
			switch {
			case c.BatchID == "":
				return outcomeErr(at+".batch_id", "empty")
			case !batchIDPattern.MatchString(c.BatchID):
				return outcomeErr(at+".batch_id", fmt.Sprintf("%q: use at most 64 letters, digits, '_', '.' or '-' (it becomes part of a step name)", c.BatchID))
			case c.BatchSize < 0:
				return outcomeErr(at+".batch_size", fmt.Sprintf("%d is negative", c.BatchSize))
			case len(c.StartCursor) == 0:
				return outcomeErr(at+".start_cursor", "missing")
			case len(c.EndCursor) == 0:
				return outcomeErr(at+".end_cursor", "missing")
			}
			if j, dup := seen[c.BatchID]; dup {
				return outcomeErr(at+".batch_id", fmt.Sprintf("%q repeats cursor_configs[%d] (worker step names must be unique)", c.BatchID, j))
			}
			seen[c.BatchID] = i
		}
	case OutcomeNoBatches:
		if len(o.CursorConfigs) > 0 {
			return outcomeErr(batchKey+".cursor_configs", "must be empty with no_batches")
		}
	case "":
		return outcomeErr(batchKey+".type", "missing")
	default:
		return outcomeErr(batchKey+".type", fmt.Sprintf("%q is not %s or %s", o.Type, OutcomeCreateBatches, OutcomeNoBatches))
	}
	return nil
}

// Outcomes is how the runner reads both outcomes out of a result's `result`
// object; a nil field means the result has no such outcome.
type Outcomes struct {
	DecisionPointOutcome   *DecisionPointOutcome   `json:"decision_point_outcome,omitempty"`
	BatchProcessingOutcome *BatchProcessingOutcome `json:"batch_processing_outcome,omitempty"`
}

// FieldError is why a helper of this package rejected a JSON document:
// Field is the JSON path of the culprit, such as
// "batch_processing_outcome.cursor_configs[2].batch_id" (from [ParseOutcomes]
// and the Validate methods), "step.inputs.cursor.start_cursor" (from
// [StepEnvelope.BatchWorker]) or "step.checkpoint.items_processed" (from
// [StepEnvelope.ResumeFrom]). A runner turns it into a failure message as is.
type FieldError struct {
	Field   string
	Problem string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Problem }

func outcomeErr(field, problem string) error { return &FieldError{Field: field, Problem: problem} }

// ParseOutcomes decodes the outcomes from a [StepResult.Result]. A nil,
// empty, null or non-object result, or an object without the keys, has no
// outcome: zero [Outcomes] and a nil error (ordinary steps return anything).
// A key whose value is null is treated as absent, as Tasker does. A present
// but malformed outcome is an [*FieldError] naming the field, for example
// `decision_point_outcome.type: "maybe" is not create_steps or no_branches`.
// Unknown fields inside an outcome are ignored.
func ParseOutcomes(result json.RawMessage) (Outcomes, error) {
	var out Outcomes
	var obj map[string]json.RawMessage
	if firstByte(result) != '{' || json.Unmarshal(result, &obj) != nil {
		return out, nil // not an object (or not JSON the caller let through): no outcome
	}
	if raw, ok := obj[decisionKey]; ok && !isNull(raw) {
		d, err := parseDecision(raw)
		if err != nil {
			return Outcomes{}, err
		}
		out.DecisionPointOutcome = &d
	}
	if raw, ok := obj[batchKey]; ok && !isNull(raw) {
		b, err := parseBatch(raw)
		if err != nil {
			return Outcomes{}, err
		}
		out.BatchProcessingOutcome = &b
	}
	return out, nil
}

func parseDecision(raw json.RawMessage) (DecisionPointOutcome, error) {
	var o DecisionPointOutcome
	fields, err := objectFields(decisionKey, raw)
	if err != nil {
		return o, err
	}
	if o.Type, err = stringField(decisionKey+".type", fields["type"]); err != nil {
		return o, err
	}
	if v, ok := fields["step_names"]; ok && !isNull(v) {
		var items []json.RawMessage
		if firstByte(v) != '[' || json.Unmarshal(v, &items) != nil {
			return o, outcomeErr(decisionKey+".step_names", "not an array of step names (got "+kind(v)+")")
		}
		for i, it := range items {
			n, err := stringField(decisionKey+".step_names["+strconv.Itoa(i)+"]", it)
			if err != nil {
				return o, err
			}
			o.StepNames = append(o.StepNames, n)
		}
	}
	return o, o.Validate()
}

func parseBatch(raw json.RawMessage) (BatchProcessingOutcome, error) {
	var o BatchProcessingOutcome
	fields, err := objectFields(batchKey, raw)
	if err != nil {
		return o, err
	}
	if o.Type, err = stringField(batchKey+".type", fields["type"]); err != nil {
		return o, err
	}
	if v, ok := fields["worker_template_name"]; ok && !isNull(v) {
		if o.WorkerTemplateName, err = stringField(batchKey+".worker_template_name", v); err != nil {
			return o, err
		}
	}
	workerCountSent := false
	if v, ok := fields["worker_count"]; ok && !isNull(v) {
		n, err := countField(batchKey+".worker_count", v, maxCount)
		if err != nil {
			return o, err
		}
		o.WorkerCount, workerCountSent = int(n), true
	}
	if v, ok := fields["total_items"]; ok && !isNull(v) {
		if o.TotalItems, err = countField(batchKey+".total_items", v, maxItems); err != nil {
			return o, err
		}
	}
	if v, ok := fields["cursor_configs"]; ok && !isNull(v) {
		var items []json.RawMessage
		if firstByte(v) != '[' || json.Unmarshal(v, &items) != nil {
			return o, outcomeErr(batchKey+".cursor_configs", "not an array of cursor configs (got "+kind(v)+")")
		}
		for i, it := range items {
			c, err := parseCursor(batchKey+".cursor_configs["+strconv.Itoa(i)+"]", it)
			if err != nil {
				return o, err
			}
			o.CursorConfigs = append(o.CursorConfigs, c)
		}
	}
	if err := o.Validate(); err != nil {
		return o, err
	}
	if o.Type == OutcomeCreateBatches && workerCountSent && o.WorkerCount != len(o.CursorConfigs) {
		// Only a sent 0 gets here: Validate cannot tell it from an absent count.
		return o, outcomeErr(batchKey+".worker_count", fmt.Sprintf("%d, but there are %d cursor_configs", o.WorkerCount, len(o.CursorConfigs)))
	}
	return o, nil
}

// parseCursor decodes one cursor config, keeping start_cursor and
// end_cursor as the raw JSON values they are (null included).
func parseCursor(at string, raw json.RawMessage) (CursorConfig, error) {
	var c CursorConfig
	fields, err := objectFields(at, raw)
	if err != nil {
		return c, err
	}
	if c.BatchID, err = stringField(at+".batch_id", fields["batch_id"]); err != nil {
		return c, err
	}
	for _, f := range []struct {
		name string
		dst  *json.RawMessage
	}{{"start_cursor", &c.StartCursor}, {"end_cursor", &c.EndCursor}} {
		v, ok := fields[f.name]
		if !ok {
			return c, outcomeErr(at+"."+f.name, "missing")
		}
		*f.dst = bytes.Clone(v)
	}
	if v, ok := fields["batch_size"]; ok && !isNull(v) {
		n, err := countField(at+".batch_size", v, maxCount)
		if err != nil {
			return c, err
		}
		c.BatchSize = int(n)
	}
	return c, nil
}

// objectFields decodes raw as a JSON object, or says what it is instead.
func objectFields(at string, raw json.RawMessage) (map[string]json.RawMessage, error) {
	var m map[string]json.RawMessage
	if firstByte(raw) != '{' || json.Unmarshal(raw, &m) != nil {
		return nil, outcomeErr(at, "not an object (got "+kind(raw)+")")
	}
	return m, nil
}

// stringField decodes a required string; absent or null is "missing".
func stringField(at string, raw json.RawMessage) (string, error) {
	if raw == nil || isNull(raw) {
		return "", outcomeErr(at, "missing")
	}
	var s string
	if firstByte(raw) != '"' || json.Unmarshal(raw, &s) != nil {
		return "", outcomeErr(at, "not a string (got "+kind(raw)+")")
	}
	return s, nil
}

// Bounds of the counts decoded into an int and an int64.
const (
	maxCount = math.MaxInt
	maxItems = math.MaxInt64
)

// countField decodes a non-negative integer of at most limit.
func countField(at string, raw json.RawMessage, limit int64) (int64, error) {
	n, err := strconv.ParseInt(string(bytes.TrimSpace(raw)), 10, 64)
	if err != nil || n < 0 || n > limit {
		return 0, outcomeErr(at, fmt.Sprintf("not an integer from 0 to %d (got %s)", limit, excerpt(raw)))
	}
	return n, nil
}

func outcomeResult(key string, outcome any, extra map[string]any) StepResult {
	m := make(map[string]any, len(extra)+1)
	for k, v := range extra {
		m[k] = v
	}
	m[key] = outcome
	b, err := json.Marshal(m)
	if err != nil {
		return Failure(ErrorTypeInvalidResponse, "contracts: encoding the "+key+" result: "+err.Error(), false)
	}
	return StepResult{Success: true, Status: StatusCompleted, Result: b}
}

// firstByte returns the first non-space byte of raw, 0 when there is none.
func firstByte(raw []byte) byte {
	if t := bytes.TrimLeft(raw, " \t\r\n"); len(t) > 0 {
		return t[0]
	}
	return 0
}

func isNull(raw []byte) bool { return string(bytes.TrimSpace(raw)) == "null" }

// kind names the JSON type of raw for error messages.
func kind(raw []byte) string {
	switch firstByte(raw) {
	case '{':
		return "an object"
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	case 0:
		return "nothing"
	default:
		return "a number"
	}
}

// excerpt quotes at most 40 bytes of raw for an error message.
func excerpt(raw []byte) string {
	s := string(bytes.TrimSpace(raw))
	if len(s) > 40 {
		s = strings.ToValidUTF8(s[:40], "") + "..."
	}
	return s
}
