package contracts

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
)

// CursorConfig is one batch worker's slice of the data: Tasker's
// CursorConfig. The cursors are any JSON value (offsets, ids, timestamps,
// page tokens) that the batchable step and its workers agree on; by
// convention StartCursor is inclusive and EndCursor exclusive.
type CursorConfig struct {
	// BatchID tells the batch from its siblings; the runner names the worker
	// step "<worker_template>_<batch_id>". See [BatchID].
	BatchID     string          `json:"batch_id"`
	StartCursor json.RawMessage `json:"start_cursor"`
	EndCursor   json.RawMessage `json:"end_cursor"`
	// BatchSize is how many items the batch covers; informational.
	BatchSize int `json:"batch_size"`
}

// BatchID returns the id of the n-th batch (1-based) in Tasker's
// convention: the number zero-padded to three digits, "001", "002", ...,
// "999", then "1000". Every helper that Tasker ships in Python, Ruby,
// TypeScript and Rust numbers batches this way, so worker steps are named
// like Tasker's ("process_batch_001").
func BatchID(n int) string { return fmt.Sprintf("%03d", n) }

// NewCursorConfig returns the cursor config of the n-th batch (1-based,
// named by [BatchID]) with start and end encoded as JSON: use it for cursors
// that are not integer offsets, such as timestamps or keys. It fails only
// when start or end cannot be encoded.
func NewCursorConfig(n int, start, end any, batchSize int) (CursorConfig, error) {
	s, err := json.Marshal(start)
	if err != nil {
		return CursorConfig{}, fmt.Errorf("contracts: batch %s: start_cursor: %w", BatchID(n), err)
	}
	e, err := json.Marshal(end)
	if err != nil {
		return CursorConfig{}, fmt.Errorf("contracts: batch %s: end_cursor: %w", BatchID(n), err)
	}
	return CursorConfig{BatchID: BatchID(n), StartCursor: s, EndCursor: e, BatchSize: batchSize}, nil
}

// intCursor is the n-th batch over the integer range [start, end).
func intCursor(n int, start, end int64) CursorConfig {
	return CursorConfig{
		BatchID:     BatchID(n),
		StartCursor: strconv.AppendInt(nil, start, 10),
		EndCursor:   strconv.AppendInt(nil, end, 10),
		BatchSize:   int(end - start),
	}
}

// EvenCursors splits the items [0, total) into workers contiguous integer
// ranges as even as possible: sizes differ by at most one, larger ones
// first. It never makes more batches than items, so every worker has work;
// workers below 1 means 1, and a total of 0 or less gives nil (answer
// [NoBatches] then). Start cursors are inclusive and end cursors exclusive.
//
// Tasker's create_cursor_configs uses ceiling division instead, which can
// leave the last worker nearly idle (10 items on 4 workers: 3, 3, 3, 1;
// here 3, 3, 2, 2) or use fewer workers than asked (10 on 6: five of 2;
// here 2, 2, 2, 2, 1, 1).
func EvenCursors(total int64, workers int) []CursorConfig {
	if total <= 0 {
		return nil
	}
	w := int64(max(workers, 1))
	w = min(w, total)
	base, extra := total/w, total%w
	out := make([]CursorConfig, 0, w)
	var start int64
	for i := range w {
		size := base
		if i < extra {
			size++
		}
		out = append(out, intCursor(int(i)+1, start, start+size))
		start += size
	}
	return out
}

// CursorsBySize splits the items [0, total) into consecutive integer ranges
// of size items, the last one shorter when size does not divide total. A
// size below 1 means one batch of everything; a total of 0 or less gives
// nil. It makes ceil(total/size) batches, one worker step each: choose size
// with that in mind.
func CursorsBySize(total int64, size int) []CursorConfig {
	if total <= 0 {
		return nil
	}
	sz := int64(size)
	if sz < 1 || sz > total {
		sz = total
	}
	out := make([]CursorConfig, 0, (total+sz-1)/sz)
	for start, n := int64(0), 1; start < total; start, n = start+sz, n+1 {
		out = append(out, intCursor(n, start, min(start+sz, total)))
	}
	return out
}

// IntRange returns the cursor's integer start and end, as made by
// [EvenCursors] and [CursorsBySize]. It fails, naming the cursor, when
// either is not a JSON integer or end is before start.
func (c CursorConfig) IntRange() (start, end int64, err error) {
	if start, err = intValue(c.StartCursor); err != nil {
		return 0, 0, fmt.Errorf("contracts: batch %q: start_cursor: %w", c.BatchID, err)
	}
	if end, err = intValue(c.EndCursor); err != nil {
		return 0, 0, fmt.Errorf("contracts: batch %q: end_cursor: %w", c.BatchID, err)
	}
	if end < start {
		return 0, 0, fmt.Errorf("contracts: batch %q: end_cursor %d is before start_cursor %d", c.BatchID, end, start)
	}
	return start, end, nil
}

// intValue decodes a JSON integer (no fraction, no exponent).
func intValue(raw json.RawMessage) (int64, error) {
	n, err := strconv.ParseInt(string(bytes.TrimSpace(raw)), 10, 64)
	if err != nil {
		if len(bytes.TrimSpace(raw)) == 0 {
			return 0, fmt.Errorf("missing")
		}
		return 0, fmt.Errorf("%s is not an integer", excerpt(raw))
	}
	return n, nil
}

// BatchWorkerInputs is what the runner puts in a batch worker step's
// inputs ([StepInfo.Inputs]), in Tasker's shape: the worker's cursor and
// the batch_config of its template step. Read it with
// [StepEnvelope.BatchWorker].
type BatchWorkerInputs struct {
	Cursor        CursorConfig  `json:"cursor"`
	BatchMetadata BatchMetadata `json:"batch_metadata"`
	// IsNoOp marks a placeholder worker with nothing to process: answer
	// success at once. Tasker creates one for a no_batches outcome.
	IsNoOp bool `json:"is_no_op"`
}

// BatchMetadata is the part of the worker template's batch_config a worker
// needs.
type BatchMetadata struct {
	// CursorField is the field the cursors range over, such as "id".
	CursorField string `json:"cursor_field"`
	// FailureStrategy is "continue_on_failure", "fail_fast" or "isolate":
	// what a failed worker means for the batch.
	FailureStrategy string `json:"failure_strategy"`
}

// BatchWorker decodes e.Step.Inputs as [BatchWorkerInputs]. For handlers
// written against the flat form (the cursor config itself as the inputs,
// which Tasker's TypeScript worker also accepts) inputs with a top-level
// batch_id and no cursor are read as the cursor, with empty metadata. It
// fails with a [*FieldError] naming what is wrong, for example
// "step.inputs.cursor: missing" when the step is not a batch worker.
func (e *StepEnvelope) BatchWorker() (BatchWorkerInputs, error) {
	var in BatchWorkerInputs
	const at = "step.inputs"
	if len(bytes.TrimSpace(e.Step.Inputs)) == 0 || isNull(e.Step.Inputs) {
		return in, outcomeErr(at, fmt.Sprintf("empty: step %q is not a batch worker", e.Step.Name))
	}
	fields, err := objectFields(at, e.Step.Inputs)
	if err != nil {
		return in, err
	}
	raw, nested := fields["cursor"]
	if !nested {
		if _, flat := fields["batch_id"]; !flat {
			return in, outcomeErr(at+".cursor", fmt.Sprintf("missing: step %q is not a batch worker", e.Step.Name))
		}
		in.Cursor, err = parseWorkerCursor(at, e.Step.Inputs)
		return in, err
	}
	if in.Cursor, err = parseWorkerCursor(at+".cursor", raw); err != nil {
		return in, err
	}
	if raw, ok := fields["batch_metadata"]; ok && !isNull(raw) {
		meta, err := objectFields(at+".batch_metadata", raw)
		if err != nil {
			return in, err
		}
		for _, f := range []struct {
			name string
			dst  *string
		}{{"cursor_field", &in.BatchMetadata.CursorField}, {"failure_strategy", &in.BatchMetadata.FailureStrategy}} {
			if v, ok := meta[f.name]; ok && !isNull(v) {
				if *f.dst, err = stringField(at+".batch_metadata."+f.name, v); err != nil {
					return in, err
				}
			}
		}
	}
	if raw, ok := fields["is_no_op"]; ok && !isNull(raw) {
		if err := json.Unmarshal(raw, &in.IsNoOp); err != nil {
			return in, outcomeErr(at+".is_no_op", "not a boolean (got "+kind(raw)+")")
		}
	}
	return in, nil
}

// parseWorkerCursor is parseCursor with the batch_id checks of an outcome.
func parseWorkerCursor(at string, raw json.RawMessage) (CursorConfig, error) {
	c, err := parseCursor(at, raw)
	if err == nil && c.BatchID == "" {
		err = outcomeErr(at+".batch_id", "empty")
	}
	return c, err
}
