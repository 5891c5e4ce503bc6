package conformance

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/tasker-runner/tasker-runner/callout"
	"github.com/tasker-runner/tasker-runner/contracts"
)

// Protocols a handler can be driven over.
const (
	ProtocolHTTP    = callout.ProtocolHTTP
	ProtocolConnect = callout.ProtocolConnect
	ProtocolGRPC    = callout.ProtocolGRPC
)

// Defaults of a [Config].
const (
	// DefaultCallable is the callable the envelopes name unless
	// [Config.Callable] says otherwise. The Go example handler serves it.
	DefaultCallable = "conformance.echo"
	// DefaultTimeout is the deadline of every call (Tasker-Deadline).
	DefaultTimeout = 10 * time.Second
	// LargeContextBytes is the size of the task context of the
	// large-context case.
	LargeContextBytes = 256 << 10
	// ConcurrentCalls is how many calls the concurrent-calls case makes at
	// once.
	ConcurrentCalls = 8
	// BatchSize is how many steps the batch case sends in one call.
	BatchSize = 3
	// MaxYieldCalls bounds the calls of the yields case.
	MaxYieldCalls = 1000
)

// DefaultCursor is the cursor of the yields case's batch worker when no
// batchable step gave one: rows 0 to 1000.
var DefaultCursor = contracts.CursorConfig{BatchID: "001", StartCursor: json.RawMessage(`0`), EndCursor: json.RawMessage(`1000`), BatchSize: 1000}

// ErrInvalidConfig is wrapped by the error [Run] returns for a [Config] it
// cannot run: nothing was sent.
var ErrInvalidConfig = errors.New("invalid conformance configuration")

// Config says which handler to check and how.
type Config struct {
	// URL is the handler endpoint as it would be registered with the runner:
	// for "http" the URL the envelopes are POSTed to (it may contain
	// {callable}); for "connect" and "grpc" the base URL of the
	// tasker.handler.v1.HandlerService (http:// means h2c).
	URL string
	// Protocol is "http" (the default), "connect" or "grpc".
	Protocol string
	// Secret is the Standard Webhooks secret ("whsec_...") the handler
	// verifies. With it every request is signed and the signature cases run;
	// without it requests are unsigned and those cases are skipped. HTTP
	// only: Connect and gRPC calls are not signed.
	Secret string
	// Callable is step_definition.handler.callable of every envelope;
	// default [DefaultCallable]. Pick one the handler serves and that
	// answers any input with a result (success or failure).
	Callable string
	// Batch runs the batch case: the endpoint takes batched calls
	// (registered with batch_max > 1).
	Batch bool
	// Decision, when set, is the callable of a decision step the handler
	// serves: the decision-outcome case sends it an envelope with Context
	// and wants a valid decision_point_outcome back.
	Decision string
	// Batchable, when set, is the callable of a batchable step: the
	// batch-outcome case sends it an envelope with Context and wants a
	// valid batch_processing_outcome back.
	Batchable string
	// Yielding, when set, is the callable of a step that yields checkpoints
	// (a batch worker, typically): the yields case sends it a batch
	// worker's envelope (the first cursor of Batchable's outcome, or
	// [DefaultCursor]) with Context and follows its checkpoints, as the
	// runner does, until it completes.
	Yielding string
	// Timeout is the deadline of each call; default [DefaultTimeout].
	Timeout time.Duration
	// Context is the task context (a JSON object) of every envelope;
	// default {"conformance":true}.
	Context json.RawMessage
	// OnCase, when set, is called with each case's result as it finishes.
	OnCase func(CaseResult)
}

// Status is the outcome of a case.
type Status string

// Statuses of a case.
const (
	Pass Status = "PASS"
	Fail Status = "FAIL"
	// Skip: the case does not apply (no secret, no batch, another protocol).
	Skip Status = "SKIP"
)

// CaseResult is the outcome of one case.
type CaseResult struct {
	Name        string        `json:"name"`
	Description string        `json:"description"`
	Status      Status        `json:"status"`
	Reason      string        `json:"reason"`
	Duration    time.Duration `json:"-"`
	DurationMS  float64       `json:"duration_ms"`
}

// Report is the outcome of a run.
type Report struct {
	URL      string `json:"url"`
	Protocol string `json:"protocol"`
	Callable string `json:"callable"`
	Signed   bool   `json:"signed"`
	Batch    bool   `json:"batch"`
	// Decision, Batchable and Yielding are the callables of the dynamic
	// cases, when asked.
	Decision  string       `json:"decision,omitempty"`
	Batchable string       `json:"batchable,omitempty"`
	Yielding  string       `json:"yielding,omitempty"`
	Cases     []CaseResult `json:"cases"`
	Passed    int          `json:"passed"`
	Failed    int          `json:"failed"`
	Skipped   int          `json:"skipped"`
}

// OK reports whether no case failed.
func (r *Report) OK() bool { return r.Failed == 0 }

// Case describes one check of the suite.
type Case struct {
	Name string
	// Description says what the suite sends.
	Description string
	// Requirement says what the handler must do to pass.
	Requirement string
	run         func(s *suite, ctx context.Context) (Status, string)
}

// Cases returns the suite's cases in the order they run.
func Cases() []Case {
	out := make([]Case, len(catalogue))
	copy(out, catalogue)
	return out
}

// Run checks the handler cfg names against the contract: it sends every
// case's requests, in order, and reports each one. It returns an error
// wrapping [ErrInvalidConfig], and no report, when cfg cannot be run, and
// ctx's error with the report so far when ctx ends first. A handler that
// cannot be reached is a report with failed cases, not an error.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	s, err := newSuite(cfg)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalidConfig, err)
	}
	defer s.close()
	rep := &Report{
		URL: callout.RedactURL(s.cfg.URL), Protocol: s.cfg.Protocol, Callable: s.cfg.Callable,
		Signed: s.signer != nil, Batch: s.cfg.Batch, Cases: []CaseResult{},
		Decision: s.cfg.Decision, Batchable: s.cfg.Batchable, Yielding: s.cfg.Yielding,
	}
	for _, c := range catalogue {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		start := time.Now()
		status, reason := c.run(s, ctx)
		if err := ctx.Err(); err != nil && status == Fail {
			return rep, err // the failure is the interruption's
		}
		d := time.Since(start)
		r := CaseResult{
			Name: c.Name, Description: c.Description, Status: status, Reason: reason,
			Duration: d, DurationMS: float64(d.Microseconds()) / 1000,
		}
		switch status {
		case Pass:
			rep.Passed++
		case Fail:
			rep.Failed++
		default:
			rep.Skipped++
		}
		rep.Cases = append(rep.Cases, r)
		if cfg.OnCase != nil {
			cfg.OnCase(r)
		}
	}
	return rep, nil
}

// suite is one run's state.
type suite struct {
	cfg      Config
	signer   *callout.RequestSigner
	base     *http.Transport
	first    *contracts.StepEnvelope // minimal-envelope's, which retry-attempt sends again
	baseline answerClass             // how minimal-envelope was answered
	firstRes *contracts.StepResult   // minimal-envelope's result, when it got one
	cursor   *contracts.CursorConfig // the first batch of batch-outcome, for yields
}

func newSuite(cfg Config) (*suite, error) {
	var problems []error
	cfg.Protocol = strings.ToLower(strings.TrimSpace(cfg.Protocol))
	switch cfg.Protocol {
	case "":
		cfg.Protocol = ProtocolHTTP
	case ProtocolHTTP, ProtocolConnect, ProtocolGRPC:
	default:
		problems = append(problems, fmt.Errorf("protocol %q is not supported: use http, connect or grpc", cfg.Protocol))
	}
	if strings.TrimSpace(cfg.Callable) == "" {
		cfg.Callable = DefaultCallable
	}
	cfg.Decision = strings.TrimSpace(cfg.Decision)
	cfg.Batchable = strings.TrimSpace(cfg.Batchable)
	cfg.Yielding = strings.TrimSpace(cfg.Yielding)
	switch {
	case cfg.Timeout == 0:
		cfg.Timeout = DefaultTimeout
	case cfg.Timeout < 0:
		problems = append(problems, fmt.Errorf("the timeout must be positive, got %s", cfg.Timeout))
	}
	if len(cfg.Context) == 0 {
		cfg.Context = json.RawMessage(`{"conformance":true}`)
	} else if !isJSONObject(cfg.Context) {
		problems = append(problems, errors.New("the task context must be a JSON object"))
	}
	s := &suite{cfg: cfg}
	if cfg.Secret != "" {
		if cfg.Protocol == ProtocolConnect || cfg.Protocol == ProtocolGRPC {
			problems = append(problems, fmt.Errorf("a secret applies to the http protocol only: %s calls are not signed", cfg.Protocol))
		} else if signer, err := callout.NewRequestSigner([]string{cfg.Secret}); err != nil {
			problems = append(problems, err)
		} else {
			s.signer = signer
		}
	}
	switch cfg.Protocol {
	case ProtocolHTTP:
		if _, err := callout.NewHTTP(callout.HTTPConfig{URL: cfg.URL}); err != nil {
			problems = append(problems, err)
		}
	case ProtocolConnect, ProtocolGRPC:
		if _, err := callout.NewConnect(callout.ConnectConfig{URL: cfg.URL, Protocol: cfg.Protocol}); err != nil {
			problems = append(problems, err)
		}
	}
	if err := errors.Join(problems...); err != nil {
		return nil, err
	}
	s.base = callout.NewTransport(callout.TransportOptions{})
	if cfg.Protocol != ProtocolHTTP && strings.HasPrefix(strings.ToLower(cfg.URL), "http://") {
		// gRPC needs HTTP/2: on plain connections with prior knowledge (h2c),
		// as the runner calls such endpoints.
		s.base.Proxy = nil
		var p http.Protocols
		p.SetUnencryptedHTTP2(true)
		s.base.Protocols = &p
	}
	return s, nil
}

func (s *suite) close() { s.base.CloseIdleConnections() }

func isJSONObject(b []byte) bool {
	var m map[string]json.RawMessage
	return json.Unmarshal(b, &m) == nil && m != nil
}
