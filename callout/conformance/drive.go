package conformance

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"

	"github.com/tasker-runner/tasker-runner/callout"
	"github.com/tasker-runner/tasker-runner/contracts"
)

// The suite drives handlers with the runner's own invokers
// (callout.HTTPInvoker, callout.ConnectInvoker), so the requests are the
// runner's requests and the results what the runner would record. A
// recorder below the invoker sees the answer on the wire too, to judge it
// against the contract and to quote it.

// maxCapture bounds how much of an answer the recorder keeps.
const maxCapture = callout.DefaultMaxResponseBytes + 1

// exchange is one HTTP request and its answer as seen on the wire.
type exchange struct {
	method  string
	url     string // without secrets
	status  int    // 0 until headers arrive
	header  http.Header
	trailer http.Header
	body    []byte // the start of the answer
}

// recorder is an http.RoundTripper that records exchanges and may rewrite a
// request body (re-signing it) or its headers before sending it.
type recorder struct {
	next   http.RoundTripper
	mutate func(contentType string, body []byte) ([]byte, error)
	resign func(h http.Header, body []byte)
	// header, when set, changes the request's headers (the signature
	// covers the body only).
	header func(h http.Header)

	mu    sync.Mutex
	calls []*exchange
}

func (r *recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	ex := &exchange{method: req.Method, url: callout.RedactURL(req.URL.String())}
	r.mu.Lock()
	r.calls = append(r.calls, ex)
	r.mu.Unlock()
	if r.mutate != nil && req.Body != nil && req.Body != http.NoBody {
		body, err := io.ReadAll(req.Body)
		_ = req.Body.Close()
		if err != nil {
			return nil, err
		}
		if body, err = r.mutate(req.Header.Get("Content-Type"), body); err != nil {
			return nil, fmt.Errorf("conformance: rewriting the request: %w", err)
		}
		req = req.Clone(req.Context())
		req.Body = io.NopCloser(bytes.NewReader(body))
		req.ContentLength = int64(len(body))
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
		if r.resign != nil && req.Header.Get("webhook-signature") != "" {
			r.resign(req.Header, body)
		}
	}
	if r.header != nil {
		req = req.Clone(req.Context())
		r.header(req.Header)
	}
	resp, err := r.next.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	ex.status, ex.header = resp.StatusCode, resp.Header.Clone()
	r.mu.Unlock()
	resp.Body = &captureBody{ReadCloser: resp.Body, rec: r, ex: ex, resp: resp}
	return resp, nil
}

// last returns a copy of the last exchange, nil when none was made.
func (r *recorder) last() *exchange {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.calls) == 0 {
		return nil
	}
	c := *r.calls[len(r.calls)-1]
	c.body = bytes.Clone(c.body)
	return &c
}

// captureBody keeps the start of an answer and its trailers.
type captureBody struct {
	io.ReadCloser
	rec  *recorder
	ex   *exchange
	resp *http.Response
}

func (c *captureBody) Read(p []byte) (int, error) {
	n, err := c.ReadCloser.Read(p)
	c.rec.mu.Lock()
	if room := maxCapture - len(c.ex.body); room > 0 && n > 0 {
		c.ex.body = append(c.ex.body, p[:min(n, room)]...)
	}
	if err == io.EOF {
		c.ex.trailer = c.resp.Trailer.Clone()
	}
	c.rec.mu.Unlock()
	return n, err
}

// signFunc signs a request: the runner's callout.RequestSigner, or a
// deliberately wrong signature.
type signFunc func(h http.Header, id string, ts time.Time, body []byte)

// invoker is what the runner calls a handler with.
type invoker interface {
	callout.Invoker
	callout.BatchInvoker
}

// newInvoker returns the runner's invoker for the endpoint, sending through
// rec and signing with sign (nil: unsigned).
func (s *suite) newInvoker(rec *recorder, sign signFunc) (invoker, error) {
	rec.next = s.base
	client := callout.NewClient(rec)
	if s.cfg.Protocol != ProtocolHTTP {
		return callout.NewConnect(callout.ConnectConfig{URL: s.cfg.URL, Protocol: s.cfg.Protocol, Client: client})
	}
	cfg := callout.HTTPConfig{URL: s.cfg.URL, Client: client}
	if sign != nil {
		cfg.Sign = func(h http.Header, id string, ts time.Time, body []byte) error {
			sign(h, id, ts, body)
			return nil
		}
	}
	return callout.NewHTTP(cfg)
}

// sign is the runner's signature with the configured secret, nil without one.
func (s *suite) sign() signFunc {
	if s.signer == nil {
		return nil
	}
	return s.signer.Sign
}

// answer is what one call produced.
type answer struct {
	res contracts.StepResult // what the runner would record
	ex  *exchange            // what came back on the wire; nil or status 0: nothing
}

// call sends env through a fresh invoker under the case deadline.
func (s *suite) call(ctx context.Context, env *contracts.StepEnvelope, rec *recorder, sign signFunc) answer {
	if rec == nil {
		rec = &recorder{}
	}
	inv, err := s.newInvoker(rec, sign)
	if err != nil {
		return answer{res: contracts.Failure(contracts.ErrorTypeHandler, err.Error(), false)}
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	res := inv.Invoke(ctx, env)
	return answer{res: res, ex: rec.last()}
}

// envelope returns a complete envelope of a root step, attempt 1 of 3.
func (s *suite) envelope(stepName string) *contracts.StepEnvelope {
	return &contracts.StepEnvelope{
		EventID: newID(),
		Task: contracts.TaskInfo{
			TaskUUID: newID(), Namespace: "conformance", Name: "conformance", Version: "1.0.0",
			Context: s.cfg.Context, CorrelationID: newID(), Priority: 0, Tags: []string{},
		},
		Step: contracts.StepInfo{
			StepUUID: newID(), Name: stepName, TemplateStepName: stepName,
			Attempts: 1, MaxAttempts: 3, Retryable: true, Inputs: json.RawMessage(`{}`),
		},
		StepDefinition: contracts.StepDefinition{
			Handler:      contracts.HandlerDefinition{Callable: s.cfg.Callable},
			Dependencies: []string{},
		},
		DependencyResults: map[string]contracts.StepResult{},
	}
}

func newID() string { return uuid.Must(uuid.NewV7()).String() }

// answerClass sorts answers by what they mean under the contract.
type answerClass int

const (
	// classNone: not judged yet.
	classNone answerClass = iota
	// classResult: a StepExecutionResult (success or failure), or an empty
	// 2xx: the handler ran the step and said how it went.
	classResult
	// classFailure: an error status (or RPC error) the contract classifies,
	// carrying a failed StepExecutionResult or a retry delay: a reported,
	// deliberate failure.
	classFailure
	// classRejected: 401 or 403 (UNAUTHENTICATED, PERMISSION_DENIED): the
	// handler refused the request.
	classRejected
	// classBroken: anything else: no answer, a timeout, a body that is not a
	// result, an error status with no result, a redirect.
	classBroken
)

// verdict is an answer judged against the contract.
type verdict struct {
	class  answerClass
	status int    // HTTP status; 0 without an answer
	code   string // Connect/gRPC error code; "" when OK or not an RPC
	text   string // what happened, for a reason
}

// judge classifies a single-step answer to env.
func (s *suite) judge(a answer, env *contracts.StepEnvelope) verdict {
	if s.cfg.Protocol != ProtocolHTTP {
		return s.judgeRPC(a, "Execute")
	}
	ex := a.ex
	if ex == nil || ex.status == 0 {
		return verdict{class: classBroken, text: s.noAnswer(a.res)}
	}
	v := verdict{status: ex.status}
	st := statusText(ex.status)
	where := "POST " + ex.url + " answered " + st
	switch {
	case ex.status >= 200 && ex.status <= 299:
		if len(bytes.TrimSpace(ex.body)) == 0 {
			v.class, v.text = classResult, "answered "+st+" with an empty body (success with a null result)"
			return v
		}
		if r := a.res; !r.Success && r.Error != nil && r.Error.ErrorType == contracts.ErrorTypeInvalidResponse && strings.Contains(r.Error.Message, "larger than") {
			v.class, v.text = classBroken, r.Error.Message+" (the runner's default limit on a result)"
			return v
		}
		if _, err := callout.DecodeStepResult(ex.body); err != nil {
			v.class = classBroken
			v.text = fmt.Sprintf(`%s with %s, which is not a StepExecutionResult (%v); want 200 with {"success": true|false, ...}`, where, excerpt(ex.body), err)
			return v
		}
		if probs := resultProblems(ex.body, env.Step.StepUUID); len(probs) > 0 {
			v.class = classBroken
			v.text = fmt.Sprintf("%s with a StepExecutionResult that breaks the contract: %s; body %s", where, strings.Join(probs, "; "), excerpt(ex.body))
			return v
		}
		v.class, v.text = classResult, "answered "+st+": "+summary(a.res)
		return v
	case ex.status == http.StatusUnauthorized || ex.status == http.StatusForbidden:
		v.class, v.text = classRejected, where+bodyNote(ex.body)
		return v
	case ex.status >= 300 && ex.status <= 399:
		v.class = classBroken
		v.text = fmt.Sprintf("%s (Location %q): the runner does not follow redirects; register the final URL", where, ex.header.Get("Location"))
		return v
	}
	if res, err := callout.DecodeStepResult(ex.body); err == nil && !res.Success && ex.status != http.StatusNotFound {
		if probs := resultProblems(ex.body, env.Step.StepUUID); len(probs) > 0 {
			v.class = classBroken
			v.text = fmt.Sprintf("%s with a StepExecutionResult that breaks the contract: %s; body %s", where, strings.Join(probs, "; "), excerpt(ex.body))
			return v
		}
		v.class, v.text = classFailure, "answered "+st+" with a failed StepExecutionResult: "+summary(a.res)
		return v
	}
	if ra := ex.header.Get("Retry-After"); ra != "" && (ex.status == http.StatusTooManyRequests || ex.status == http.StatusServiceUnavailable) {
		v.class, v.text = classFailure, fmt.Sprintf("answered %s with Retry-After %s: a retryable failure", st, ra)
		return v
	}
	v.class = classBroken
	v.text = fmt.Sprintf("%s%s; want 200 with a StepExecutionResult%s", where, bodyNote(ex.body), s.statusHint(ex.status))
	return v
}

// judgeRPC classifies a Connect or gRPC answer.
func (s *suite) judgeRPC(a answer, procedure string) verdict {
	ex := a.ex
	if ex == nil || ex.status == 0 {
		return verdict{class: classBroken, text: s.noAnswer(a.res)}
	}
	v := verdict{status: ex.status}
	ok, code := rpcOutcome(s.cfg.Protocol, ex)
	if ok {
		if !a.res.Success && a.res.Error != nil && a.res.Error.ErrorType == contracts.ErrorTypeInvalidResponse {
			v.class, v.text = classBroken, a.res.Error.Message
			return v
		}
		v.class, v.text = classResult, "answered OK: "+summary(a.res)
		return v
	}
	v.code = code
	msg := "the call failed"
	if a.res.Error != nil {
		msg = a.res.Error.Message
	}
	switch connectCode(code) {
	case connect.CodeUnavailable, connect.CodeResourceExhausted, connect.CodeAborted:
		v.class, v.text = classFailure, msg+" (a retryable failure)"
	case connect.CodeUnauthenticated, connect.CodePermissionDenied:
		v.class, v.text = classRejected, msg
	default:
		v.class = classBroken
		if code == "" {
			v.text = fmt.Sprintf("%s %s answered HTTP %s, which is not a %s answer: %s", procedure, ex.url, statusText(ex.status), s.cfg.Protocol, msg)
		} else {
			v.text = msg + "; want OK with an ExecuteResponse" + s.codeHint(connectCode(code), procedure)
		}
	}
	return v
}

// rpcOutcome reads a Connect or gRPC exchange: whether it succeeded, and
// otherwise its error code ("" when it is not an RPC answer at all).
func rpcOutcome(protocol string, ex *exchange) (ok bool, code string) {
	if protocol == ProtocolGRPC {
		st := ex.trailer.Get("Grpc-Status")
		if st == "" {
			st = ex.header.Get("Grpc-Status") // a trailers-only answer
		}
		if st == "" {
			return false, ""
		}
		if st == "0" {
			return true, ""
		}
		n, err := strconv.ParseUint(st, 10, 32)
		if err != nil {
			return false, ""
		}
		return false, connect.Code(n).String()
	}
	if ex.status == http.StatusOK {
		return true, ""
	}
	var e struct {
		Code string `json:"code"`
	}
	if json.Unmarshal(ex.body, &e) == nil && e.Code != "" {
		return false, e.Code
	}
	return false, ""
}

func connectCode(s string) connect.Code {
	var c connect.Code
	if s == "" || c.UnmarshalText([]byte(s)) != nil {
		return connect.CodeUnknown
	}
	return c
}

// noAnswer words a call that got no answer.
func (s *suite) noAnswer(res contracts.StepResult) string {
	msg := "no answer"
	if res.Error != nil {
		msg = res.Error.Message
		if res.Error.ErrorType == contracts.ErrorTypeTimeout {
			msg += fmt.Sprintf(" (deadline %s): answer before Tasker-Deadline; the runner records handler_timeout and retries", s.cfg.Timeout)
		}
		if s.cfg.Protocol != ProtocolHTTP && strings.Contains(msg, "http2:") && strings.HasPrefix(strings.ToLower(s.cfg.URL), "http://") {
			msg += " (is it a Connect/gRPC service speaking HTTP/2 without TLS (h2c) at this address?)"
		}
	}
	return msg
}

func (s *suite) statusHint(code int) string {
	switch {
	case code == http.StatusNotFound:
		return fmt.Sprintf(" (does the handler serve callable %q at this URL? pick a callable it serves with --callable)", s.cfg.Callable)
	case code == http.StatusMethodNotAllowed:
		return " (the runner POSTs every envelope: accept POST at this URL)"
	case code >= 400 && code <= 499:
		return ` (the handler refused the envelope: accept every envelope the contract allows, and report a failed step as {"success": false, "error": {...}} in a 200)`
	case code >= 500:
		return ` (report a failed step as {"success": false, "error": {...}} rather than failing the request)`
	}
	return ""
}

func (s *suite) codeHint(code connect.Code, procedure string) string {
	switch code {
	case connect.CodeUnimplemented:
		if procedure == "ExecuteBatch" {
			return " (the service does not implement ExecuteBatch: leave out --batch unless the endpoint takes batched calls)"
		}
		return " (the service does not implement tasker.handler.v1.HandlerService/" + procedure + " at this URL)"
	case connect.CodeNotFound:
		return fmt.Sprintf(" (does the service serve callable %q? pick a callable it serves with --callable)", s.cfg.Callable)
	case connect.CodeInvalidArgument, connect.CodeFailedPrecondition, connect.CodeOutOfRange:
		return " (the handler refused the envelope: report a failed step as a response with success false)"
	default:
		return " (report a failed step as a response with success false rather than an error)"
	}
}

// summary words a result the way the runner would record it.
func summary(r contracts.StepResult) string {
	if r.Success {
		if r.Status == contracts.StatusYielded {
			return "yielded with a checkpoint"
		}
		return "success"
	}
	if r.Status == contracts.StatusYielded {
		return "yielded with a checkpoint"
	}
	if r.Error == nil {
		return "failure"
	}
	kind := "permanent"
	if r.Error.Retryable {
		kind = "retryable"
	}
	s := fmt.Sprintf("failure %s (%s", r.Error.ErrorType, kind)
	if m := r.OrchestrationMetadata; m != nil {
		switch {
		case m.BackoffRequestSeconds != nil:
			s += fmt.Sprintf(", retry in %gs", *m.BackoffRequestSeconds)
		case m.BackoffHint != nil:
			s += fmt.Sprintf(", retry in %gs", m.BackoffHint.DelaySeconds)
		}
	}
	return s + "): " + clip(r.Error.Message, 160)
}

// resultProblems checks a single-step result body against the contract's
// schema and its step_uuid against the envelope's.
func resultProblems(body []byte, stepUUID string) []string {
	probs := schemaProblems(resultSchema, body)
	var id struct {
		StepUUID *string `json:"step_uuid"`
	}
	if json.Unmarshal(body, &id) == nil && id.StepUUID != nil && *id.StepUUID != stepUUID {
		probs = append(probs, fmt.Sprintf("step_uuid is %q, not the envelope's %q", *id.StepUUID, stepUUID))
	}
	return probs
}

func statusText(code int) string {
	if t := http.StatusText(code); t != "" {
		return strconv.Itoa(code) + " " + t
	}
	return strconv.Itoa(code)
}

func bodyNote(body []byte) string {
	if len(bytes.TrimSpace(body)) == 0 {
		return " with an empty body"
	}
	return " with " + excerpt(body)
}

// excerpt quotes the start of a body.
func excerpt(b []byte) string {
	b = bytes.TrimSpace(b)
	const n = 200
	if len(b) <= n {
		return strconv.Quote(strings.ToValidUTF8(string(b), "\uFFFD"))
	}
	return strconv.Quote(strings.ToValidUTF8(string(b[:n]), "\uFFFD")) + fmt.Sprintf("... (%d bytes)", len(b))
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "..."
}
