package callout

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tasker-runner/tasker-runner/contracts"
)

// BatchRequest is the body of a batched HTTP call: {"steps":[<envelope>...]}.
type BatchRequest struct {
	Steps []*contracts.StepEnvelope `json:"steps"`
}

// BatchResponse is the answer to a batched call: {"results":[<result>...]},
// one result per step in any order, each with step_uuid set.
type BatchResponse struct {
	Results []contracts.StepResult `json:"results"`
}

// BatchInvoker runs several steps in one call. The result slice has one
// entry per envelope, in the same order; failures are failed results, never
// panics. ctx carries the deadline of the whole call.
type BatchInvoker interface {
	InvokeBatch(ctx context.Context, envs []*contracts.StepEnvelope) []contracts.StepResult
}

// InvokeBatch implements [BatchInvoker]: it POSTs {"steps":[...]} and matches
// the {"results":[...]} by step_uuid. Steps whose callables resolve to
// different URLs (the endpoint URL has {callable}) go in one call per URL,
// made concurrently.
//
//   - a step without a result: retryable invalid_handler_response for that
//     step only (the message lists results for unknown steps, if any);
//   - a step with several results: permanent invalid_handler_response;
//   - a result for a step not in the call: ignored;
//   - a result that is not a valid step result: permanent
//     invalid_handler_response for its step;
//   - a failed call (status, connection, timeout, malformed or oversized
//     body): every step gets the failure [ClassifyResponse] or
//     [ClassifyCallError] gives;
//   - a 2xx with an empty body: every step succeeds with a null result, as
//     for a single call.
//
// The response may be [HTTPConfig.MaxResponseBytes] per step.
func (h *HTTPInvoker) InvokeBatch(ctx context.Context, envs []*contracts.StepEnvelope) []contracts.StepResult {
	out := make([]contracts.StepResult, len(envs))
	type group struct {
		target, shown string
		idx           []int
	}
	var groups []*group
	byURL := map[string]*group{}
	for i, env := range envs {
		if env == nil {
			out[i] = contracts.Failure(contracts.ErrorTypeHandler, "no step envelope to send", false)
			continue
		}
		target, shown := h.urls(env.StepDefinition.Handler.Callable)
		g := byURL[target]
		if g == nil {
			g = &group{target: target, shown: shown}
			byURL[target] = g
			groups = append(groups, g)
		}
		g.idx = append(g.idx, i)
	}
	if len(groups) == 1 {
		h.invokeGroup(ctx, groups[0].target, groups[0].shown, envs, groups[0].idx, out)
		return out
	}
	var wg sync.WaitGroup
	for _, g := range groups {
		wg.Go(func() { h.invokeGroup(ctx, g.target, g.shown, envs, g.idx, out) })
	}
	wg.Wait()
	return out
}

// invokeGroup makes one batched call for envs[idx...] and writes out[idx...].
func (h *HTTPInvoker) invokeGroup(ctx context.Context, target, shown string, all []*contracts.StepEnvelope, idx []int, out []contracts.StepResult) {
	fillAll := func(r contracts.StepResult) {
		for _, i := range idx {
			out[i] = cloneResult(r)
		}
	}
	defer func() {
		if p := recover(); p != nil {
			fillAll(contracts.Failure(contracts.ErrorTypeHandler, fmt.Sprintf("calling %s panicked: %v", shown, p), false))
		}
	}()
	envs := make([]*contracts.StepEnvelope, len(idx))
	for j, i := range idx {
		envs[j] = all[i]
	}
	body, err := json.Marshal(BatchRequest{Steps: envs})
	if err != nil {
		fillAll(contracts.Failure(contracts.ErrorTypeHandler, "cannot encode the batch of step envelopes: "+err.Error(), false))
		return
	}
	ctx, cancel := h.callContext(ctx)
	defer cancel()
	taskUUID := envs[0].Task.TaskUUID
	for _, e := range envs[1:] {
		if e.Task.TaskUUID != taskUUID {
			taskUUID = "" // steps of several tasks: a trace of its own
			break
		}
	}
	hdr := h.header(ctx, taskUUID)
	hdr[HeaderBatchSize] = []string{strconv.Itoa(len(envs))}
	limit := h.maxBytes
	if limit <= math.MaxInt64/int64(len(envs)) {
		limit *= int64(len(envs))
	}
	resp, release, err := h.post(ctx, target, shown, hdr, newDeliveryID(), body, limit)
	if err != nil {
		fillAll(h.callFailure(ctx, shown, err))
		return
	}
	defer release()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		fillAll(ClassifyResponse(resp, h.now()))
		return
	}
	if resp.TooLarge {
		fillAll(contracts.Failure(contracts.ErrorTypeInvalidResponse,
			fmt.Sprintf("batch response from %s larger than %d bytes", shown, limit), false))
		return
	}
	if len(bytes.TrimSpace(resp.Body)) == 0 {
		fillAll(contracts.StepResult{Success: true, Status: contracts.StatusCompleted})
		for _, i := range idx {
			out[i].StepUUID = all[i].Step.StepUUID
		}
		return
	}
	results, err := decodeBatchResponse(resp.Body)
	if err != nil {
		fillAll(withExcerpt(contracts.Failure(contracts.ErrorTypeInvalidResponse,
			fmt.Sprintf("handler at %s answered %s with a body that is not a batch response (%v)",
				shown, statusText(resp.StatusCode), err), false), resp.Body))
		return
	}
	matchBatch(shown, all, idx, results, out)
}

// batchItem is one decoded entry of a batch response.
type batchItem struct {
	stepUUID string
	res      contracts.StepResult
	err      error // not a valid step result
}

func decodeBatchResponse(body []byte) ([]batchItem, error) {
	// Every item decodes in the common case: one pass over the body. Any
	// error (a malformed item, no "results") takes the item-by-item path
	// below, which fails only the items at fault and says why.
	if results, ok := decodeAllResults(body); ok {
		items := make([]batchItem, len(results))
		for i := range results {
			items[i] = results[i].item()
		}
		return items, nil
	}
	var w struct {
		Results *[]json.RawMessage `json:"results"`
	}
	if err := json.Unmarshal(body, &w); err != nil {
		return nil, describeJSONError(err)
	}
	if w.Results == nil {
		return nil, errors.New(`"results" (an array) is missing`)
	}
	items := make([]batchItem, len(*w.Results))
	for i, raw := range *w.Results {
		var wr wireResult
		if err := json.Unmarshal(raw, &wr); err != nil {
			// Still try to learn which step the broken item is for.
			var id struct {
				StepUUID string `json:"step_uuid"`
			}
			_ = json.Unmarshal(raw, &id)
			items[i] = batchItem{stepUUID: id.StepUUID, err: describeJSONError(err)}
			continue
		}
		items[i] = wr.item()
	}
	return items, nil
}

// decodeAllResults decodes a batch body whose every item decodes, in one
// pass; ok is false for anything else. It walks the top-level keys itself
// rather than unmarshalling into a struct: encoding/json decodes a key given
// twice ("results" and "Results" match alike) into the same slice, merging
// the items of both arrays field by field, where the item-by-item path (and
// a single result) take the last value whole. A custom UnmarshalJSON would
// do the same at the cost of a second scan of the body.
func decodeAllResults(body []byte) (results []wireResult, ok bool) {
	dec := json.NewDecoder(bytes.NewReader(body))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, false
	}
	found := false
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, false
		}
		if key, _ := t.(string); strings.EqualFold(key, "results") { // as encoding/json matches keys
			var fresh []wireResult
			if err := dec.Decode(&fresh); err != nil {
				return nil, false
			}
			results, found = fresh, fresh != nil // null: as if absent
			continue
		}
		var skip json.RawMessage
		if err := dec.Decode(&skip); err != nil {
			return nil, false
		}
	}
	if t, err := dec.Token(); err != nil || t != json.Delim('}') {
		return nil, false
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, false // trailing data
	}
	return results, found
}

// item is the batch item of a decoded result.
func (w *wireResult) item() batchItem {
	res, _, err := w.normalize()
	return batchItem{stepUUID: w.StepUUID, res: res, err: err}
}

// matchBatch gives each requested step its result by step_uuid.
func matchBatch(shown string, all []*contracts.StepEnvelope, idx []int, items []batchItem, out []contracts.StepResult) {
	want := make(map[string]int, len(idx)) // step uuid -> results seen
	for _, i := range idx {
		want[all[i].Step.StepUUID] = 0
	}
	found := make(map[string]*batchItem, len(idx))
	var unknown []string
	anonymous := 0
	for k := range items {
		it := &items[k]
		if it.stepUUID == "" {
			anonymous++
			continue
		}
		n, ok := want[it.stepUUID]
		if !ok {
			unknown = append(unknown, it.stepUUID)
			continue
		}
		want[it.stepUUID] = n + 1
		if n == 0 {
			found[it.stepUUID] = it
		}
	}
	var strays string
	if len(unknown) > 0 {
		list := unknown[:min(len(unknown), 3)]
		strays = fmt.Sprintf("; it had %d result(s) for steps not in the call: %s", len(unknown), strings.Join(list, ", "))
		if len(unknown) > len(list) {
			strays += ", ..."
		}
	}
	if anonymous > 0 {
		strays += fmt.Sprintf("; %d result(s) had no step_uuid", anonymous)
	}
	for _, i := range idx {
		id := all[i].Step.StepUUID
		switch n := want[id]; {
		case n == 0:
			out[i] = contracts.Failure(contracts.ErrorTypeInvalidResponse,
				fmt.Sprintf("batch response from %s had no result for step %s%s", shown, id, strays), true)
		case n > 1:
			out[i] = contracts.Failure(contracts.ErrorTypeInvalidResponse,
				fmt.Sprintf("batch response from %s had %d results for step %s", shown, n, id), false)
		case found[id].err != nil:
			out[i] = contracts.Failure(contracts.ErrorTypeInvalidResponse,
				fmt.Sprintf("batch response from %s had an invalid result for step %s: %v", shown, id, found[id].err), false)
		default:
			out[i] = cloneResult(found[id].res)
		}
		out[i].StepUUID = id
	}
}

// cloneResult copies the pointed-to parts so results handed to several
// steps share nothing mutable.
func cloneResult(r contracts.StepResult) contracts.StepResult {
	if r.Error != nil {
		e := *r.Error
		r.Error = &e
	}
	if m := r.OrchestrationMetadata; m != nil {
		c := *m
		if c.BackoffHint != nil {
			h := *c.BackoffHint
			c.BackoffHint = &h
		}
		if c.BackoffRequestSeconds != nil {
			s := *c.BackoffRequestSeconds
			c.BackoffRequestSeconds = &s
		}
		r.OrchestrationMetadata = &c
	}
	return r
}

// Batcher groups concurrent single-step calls into batched calls, making
// batching transparent to the runner: it is an [Invoker] in front of a
// [BatchInvoker]. A batch is sent when it holds max steps or window after
// its first step arrived, whichever comes first. The batched call's deadline
// is the earliest deadline of its steps, and it is cancelled when every one
// of its callers has given up. One goroutine collects; each batch in flight
// has one more. Close stops both.
type Batcher struct {
	inv    BatchInvoker
	max    int
	window time.Duration
	in     chan *pending
	quit   chan struct{}
	once   sync.Once
	done   chan struct{}
	calls  sync.WaitGroup
}

type pending struct {
	ctx context.Context
	env *contracts.StepEnvelope
	res chan contracts.StepResult // buffered: the sender never blocks
}

// NewBatcher starts a batcher sending up to maxSteps steps per call (at
// least 1) and waiting at most window (0: no wait, only what is already
// queued) for a batch to fill.
func NewBatcher(inv BatchInvoker, maxSteps int, window time.Duration) *Batcher {
	b := &Batcher{
		inv:    inv,
		max:    max(maxSteps, 1),
		window: max(window, 0),
		in:     make(chan *pending),
		quit:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	go b.collect()
	return b
}

// Invoke implements [Invoker]: the step joins the next batch and the caller
// gets its own result. If ctx ends first, the caller gets a timeout
// (deadline) or an abandoned-call failure (cancellation) at once.
func (b *Batcher) Invoke(ctx context.Context, env *contracts.StepEnvelope) contracts.StepResult {
	if env == nil {
		return contracts.Failure(contracts.ErrorTypeHandler, "no step envelope to send", false)
	}
	p := &pending{ctx: ctx, env: env, res: make(chan contracts.StepResult, 1)}
	select {
	case b.in <- p:
	case <-b.quit:
		return contracts.Failure(contracts.ErrorTypeHandler, "the batcher is closed: the runner is shutting down", true)
	case <-ctx.Done():
		return waitFailure(ctx)
	}
	select {
	case r := <-p.res:
		return r
	case <-ctx.Done():
		return waitFailure(ctx)
	}
}

func waitFailure(ctx context.Context) contracts.StepResult {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return contracts.Failure(contracts.ErrorTypeTimeout, "the batched call did not finish before the step deadline", true)
	}
	return contracts.Failure(contracts.ErrorTypeHandler, "call abandoned: "+context.Cause(ctx).Error(), true)
}

// Close stops accepting steps, sends what is queued, and waits for every
// batched call in flight to finish (each ends by its deadline at the
// latest). Invoke after Close fails retryably. Close is idempotent.
func (b *Batcher) Close() {
	b.once.Do(func() { close(b.quit) })
	<-b.done
	b.calls.Wait()
}

func (b *Batcher) collect() {
	defer close(b.done)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		var first *pending
		select {
		case first = <-b.in:
		case <-b.quit:
			return
		}
		batch := make([]*pending, 1, b.max)
		batch[0] = first
		if b.window > 0 {
			timer.Reset(b.window)
		}
		closing := false
	fill:
		for len(batch) < b.max {
			if b.window == 0 {
				select {
				case p := <-b.in:
					batch = append(batch, p)
				default:
					break fill
				}
				continue
			}
			select {
			case p := <-b.in:
				batch = append(batch, p)
			case <-timer.C:
				break fill
			case <-b.quit:
				closing = true
				break fill
			}
		}
		timer.Stop()
		b.send(batch)
		if closing {
			return
		}
	}
}

// send starts the batched call for the steps whose callers still wait.
func (b *Batcher) send(batch []*pending) {
	live := batch[:0]
	for _, p := range batch {
		if p.ctx.Err() == nil {
			live = append(live, p)
		}
	}
	if len(live) == 0 {
		return
	}
	b.calls.Go(func() { b.call(live) })
}

func (b *Batcher) call(live []*pending) {
	ctx, cancel := batchContext(live)
	defer cancel()
	envs := make([]*contracts.StepEnvelope, len(live))
	for i, p := range live {
		envs[i] = p.env
	}
	results := b.invoke(ctx, envs)
	for i, p := range live {
		p.res <- results[i]
	}
}

// invoke guards against a BatchInvoker that panics or miscounts.
func (b *Batcher) invoke(ctx context.Context, envs []*contracts.StepEnvelope) (results []contracts.StepResult) {
	defer func() {
		if p := recover(); p != nil {
			results = make([]contracts.StepResult, len(envs))
			for i := range results {
				results[i] = contracts.Failure(contracts.ErrorTypeHandler, fmt.Sprintf("batched call panicked: %v", p), false)
			}
		}
	}()
	results = b.inv.InvokeBatch(ctx, envs)
	if len(results) != len(envs) {
		fixed := make([]contracts.StepResult, len(envs))
		for i := range fixed {
			if i < len(results) {
				fixed[i] = results[i]
			} else {
				fixed[i] = contracts.Failure(contracts.ErrorTypeInvalidResponse,
					fmt.Sprintf("the batched call returned %d results for %d steps", len(results), len(envs)), true)
			}
		}
		results = fixed
	}
	return results
}

// batchContext is the context of one batched call: the values of the first
// step's context, the earliest deadline of them all, and cancelled once
// every caller has given up.
func batchContext(live []*pending) (context.Context, context.CancelFunc) {
	base := context.WithoutCancel(live[0].ctx)
	var earliest time.Time
	for _, p := range live {
		if dl, ok := p.ctx.Deadline(); ok && (earliest.IsZero() || dl.Before(earliest)) {
			earliest = dl
		}
	}
	var ctx context.Context
	var cancel context.CancelFunc
	if earliest.IsZero() {
		ctx, cancel = context.WithCancel(base)
	} else {
		ctx, cancel = context.WithDeadline(base, earliest)
	}
	remaining := int64(len(live))
	stops := make([]func() bool, len(live))
	for i, p := range live {
		stops[i] = context.AfterFunc(p.ctx, func() {
			if atomic.AddInt64(&remaining, -1) == 0 {
				cancel()
			}
		})
	}
	return ctx, func() {
		for _, stop := range stops {
			stop()
		}
		cancel()
	}
}
