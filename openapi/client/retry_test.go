package client

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
)

// attempts records what a test server saw and answers each attempt with
// the next of its statuses (the last one repeats).
type attempts struct {
	mu       sync.Mutex
	keys     []string
	bodies   []string
	statuses []int
	header   http.Header
}

func (a *attempts) serve(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		a.mu.Lock()
		n := len(a.keys)
		a.keys = append(a.keys, r.Header.Get("Idempotency-Key"))
		a.bodies = append(a.bodies, string(b))
		status := a.statuses[min(n, len(a.statuses)-1)]
		a.mu.Unlock()
		for k, v := range a.header {
			w.Header()[k] = v
		}
		w.Header().Set("Content-Type", "application/problem+json")
		w.WriteHeader(status)
		_, _ = io.WriteString(w, `{"status":`+http.StatusText(status)+`}`)
	}))
	t.Cleanup(srv.Close)
	return srv
}

func (a *attempts) count() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.keys)
}

// doer returns a RetryingDoer on a fake clock: it records its waits and
// moves the clock on instead of waiting.
func doer(p RetryPolicy, waits *[]time.Duration) *RetryingDoer {
	clock := time.Now()
	return &RetryingDoer{
		Policy: p,
		now:    func() time.Time { return clock },
		sleep: func(ctx context.Context, d time.Duration) error {
			*waits = append(*waits, d)
			clock = clock.Add(d)
			return ctx.Err()
		},
	}
}

func send(t *testing.T, d HttpRequestDoer, method, url, body string) (*http.Response, error) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	res, err := d.Do(req)
	if res != nil {
		t.Cleanup(func() { _ = res.Body.Close() })
	}
	return res, err
}

func TestRetryHonoursRetryAfter(t *testing.T) {
	a := &attempts{statuses: []int{503, 503, 200}, header: http.Header{"Retry-After": {"3"}}}
	srv := a.serve(t)
	var waits []time.Duration
	res, err := send(t, doer(RetryPolicy{InitialBackoff: time.Millisecond}, &waits), http.MethodGet, srv.URL+"/v1/tasks", "")
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("got %v %v, want 200", res, err)
	}
	if a.count() != 3 || len(waits) != 2 {
		t.Fatalf("%d attempts, waits %v: want 3 attempts", a.count(), waits)
	}
	for _, w := range waits {
		if w < 3*time.Second {
			t.Errorf("waited %s, less than Retry-After (3s)", w)
		}
	}
}

func TestRetryIsBounded(t *testing.T) {
	t.Run("attempts", func(t *testing.T) {
		a := &attempts{statuses: []int{502, 504, 503}}
		srv := a.serve(t)
		var waits []time.Duration
		res, err := send(t, doer(RetryPolicy{MaxAttempts: 3, InitialBackoff: 100 * time.Millisecond, MaxBackoff: time.Second}, &waits), http.MethodGet, srv.URL+"/x", "")
		if err != nil || res.StatusCode != 503 {
			t.Fatalf("got %v %v, want the last answer (503)", res, err)
		}
		if b, _ := io.ReadAll(res.Body); !strings.Contains(string(b), "Service Unavailable") {
			t.Errorf("the last answer's body is %q", b)
		}
		if a.count() != 3 {
			t.Errorf("%d attempts, want 3", a.count())
		}
		// 100ms then 200ms, each with jitter (half to all of it).
		if len(waits) != 2 || waits[0] < 50*time.Millisecond || waits[0] > 100*time.Millisecond || waits[1] < 100*time.Millisecond || waits[1] > 200*time.Millisecond {
			t.Errorf("waits %v, want about 100ms then 200ms", waits)
		}
	})
	t.Run("a Retry-After beyond MaxBackoff", func(t *testing.T) {
		a := &attempts{statuses: []int{503, 200}, header: http.Header{"Retry-After": {"60"}}}
		srv := a.serve(t)
		var waits []time.Duration
		res, err := send(t, doer(RetryPolicy{}, &waits), http.MethodGet, srv.URL+"/x", "")
		if err != nil || res.StatusCode != 503 || a.count() != 1 {
			t.Fatalf("got %v %v after %d attempts, want the 503 at once", res, err, a.count())
		}
	})
	t.Run("elapsed", func(t *testing.T) {
		a := &attempts{statuses: []int{503}, header: http.Header{"Retry-After": {"2"}}}
		srv := a.serve(t)
		var waits []time.Duration
		res, err := send(t, doer(RetryPolicy{MaxAttempts: 10, MaxElapsed: 3 * time.Second}, &waits), http.MethodGet, srv.URL+"/x", "")
		if err != nil || res.StatusCode != 503 || a.count() != 2 || len(waits) != 1 {
			t.Fatalf("got %v %v after %d attempts (waits %v), want the 503 after one wait of 2s: a second would end past MaxElapsed", res, err, a.count(), waits)
		}
	})
	t.Run("context cancelled while waiting", func(t *testing.T) {
		a := &attempts{statuses: []int{503}}
		srv := a.serve(t)
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		d := &RetryingDoer{Policy: RetryPolicy{OnRetry: func(RetryEvent) { cancel() }}}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL+"/x", nil)
		res, err := d.Do(req)
		if !errors.Is(err, context.Canceled) || res != nil || a.count() != 1 {
			t.Fatalf("got %v %v after %d attempts, want context.Canceled", res, err, a.count())
		}
	})
}

func TestRetrySubmitGetsAKey(t *testing.T) {
	a := &attempts{statuses: []int{503, 201}}
	srv := a.serve(t)
	var waits []time.Duration
	body := `{"namespace":"ops","name":"outage"}`
	res, err := send(t, doer(RetryPolicy{}, &waits), http.MethodPost, srv.URL+"/v1/tasks", body)
	if err != nil || res.StatusCode != 201 {
		t.Fatalf("got %v %v, want 201", res, err)
	}
	if len(a.keys) != 2 || a.keys[0] == "" || a.keys[0] != a.keys[1] {
		t.Fatalf("keys sent %q: want one generated key, sent with every attempt", a.keys)
	}
	if id, err := uuid.Parse(a.keys[0]); err != nil || id.Version() != 7 {
		t.Errorf("generated key %q is not a UUIDv7", a.keys[0])
	}
	if a.bodies[0] != body || a.bodies[1] != body {
		t.Errorf("bodies sent %q, want %q twice", a.bodies, body)
	}

	// A key in the body is the caller's: no header, and retried.
	a = &attempts{statuses: []int{503, 200}}
	srv = a.serve(t)
	res, err = send(t, doer(RetryPolicy{}, &waits), http.MethodPost, srv.URL+"/v1/tasks", `{"namespace":"ops","name":"outage","idempotency_key":"mine"}`)
	if err != nil || res.StatusCode != 200 || len(a.keys) != 2 || a.keys[0] != "" {
		t.Fatalf("got %v %v, keys %q: want a retry without a header", res, err, a.keys)
	}
}

func TestRetryLeavesOtherWritesAlone(t *testing.T) {
	a := &attempts{statuses: []int{503, 200}}
	srv := a.serve(t)
	var waits []time.Duration
	d := doer(RetryPolicy{}, &waits)
	res, err := send(t, d, http.MethodPost, srv.URL+"/v1/tasks/"+uuid.NewString()+"/cancel", `{}`)
	if err != nil || res.StatusCode != 503 || a.count() != 1 || a.keys[0] != "" {
		t.Fatalf("got %v %v after %d attempts: a cancel must not be retried after it reached the server", res, err, a.count())
	}

	// Unless it never reached it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	_ = ln.Close()
	waits = nil
	_, err = send(t, d, http.MethodPost, closed+"/v1/tasks/"+uuid.NewString()+"/cancel", `{}`)
	if err == nil || len(waits) != RetryMaxAttemptsDefault-1 {
		t.Fatalf("refused connections: %v after %d waits, want %d retries", err, len(waits), RetryMaxAttemptsDefault-1)
	}
}

// Registering or validating a template is retried: the same document
// registered again answers the version already there.
func TestRetryTemplateWrites(t *testing.T) {
	for _, path := range []string{"/v1/templates", "/v1/templates/validate"} {
		a := &attempts{statuses: []int{503, 502, 201}}
		srv := a.serve(t)
		var waits []time.Duration
		res, err := send(t, doer(RetryPolicy{}, &waits), http.MethodPost, srv.URL+path, `{"template":"name: x"}`)
		if err != nil || res.StatusCode != 201 || a.count() != 3 {
			t.Fatalf("POST %s: got %v %v after %d attempts, want 201 after 3", path, res, err, a.count())
		}
		for i, b := range a.bodies {
			if b != `{"template":"name: x"}` {
				t.Errorf("POST %s attempt %d sent %q", path, i+1, b)
			}
		}
	}
}
