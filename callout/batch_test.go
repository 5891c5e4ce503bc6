package callout_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tasker-runner/tasker-runner/callout"
	"github.com/tasker-runner/tasker-runner/contracts"
)

func batchTestEnvelopes(n int) []*contracts.StepEnvelope {
	envs := make([]*contracts.StepEnvelope, n)
	for i := range envs {
		envs[i] = httpTestEnvelope(fmt.Sprintf("0190d5a1-0000-7000-8000-%012d", i+1), "batch.step")
	}
	return envs
}

// batchHandler decodes a batch request and answers with what answer makes
// of its step uuids.
func batchHandler(t *testing.T, answer func(ids []string) any) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req callout.BatchRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			t.Errorf("batch request: %v", err)
			w.WriteHeader(400)
			return
		}
		if got := r.Header.Get("Tasker-Batch-Size"); got != strconv.Itoa(len(req.Steps)) {
			t.Errorf("Tasker-Batch-Size %q for %d steps", got, len(req.Steps))
		}
		ids := make([]string, len(req.Steps))
		for i, s := range req.Steps {
			ids[i] = s.Step.StepUUID
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(answer(ids))
	}
}

func okResult(id string) map[string]any {
	return map[string]any{"step_uuid": id, "success": true, "result": id}
}

func TestInvokeBatchMatchesResults(t *testing.T) {
	t.Parallel()
	envs := batchTestEnvelopes(4)
	for _, tc := range []struct {
		name   string
		answer func(ids []string) any
		// check inspects result i for step id.
		check func(t *testing.T, i int, id string, r contracts.StepResult)
	}{
		{
			name: "all present, any order",
			answer: func(ids []string) any {
				var rs []any
				for _, id := range slices.Backward(ids) {
					rs = append(rs, okResult(id))
				}
				return map[string]any{"results": rs}
			},
			check: func(t *testing.T, i int, id string, r contracts.StepResult) {
				if !r.Success || string(r.Result) != strconv.Quote(id) || r.StepUUID != id {
					t.Errorf("step %d: %+v", i, r)
				}
			},
		},
		{
			name: "wrong step_uuid",
			answer: func(ids []string) any {
				return map[string]any{"results": []any{okResult(ids[0]), okResult(ids[1]), okResult(ids[2]), okResult("0190d5a1-bogus")}}
			},
			check: func(t *testing.T, i int, id string, r contracts.StepResult) {
				if i < 3 {
					if !r.Success {
						t.Errorf("step %d: %+v", i, r.Error)
					}
					return
				}
				wantFailure(t, "wrong uuid", r, contracts.ErrorTypeInvalidResponse, true, 0, "had no result for step "+id, "0190d5a1-bogus")
			},
		},
		{
			name: "missing item",
			answer: func(ids []string) any {
				return map[string]any{"results": []any{okResult(ids[0]), okResult(ids[2]), okResult(ids[3])}}
			},
			check: func(t *testing.T, i int, id string, r contracts.StepResult) {
				if i != 1 {
					if !r.Success {
						t.Errorf("step %d: %+v", i, r.Error)
					}
					return
				}
				wantFailure(t, "missing", r, contracts.ErrorTypeInvalidResponse, true, 0, "had no result for step "+id)
			},
		},
		{
			name: "duplicate item",
			answer: func(ids []string) any {
				return map[string]any{"results": []any{okResult(ids[0]), okResult(ids[1]), okResult(ids[2]), okResult(ids[3]), okResult(ids[2])}}
			},
			check: func(t *testing.T, i int, id string, r contracts.StepResult) {
				if i != 2 {
					if !r.Success {
						t.Errorf("step %d: %+v", i, r.Error)
					}
					return
				}
				wantFailure(t, "duplicate", r, contracts.ErrorTypeInvalidResponse, false, 0, "had 2 results for step "+id)
			},
		},
		{
			name: "invalid and failed items",
			answer: func(ids []string) any {
				return map[string]any{"results": []any{
					okResult(ids[0]),
					map[string]any{"step_uuid": ids[1], "status": "completed"},
					map[string]any{"step_uuid": ids[2], "success": false, "error": map[string]any{"message": "nope", "retryable": false}},
					map[string]any{"step_uuid": ids[3], "success": "yes"},
				}}
			},
			check: func(t *testing.T, i int, id string, r contracts.StepResult) {
				switch i {
				case 0:
					if !r.Success {
						t.Errorf("step 0: %+v", r.Error)
					}
				case 1:
					wantFailure(t, "no success", r, contracts.ErrorTypeInvalidResponse, false, 0, "invalid result for step "+id, `"success" (a boolean) is missing`)
				case 2:
					wantFailure(t, "failed", r, contracts.ErrorTypeHandler, false, 0, "nope")
				case 3:
					wantFailure(t, "bad type", r, contracts.ErrorTypeInvalidResponse, false, 0, "invalid result for step "+id, `"success" has the wrong type`)
				}
			},
		},
		{
			name:   "not a batch response",
			answer: func(ids []string) any { return map[string]any{"success": true} },
			check: func(t *testing.T, i int, id string, r contracts.StepResult) {
				wantFailure(t, "malformed", r, contracts.ErrorTypeInvalidResponse, false, 0, `"results" (an array) is missing`)
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := startHTTPHandler(t, batchHandler(t, tc.answer))
			inv := newHTTPInvoker(t, callout.HTTPConfig{URL: srv.URL})
			results := inv.InvokeBatch(t.Context(), envs)
			if len(results) != len(envs) {
				t.Fatalf("%d results for %d steps", len(results), len(envs))
			}
			for i, r := range results {
				tc.check(t, i, envs[i].Step.StepUUID, r)
			}
		})
	}
}

func TestInvokeBatchWholeCallFailures(t *testing.T) {
	t.Parallel()
	envs := batchTestEnvelopes(3)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	_ = ln.Close()
	for _, tc := range []struct {
		name      string
		handler   http.HandlerFunc // nil: connection refused
		ctxTime   time.Duration
		errType   string
		retryable bool
		status    int
		fragments []string
	}{
		{name: "503", handler: func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Retry-After", "5")
			w.WriteHeader(503)
		}, errType: contracts.ErrorTypeHandler, retryable: true, status: 503, fragments: []string{"503 Service Unavailable"}},
		{name: "400", handler: func(w http.ResponseWriter, r *http.Request) { http.Error(w, "no batches here", 400) },
			errType: contracts.ErrorTypeHandler, status: 400, fragments: []string{"no batches here"}},
		{name: "invalid JSON", handler: func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, `{"results":[`) },
			errType: contracts.ErrorTypeInvalidResponse, fragments: []string{"not a batch response", "invalid JSON"}},
		{name: "oversized", handler: func(w http.ResponseWriter, r *http.Request) {
			_, _ = io.WriteString(w, `{"results":[`+strings.Repeat(" ", 4000)+`]}`)
		}, errType: contracts.ErrorTypeInvalidResponse, fragments: []string{"larger than 3072 bytes"}},
		{name: "connection refused", errType: contracts.ErrorTypeHandler, retryable: true, fragments: []string{"connection refused"}},
		{name: "timeout", handler: func(w http.ResponseWriter, r *http.Request) { waitForClient(r) }, ctxTime: 100 * time.Millisecond,
			errType: contracts.ErrorTypeTimeout, retryable: true, fragments: []string{"before the step deadline"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			url := closed
			if tc.handler != nil {
				url = startHTTPHandler(t, tc.handler).URL
			}
			inv := newHTTPInvoker(t, callout.HTTPConfig{URL: url, MaxResponseBytes: 1024})
			ctx := t.Context()
			if tc.ctxTime > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, tc.ctxTime)
				defer cancel()
			}
			results := inv.InvokeBatch(ctx, envs)
			if len(results) != len(envs) {
				t.Fatalf("%d results for %d steps", len(results), len(envs))
			}
			for i, r := range results {
				wantFailure(t, fmt.Sprint(tc.name, " step ", i), r, tc.errType, tc.retryable, tc.status, tc.fragments...)
			}
			if results[0].Error == results[1].Error {
				t.Error("steps share one error value")
			}
			if tc.status == 503 {
				if b, ok := backoffOf(results[2]); !ok || b != 5 {
					t.Errorf("backoff %v %v, want 5", b, ok)
				}
			}
		})
	}
}

// With {callable} in the URL, a batch of mixed callables makes one call per
// URL; an empty 2xx answers every step with success.
func TestInvokeBatchSplitsByURL(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	paths := map[string]int{}
	srv := startHTTPHandler(t, func(w http.ResponseWriter, r *http.Request) {
		var req callout.BatchRequest
		_ = json.NewDecoder(r.Body).Decode(&req)
		mu.Lock()
		paths[r.URL.Path] += len(req.Steps)
		mu.Unlock()
		w.WriteHeader(204)
	})
	envs := batchTestEnvelopes(5)
	envs[1].StepDefinition.Handler.Callable = "other"
	envs[3].StepDefinition.Handler.Callable = "other"
	inv := newHTTPInvoker(t, callout.HTTPConfig{URL: srv.URL + "/h/{callable}"})
	for i, r := range inv.InvokeBatch(t.Context(), envs) {
		if !r.Success || r.StepUUID != envs[i].Step.StepUUID {
			t.Errorf("step %d: %+v", i, r)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(paths) != 2 || paths["/h/batch.step"] != 3 || paths["/h/other"] != 2 {
		t.Errorf("calls by path: %v", paths)
	}
}

// echoBatchServer answers every step with its own uuid and counts calls and
// the largest batch.
type echoBatchServer struct {
	calls, largest atomic.Int64
}

func startEchoBatchServer(t *testing.T) (*echoBatchServer, string) {
	e := &echoBatchServer{}
	srv := startHTTPHandler(t, batchHandler(t, func(ids []string) any {
		e.calls.Add(1)
		for {
			l := e.largest.Load()
			if int64(len(ids)) <= l || e.largest.CompareAndSwap(l, int64(len(ids))) {
				break
			}
		}
		rs := make([]any, len(ids))
		for i, id := range ids {
			rs[i] = okResult(id)
		}
		return map[string]any{"results": rs}
	}))
	return e, srv.URL
}

func TestBatcherGroupsConcurrentCalls(t *testing.T) {
	t.Parallel()
	echo, url := startEchoBatchServer(t)
	b := callout.NewBatcher(newHTTPInvoker(t, callout.HTTPConfig{URL: url}), 8, 500*time.Millisecond)
	defer b.Close()
	envs := batchTestEnvelopes(20)
	results := make([]contracts.StepResult, len(envs))
	var wg sync.WaitGroup
	for i, env := range envs {
		wg.Go(func() { results[i] = b.Invoke(t.Context(), env) })
	}
	wg.Wait()
	for i, r := range results {
		if !r.Success || string(r.Result) != strconv.Quote(envs[i].Step.StepUUID) {
			t.Errorf("step %d got %+v", i, r)
		}
	}
	if n := echo.calls.Load(); n > 20/8+1+1 {
		t.Errorf("%d batched calls for 20 steps with max 8", n)
	}
	if l := echo.largest.Load(); l > 8 {
		t.Errorf("a batch of %d steps with max 8", l)
	}
}

func TestBatcherWindow(t *testing.T) {
	t.Parallel()
	_, url := startEchoBatchServer(t)
	inv := newHTTPInvoker(t, callout.HTTPConfig{URL: url})

	t.Run("a lone step waits for the window", func(t *testing.T) {
		t.Parallel()
		const window = 100 * time.Millisecond
		b := callout.NewBatcher(inv, 8, window)
		defer b.Close()
		start := time.Now()
		if r := b.Invoke(t.Context(), batchTestEnvelopes(1)[0]); !r.Success {
			t.Fatalf("%+v", r.Error)
		}
		if elapsed := time.Since(start); elapsed < window {
			t.Errorf("sent after %s, before the %s window", elapsed, window)
		}
	})
	t.Run("a full batch does not wait", func(t *testing.T) {
		t.Parallel()
		b := callout.NewBatcher(inv, 2, time.Hour)
		defer b.Close()
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		defer cancel()
		envs := batchTestEnvelopes(2)
		var wg sync.WaitGroup
		for _, env := range envs {
			wg.Go(func() {
				if r := b.Invoke(ctx, env); !r.Success {
					t.Errorf("%+v", r.Error)
				}
			})
		}
		wg.Wait()
	})
	t.Run("no window sends at once", func(t *testing.T) {
		t.Parallel()
		b := callout.NewBatcher(inv, 8, 0)
		defer b.Close()
		ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
		defer cancel()
		if r := b.Invoke(ctx, batchTestEnvelopes(1)[0]); !r.Success {
			t.Fatalf("%+v", r.Error)
		}
	})
}

// The batched call carries the earliest deadline of its steps.
func TestBatcherDeadline(t *testing.T) {
	t.Parallel()
	got := make(chan string, 1)
	inner := batchHandler(t, func(ids []string) any {
		return map[string]any{"results": []any{okResult(ids[0]), okResult(ids[1])}}
	})
	srv := startHTTPHandler(t, func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Get("Tasker-Deadline")
		inner(w, r)
	})
	b := callout.NewBatcher(newHTTPInvoker(t, callout.HTTPConfig{URL: srv.URL}), 2, time.Hour)
	defer b.Close()
	early := time.Now().Add(20 * time.Second)
	envs := batchTestEnvelopes(2)
	var wg sync.WaitGroup
	for i, dl := range []time.Time{early.Add(10 * time.Second), early} {
		wg.Go(func() {
			ctx, cancel := context.WithDeadline(t.Context(), dl)
			defer cancel()
			if r := b.Invoke(ctx, envs[i]); !r.Success {
				t.Errorf("%+v", r.Error)
			}
		})
	}
	wg.Wait()
	dl, err := time.Parse(time.RFC3339, <-got)
	if err != nil {
		t.Fatal(err)
	}
	if d := dl.Sub(early); d > time.Millisecond || d < -time.Millisecond {
		t.Errorf("batch deadline %s, want the earliest step deadline %s", dl, early)
	}
}

// A caller whose context ends first gets a timeout at once; once every
// caller is gone the batched call is cancelled, so Close returns.
func TestBatcherCallerGivesUp(t *testing.T) {
	t.Parallel()
	var calls atomic.Int64
	srv := startHTTPHandler(t, func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		waitForClient(r)
	})
	b := callout.NewBatcher(newHTTPInvoker(t, callout.HTTPConfig{URL: srv.URL}), 4, 10*time.Millisecond)
	ctx, cancel := context.WithTimeout(t.Context(), 150*time.Millisecond)
	defer cancel()
	r := b.Invoke(ctx, batchTestEnvelopes(1)[0])
	wantFailure(t, "gave up", r, contracts.ErrorTypeTimeout, true, 0, "deadline")

	cctx, ccancel := context.WithCancel(t.Context())
	ccancel()
	wantFailure(t, "cancelled", b.Invoke(cctx, batchTestEnvelopes(1)[0]), contracts.ErrorTypeHandler, true, 0, "abandoned")

	b.Close()
	b.Close() // idempotent
	wantFailure(t, "closed", b.Invoke(t.Context(), batchTestEnvelopes(1)[0]), contracts.ErrorTypeHandler, true, 0, "closed")
	if calls.Load() > 1 {
		t.Errorf("%d calls, want at most 1", calls.Load())
	}
}

// fakeBatchInvoker misbehaves on purpose.
type fakeBatchInvoker func(ctx context.Context, envs []*contracts.StepEnvelope) []contracts.StepResult

func (f fakeBatchInvoker) InvokeBatch(ctx context.Context, envs []*contracts.StepEnvelope) []contracts.StepResult {
	return f(ctx, envs)
}

func TestBatcherGuardsItsInvoker(t *testing.T) {
	t.Parallel()
	short := callout.NewBatcher(fakeBatchInvoker(func(context.Context, []*contracts.StepEnvelope) []contracts.StepResult {
		return nil
	}), 1, 0)
	defer short.Close()
	wantFailure(t, "short", short.Invoke(t.Context(), batchTestEnvelopes(1)[0]), contracts.ErrorTypeInvalidResponse, true, 0, "0 results for 1 steps")

	panicky := callout.NewBatcher(fakeBatchInvoker(func(context.Context, []*contracts.StepEnvelope) []contracts.StepResult {
		panic("bug")
	}), 1, 0)
	defer panicky.Close()
	wantFailure(t, "panic", panicky.Invoke(t.Context(), batchTestEnvelopes(1)[0]), contracts.ErrorTypeHandler, false, 0, "panicked: bug")
}
