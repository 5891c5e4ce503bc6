package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
)

// Defaults of [RetryPolicy].
const (
	RetryMaxAttemptsDefault    = 4
	RetryInitialBackoffDefault = 250 * time.Millisecond
	RetryMaxBackoffDefault     = 5 * time.Second
	RetryMaxElapsedDefault     = 30 * time.Second
)

// RetryPolicy bounds the retries of a [RetryingDoer]. The zero value uses
// the defaults ([RetryMaxAttemptsDefault] and the others).
type RetryPolicy struct {
	// MaxAttempts bounds the attempts of one request, the first included;
	// 1 disables retrying.
	MaxAttempts int
	// InitialBackoff is the wait before the first retry. Each retry doubles
	// it, with jitter (a wait is between half and all of it).
	InitialBackoff time.Duration
	// MaxBackoff bounds one wait. A Retry-After longer than that is not
	// waited for: the answer is returned as it is.
	MaxBackoff time.Duration
	// MaxElapsed bounds one request, waits included: no wait ends after
	// it (nor after the request context's deadline).
	MaxElapsed time.Duration
	// OnRetry, when set, is called before each wait, e.g. to tell a person
	// what is going on.
	OnRetry func(RetryEvent)
}

// RetryEvent describes a retry of a [RetryingDoer] about to happen.
type RetryEvent struct {
	// Method and URL of the request.
	Method, URL string
	// Attempt is the attempt that failed, 1 for the first.
	Attempt int
	// Reason is what failed: the status ("503 Service Unavailable") or the
	// error.
	Reason string
	// Wait is how long the doer waits before the next attempt: the backoff,
	// or the answer's Retry-After when longer.
	Wait time.Duration
}

// WithRetry makes the client send its requests through a [RetryingDoer]
// over doer (nil: [http.DefaultClient]) with policy p. It replaces the
// HTTP client set by an earlier [WithHTTPClient], and a later one replaces
// it.
func WithRetry(doer HttpRequestDoer, p RetryPolicy) ClientOption {
	return WithHTTPClient(&RetryingDoer{Doer: doer, Policy: p})
}

// RetryingDoer is an [HttpRequestDoer] that retries failed requests when
// a retry cannot do anything twice. The API answers 503 with a
// Retry-After header while its database is unreachable, and a request may
// also fail on the way (a gateway's 502 or 504, a connection refused or
// reset). Such failures are retried with bounded exponential backoff,
// waiting at least the answer's Retry-After, as its [RetryPolicy] allows:
//
//   - requests idempotent by method (GET, HEAD, OPTIONS, PUT, DELETE) and
//     requests that carry an idempotency key (the Idempotency-Key header,
//     or a submission body's idempotency_key);
//   - template registration and validation (POST .../v1/templates and
//     .../v1/templates/validate): registering the same document again
//     answers the version already registered (200), and validating stores
//     nothing;
//   - a task submission (POST .../v1/tasks) without an idempotency key
//     first gets one ([NewIdempotencyKey], sent as the Idempotency-Key
//     header; the task's idempotency_key shows it), so that retrying a
//     submission whose task was created but whose answer was lost returns
//     that task (200) instead of creating a second one;
//   - any other request only when it never reached the server (the
//     connection could not be made).
//
// Use it through [WithRetry]:
//
//	c, err := client.New(url, apiKey, client.WithRetry(nil, client.RetryPolicy{}))
type RetryingDoer struct {
	// Doer sends each attempt. Default [http.DefaultClient].
	Doer HttpRequestDoer
	// Policy bounds the retries.
	Policy RetryPolicy

	// now and sleep (waits d or until ctx is done) are the clock; tests
	// replace them.
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) error
}

// Do sends req, retrying as its policy allows. It returns the last answer
// (its body unread) or error; a retried answer's body is drained and
// closed. A context that ends during a wait ends Do with the context's
// error.
func (d *RetryingDoer) Do(req *http.Request) (*http.Response, error) {
	p := d.policy()
	doer := d.Doer
	if doer == nil {
		doer = http.DefaultClient
	}
	now, sleep := d.now, d.sleep
	if now == nil {
		now, sleep = time.Now, sleepCtx
	}
	ctx := req.Context()
	start := now()
	body, err := readBody(req)
	if err != nil {
		return nil, err
	}
	req = req.Clone(ctx)
	if isSubmit(req) && req.Header.Get("Idempotency-Key") == "" && !bodyHasKey(body) {
		req.Header.Set("Idempotency-Key", NewIdempotencyKey())
	}
	idempotent := isIdempotent(req, body)
	for attempt := 1; ; attempt++ {
		r := req.Clone(ctx)
		if body != nil {
			r.Body, r.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
			r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
		}
		res, err := doer.Do(r)
		reason, retryAfter, retry := shouldRetry(ctx, res, err, idempotent)
		if !retry || attempt >= p.MaxAttempts {
			return res, err
		}
		wait := max(backoff(p, attempt), retryAfter)
		end := now().Add(wait)
		if wait > p.MaxBackoff || end.After(start.Add(p.MaxElapsed)) {
			return res, err
		}
		if dl, ok := ctx.Deadline(); ok && end.After(dl) {
			return res, err
		}
		if res != nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(res.Body, 64<<10))
			_ = res.Body.Close()
		}
		if p.OnRetry != nil {
			p.OnRetry(RetryEvent{Method: req.Method, URL: req.URL.Redacted(), Attempt: attempt, Reason: reason, Wait: wait})
		}
		if err := sleep(ctx, wait); err != nil {
			return nil, fmt.Errorf("%w (waiting to retry after: %s)", err, reason)
		}
	}
}

func (d *RetryingDoer) policy() RetryPolicy {
	p := d.Policy
	if p.MaxAttempts <= 0 {
		p.MaxAttempts = RetryMaxAttemptsDefault
	}
	if p.InitialBackoff <= 0 {
		p.InitialBackoff = RetryInitialBackoffDefault
	}
	if p.MaxBackoff <= 0 {
		p.MaxBackoff = RetryMaxBackoffDefault
	}
	if p.MaxElapsed <= 0 {
		p.MaxElapsed = RetryMaxElapsedDefault
	}
	return p
}

// NewIdempotencyKey returns a fresh idempotency key: a UUIDv7 (time
// ordered, so keys sort by submission time in the database's index).
func NewIdempotencyKey() string {
	id, err := uuid.NewV7()
	if err != nil {
		return uuid.NewString()
	}
	return id.String()
}

// shouldRetry says whether an attempt's outcome is worth retrying, why,
// and the answer's Retry-After.
func shouldRetry(ctx context.Context, res *http.Response, err error, idempotent bool) (reason string, retryAfter time.Duration, retry bool) {
	if err != nil {
		if ctx.Err() != nil {
			return "", 0, false
		}
		// Nothing was sent when the connection could not be made.
		return err.Error(), 0, idempotent || isDialError(err)
	}
	switch res.StatusCode {
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return res.Status, parseRetryAfter(res.Header.Get("Retry-After")), idempotent
	}
	return "", 0, false
}

func isDialError(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}

// parseRetryAfter reads a Retry-After value: seconds or an HTTP date.
func parseRetryAfter(v string) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(v); err == nil {
		return time.Duration(max(secs, 0)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0)
	}
	return 0
}

// backoff is the wait after attempt: InitialBackoff doubled for each
// earlier retry, bounded by MaxBackoff, between half and all of it.
func backoff(p RetryPolicy, attempt int) time.Duration {
	b := p.InitialBackoff
	for i := 1; i < attempt && b < p.MaxBackoff; i++ {
		b *= 2
	}
	b = min(b, p.MaxBackoff)
	return b/2 + rand.N(b/2+1)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// readBody reads and closes req's body, so that every attempt can send it.
func readBody(req *http.Request) ([]byte, error) {
	if req.Body == nil || req.Body == http.NoBody {
		return nil, nil
	}
	defer req.Body.Close()
	b, err := io.ReadAll(req.Body)
	if err != nil {
		return nil, fmt.Errorf("reading the request body: %w", err)
	}
	return b, nil
}

// isSubmit reports whether req submits a task (POST /v1/tasks under the
// server's base URL).
func isSubmit(req *http.Request) bool {
	return req.Method == http.MethodPost && strings.HasSuffix(strings.TrimRight(req.URL.Path, "/"), "/v1/tasks")
}

// isIdempotent reports whether sending req twice does what sending it
// once does: by its method, or by an idempotency key (header, or a
// submission body's idempotency_key).
func isIdempotent(req *http.Request, body []byte) bool {
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions, http.MethodPut, http.MethodDelete:
		return true
	}
	return req.Header.Get("Idempotency-Key") != "" || isTemplateWrite(req) || (isSubmit(req) && bodyHasKey(body))
}

// isTemplateWrite reports whether req registers or validates a template,
// which a retry cannot do twice.
func isTemplateWrite(req *http.Request) bool {
	path := strings.TrimRight(req.URL.Path, "/")
	return req.Method == http.MethodPost && (strings.HasSuffix(path, "/v1/templates") || strings.HasSuffix(path, "/v1/templates/validate"))
}

// bodyHasKey reports whether a JSON body has a non-empty idempotency_key.
func bodyHasKey(body []byte) bool {
	var doc struct {
		IdempotencyKey string `json:"idempotency_key"`
	}
	return json.Unmarshal(body, &doc) == nil && doc.IdempotencyKey != ""
}
