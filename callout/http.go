package callout

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/textproto"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-runner/tasker-runner/contracts"
)

// DefaultMaxResponseBytes is the default limit on a handler's response body.
const DefaultMaxResponseBytes = 4 << 20

// CallablePlaceholder in an endpoint URL's path is replaced by the step's
// callable, path-escaped.
const CallablePlaceholder = "{callable}"

// Headers the runner sets on every handler request.
const (
	HeaderIdempotencyKey = "Idempotency-Key"
	HeaderAttempt        = "Tasker-Attempt"
	HeaderDeadline       = "Tasker-Deadline"
	// HeaderBatchSize is sent on batched calls with the number of steps.
	HeaderBatchSize   = "Tasker-Batch-Size"
	HeaderTraceparent = "Traceparent"
	userAgent         = "tasker-runner"
	// deadlineLayout is RFC 3339 in UTC with milliseconds.
	deadlineLayout = "2006-01-02T15:04:05.000Z07:00"
)

// reservedHeaders are set by the runner (or by Go, or by request signing)
// and cannot be configured.
var reservedHeaders = []string{
	"Accept", "Accept-Encoding", "Connection", "Content-Encoding", "Content-Length", "Content-Type", "Host",
	"Te", "Trailer", "Transfer-Encoding", "Upgrade", "User-Agent",
	HeaderIdempotencyKey, HeaderAttempt, HeaderDeadline, HeaderBatchSize, HeaderTraceparent, "Tracestate",
	"Webhook-Id", "Webhook-Timestamp", "Webhook-Signature",
}

// HTTPConfig configures an [HTTPInvoker] for one handler endpoint.
type HTTPConfig struct {
	// URL is the endpoint: absolute http or https. Its path may contain
	// {callable}, replaced by the step's callable (path-escaped). No other
	// {...} placeholder is allowed.
	URL string
	// Timeout bounds each call on top of the step deadline carried by the
	// context; 0 means the context alone decides.
	Timeout time.Duration
	// MaxResponseBytes limits a response body (a batched call allows this
	// much per step); default [DefaultMaxResponseBytes].
	MaxResponseBytes int64
	// Headers are added to every request (API keys and the like). They
	// cannot replace the headers the runner sets itself (Content-Type,
	// Accept, Idempotency-Key, Tasker-*, traceparent, User-Agent, webhook-*
	// and the hop-by-hop ones): NewHTTP rejects them.
	Headers map[string]string
	// Sign, when set, signs each request after every other header is set
	// (Standard Webhooks: it adds webhook-id, webhook-timestamp and
	// webhook-signature). id is the delivery id (the envelope's event_id;
	// a fresh id for a batched call), ts the signing time, body the exact
	// request body. An error fails the call permanently.
	Sign func(h http.Header, id string, ts time.Time, body []byte) error
	// Client sends the requests; default [SharedClient].
	Client *http.Client
	// Now is the clock (signing time, Retry-After dates); default time.Now.
	Now func() time.Time
}

// HTTPInvoker calls a handler over HTTP+JSON (the handler contract, contracts/README.md). It is an
// [Invoker] and a [BatchInvoker], safe for concurrent use.
type HTTPInvoker struct {
	parts    []string // the URL split at each {callable}; one part when none
	display  string   // the URL without secrets, for messages (no placeholder)
	timeout  time.Duration
	maxBytes int64
	headers  http.Header
	sign     func(h http.Header, id string, ts time.Time, body []byte) error
	client   *http.Client
	now      func() time.Time
}

// NewHTTP validates cfg and returns its invoker.
func NewHTTP(cfg HTTPConfig) (*HTTPInvoker, error) {
	parts, err := parseEndpointURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("handler timeout must not be negative, got %s", cfg.Timeout)
	}
	if cfg.MaxResponseBytes < 0 {
		return nil, fmt.Errorf("max response bytes must not be negative, got %d", cfg.MaxResponseBytes)
	}
	h := &HTTPInvoker{
		parts:    parts,
		timeout:  cfg.Timeout,
		maxBytes: cfg.MaxResponseBytes,
		headers:  http.Header{},
		sign:     cfg.Sign,
		client:   cfg.Client,
		now:      cfg.Now,
	}
	if len(parts) == 1 {
		h.display = RedactURL(parts[0])
	}
	if h.maxBytes == 0 {
		h.maxBytes = DefaultMaxResponseBytes
	}
	if h.client == nil {
		h.client = SharedClient()
	}
	if h.now == nil {
		h.now = time.Now
	}
	names := make([]string, 0, len(cfg.Headers))
	for name := range cfg.Headers {
		names = append(names, name)
	}
	slices.Sort(names) // report problems in a stable order
	var problems []error
	for _, name := range names {
		value := cfg.Headers[name]
		canon := textproto.CanonicalMIMEHeaderKey(name)
		switch {
		case !validHeaderName(name):
			problems = append(problems, fmt.Errorf("header name %q is not a valid HTTP header name", name))
		case slices.Contains(reservedHeaders, canon):
			problems = append(problems, fmt.Errorf("header %q is set by the runner and cannot be configured", name))
		case !validHeaderValue(value):
			// The value may be a secret: never quote it.
			problems = append(problems, fmt.Errorf("header %q has a value with control characters", name))
		default:
			h.headers[canon] = append(h.headers[canon], value)
		}
	}
	if err := errors.Join(problems...); err != nil {
		return nil, err
	}
	return h, nil
}

// parseEndpointURL checks an endpoint URL and splits it at {callable}.
func parseEndpointURL(raw string) ([]string, error) {
	if strings.TrimSpace(raw) == "" {
		return nil, errors.New("handler URL is empty")
	}
	rest := strings.ReplaceAll(raw, CallablePlaceholder, "")
	if i := strings.IndexAny(rest, "{}"); i >= 0 {
		return nil, fmt.Errorf("handler URL %s: only the %s placeholder is supported", RedactURL(strings.ReplaceAll(raw, CallablePlaceholder, "callable")), CallablePlaceholder)
	}
	// Check the URL with the sentinel in place of the placeholder, then
	// check the sentinel only landed in the path.
	n := strings.Count(raw, CallablePlaceholder)
	u, err := parseWithSentinel(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // url.Error repeats the URL, which may hold a secret
		}
		return nil, fmt.Errorf("handler URL is not a valid URL: %v", err)
	}
	shown := RedactURL(raw)
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("handler URL %s: the scheme must be http or https", shown)
	case u.Opaque != "" || u.Host == "":
		return nil, fmt.Errorf("handler URL %s: must be absolute, like https://host/path", shown)
	case strings.Count(u.Path, callableSentinel) != n:
		return nil, fmt.Errorf("handler URL %s: %s may only appear in the path", shown, CallablePlaceholder)
	}
	return strings.Split(raw, CallablePlaceholder), nil
}

// RedactURL shows a handler URL without credentials or query values, for
// logs, errors and status pages. The {callable} placeholder is shown as
// written, not percent-encoded (%7Bcallable%7D), so a URL reads as it was
// registered.
func RedactURL(raw string) string {
	u, err := parseWithSentinel(raw)
	if err != nil {
		return "(invalid URL)"
	}
	s := u.Scheme + "://" + u.Host + u.EscapedPath()
	if u.RawQuery != "" {
		s += "?..."
	}
	return strings.ReplaceAll(s, callableSentinel, CallablePlaceholder)
}

// callableSentinel stands in for [CallablePlaceholder] while a handler URL
// is parsed, so that it can be found in the parsed URL and shown as written
// (a parsed URL shows the braces percent-encoded).
const callableSentinel = "tasker-callable-placeholder"

// parseWithSentinel parses raw with each [CallablePlaceholder] replaced by
// callableSentinel.
func parseWithSentinel(raw string) (*url.URL, error) {
	return url.Parse(strings.ReplaceAll(raw, CallablePlaceholder, callableSentinel))
}

func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		isAlnum := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
		if !isAlnum && !strings.ContainsRune("!#$%&'*+-.^_`|~", rune(c)) {
			return false
		}
	}
	return true
}

func validHeaderValue(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// urls returns the request URL and its secret-free form for messages.
func (h *HTTPInvoker) urls(callable string) (target, shown string) {
	if len(h.parts) == 1 {
		return h.parts[0], h.display
	}
	target = strings.Join(h.parts, url.PathEscape(callable))
	return target, RedactURL(target)
}

// Invoke implements [Invoker]: one POST of the envelope.
func (h *HTTPInvoker) Invoke(ctx context.Context, env *contracts.StepEnvelope) (res contracts.StepResult) {
	if env == nil {
		return contracts.Failure(contracts.ErrorTypeHandler, "no step envelope to send", false)
	}
	target, shown := h.urls(env.StepDefinition.Handler.Callable)
	defer func() {
		if p := recover(); p != nil {
			res = contracts.Failure(contracts.ErrorTypeHandler, fmt.Sprintf("calling %s panicked: %v", shown, p), false)
		}
	}()
	body, err := json.Marshal(env)
	if err != nil {
		return contracts.Failure(contracts.ErrorTypeHandler, "cannot encode the step envelope: "+err.Error(), false)
	}
	ctx, cancel := h.callContext(ctx)
	defer cancel()
	hdr := h.header(ctx, env.Task.TaskUUID)
	if env.Step.StepUUID != "" {
		hdr[HeaderIdempotencyKey] = []string{env.Step.StepUUID}
	}
	hdr[HeaderAttempt] = []string{strconv.Itoa(env.Step.Attempts)}
	id := env.EventID
	if id == "" {
		id = env.Step.StepUUID
	}
	if id == "" {
		id = newDeliveryID()
	}
	resp, release, err := h.post(ctx, target, shown, hdr, id, body, h.maxBytes)
	if err != nil {
		return h.callFailure(ctx, shown, err)
	}
	defer release()
	return ClassifyResponse(resp, h.now())
}

// callContext applies the per-call timeout.
func (h *HTTPInvoker) callContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if h.timeout > 0 {
		return context.WithTimeoutCause(ctx, h.timeout, &callTimeoutError{d: h.timeout})
	}
	return ctx, func() {}
}

// callFailure classifies a failed call, naming the per-call timeout when it
// is what ended the call.
func (h *HTTPInvoker) callFailure(ctx context.Context, shown string, err error) contracts.StepResult {
	var signErr *signError
	if errors.As(err, &signErr) {
		return contracts.Failure(contracts.ErrorTypeHandler, fmt.Sprintf("cannot sign the request to %s: %v", shown, signErr.err), false)
	}
	if ctx.Err() != nil {
		if cause := context.Cause(ctx); cause != nil {
			err = fmt.Errorf("%w (%w)", cause, err)
		}
	}
	return ClassifyCallError(shown, err)
}

// header builds the headers common to single and batched calls.
func (h *HTTPInvoker) header(ctx context.Context, taskUUID string) http.Header {
	hdr := make(http.Header, len(h.headers)+10)
	for k, v := range h.headers {
		hdr[k] = v // never modified below: the runner's keys are reserved
	}
	hdr["Content-Type"] = []string{"application/json"}
	hdr["Accept"] = []string{"application/json"}
	hdr["User-Agent"] = []string{userAgent}
	hdr[HeaderTraceparent] = []string{newTraceparent(ctx, taskUUID)}
	if dl, ok := ctx.Deadline(); ok {
		hdr[HeaderDeadline] = []string{dl.UTC().Format(deadlineLayout)}
	}
	return hdr
}

type signError struct{ err error }

func (e *signError) Error() string { return "signing: " + e.err.Error() }

var bufPool = sync.Pool{New: func() any { return new(bytes.Buffer) }}

// post sends one request and reads at most limit+1 bytes of the answer.
// release returns the body's buffer once the response has been classified.
func (h *HTTPInvoker) post(ctx context.Context, target, shown string, hdr http.Header, id string, body []byte, limit int64) (HTTPResponse, func(), error) {
	if h.sign != nil {
		if err := h.sign(hdr, id, h.now(), body); err != nil {
			return HTTPResponse{}, nil, &signError{err}
		}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return HTTPResponse{}, nil, err
	}
	req.Header = hdr
	resp, err := h.client.Do(req)
	if err != nil {
		// A refusal by the URL policy is configuration, not an outage: it
		// must not open the breaker, which would hide it behind retries.
		var refused *URLRefusedError
		reportFault(ctx, !errors.As(err, &refused))
		return HTTPResponse{}, nil, err
	}
	defer resp.Body.Close()
	reportFault(ctx, resp.StatusCode >= 500 || resp.StatusCode == http.StatusRequestTimeout)
	if resp.StatusCode == http.StatusTooManyRequests {
		reportThrottled(ctx)
	}
	buf := bufPool.Get().(*bytes.Buffer)
	buf.Reset()
	release := func() {
		if buf.Cap() <= 1<<20 {
			bufPool.Put(buf)
		}
	}
	if _, err := buf.ReadFrom(io.LimitReader(resp.Body, limit+1)); err != nil {
		reportFault(ctx, true)
		release()
		return HTTPResponse{}, nil, fmt.Errorf("reading the response (%s): %w", statusText(resp.StatusCode), err)
	}
	out := HTTPResponse{Endpoint: shown, StatusCode: resp.StatusCode, Header: resp.Header, Body: buf.Bytes(), Limit: limit}
	if int64(buf.Len()) > limit {
		out.TooLarge = true
		out.Body = out.Body[:limit]
	}
	return out, release, nil
}

type traceparentKey struct{}

// WithTraceparent returns a context whose handler calls join the trace of
// the W3C traceparent value tp: calls keep its trace id and flags, each
// with a new span id. An invalid tp is ignored.
func WithTraceparent(ctx context.Context, tp string) context.Context {
	return context.WithValue(ctx, traceparentKey{}, tp)
}

// newTraceparent makes a W3C traceparent for one call: the trace id of the
// context's traceparent if any, else the task's uuid (so all the steps of a
// task share a trace), else a random one; a random span id; sampled.
func newTraceparent(ctx context.Context, taskUUID string) string {
	var b [55]byte
	copy(b[:], "00-")
	flags := "01"
	traced := false
	if tp, ok := ctx.Value(traceparentKey{}).(string); ok && validTraceparent(tp) {
		copy(b[3:35], tp[3:35])
		flags = tp[53:55]
		traced = true
	}
	if !traced && taskUUID != "" {
		if id, err := uuid.Parse(taskUUID); err == nil && id != uuid.Nil {
			hex.Encode(b[3:35], id[:])
			traced = true
		}
	}
	if !traced {
		var id [16]byte
		putNonZero(id[:8])
		putNonZero(id[8:])
		hex.Encode(b[3:35], id[:])
	}
	b[35] = '-'
	var span [8]byte
	putNonZero(span[:])
	hex.Encode(b[36:52], span[:])
	b[52] = '-'
	copy(b[53:], flags)
	return string(b[:])
}

func putNonZero(b []byte) {
	v := rand.Uint64()
	for v == 0 {
		v = rand.Uint64()
	}
	for i := range b {
		b[i] = byte(v >> (8 * i))
	}
}

func validTraceparent(tp string) bool {
	if len(tp) != 55 || tp[2] != '-' || tp[35] != '-' || tp[52] != '-' || tp[:2] == "ff" {
		return false
	}
	for _, f := range []string{tp[:2], tp[3:35], tp[36:52], tp[53:]} {
		if !lowerHex(f) || strings.Trim(f, "0") == "" && len(f) > 2 {
			return false
		}
	}
	return true
}

func lowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func newDeliveryID() string { return uuid.NewString() }
