package callout

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"path"
	"reflect"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tasker-runner/tasker-runner/contracts"
)

// Protocols an [Endpoint] may speak.
const (
	ProtocolHTTP    = "http"
	ProtocolConnect = "connect"
	ProtocolGRPC    = "grpc"
	ProtocolGo      = "go"
)

// Endpoint says where and how the handlers matching Pattern are called.
type Endpoint struct {
	// Namespace limits the endpoint to one namespace; "" serves all.
	Namespace string
	// Pattern is a callable ("payments.refund"), a glob ("payments.*"), or
	// "*" (the namespace default).
	Pattern string
	// URL may contain {callable}. Unused for ProtocolGo.
	URL string
	// Protocol is http (default), connect, grpc or go (an in-process
	// function registered under the callable).
	Protocol string
	// Timeout bounds one call; 0 leaves it to the step's deadline.
	Timeout time.Duration
	// MaxConcurrency bounds calls in flight to this endpoint; 0 = no limit.
	// While the endpoint answers 429 the bound drops below it (halved per
	// throttled round, raised again call by call; see
	// [EndpointStatus.ConcurrencyLimit]).
	MaxConcurrency int
	// BatchMax > 1 groups up to this many steps into one call, waiting at
	// most BatchWindow for company.
	BatchMax    int
	BatchWindow time.Duration
	Breaker     BreakerSettings
	// Headers are sent with every call.
	Headers map[string]string
	// Secrets sign calls (Standard Webhooks), newest first; none = unsigned.
	Secrets []string
	// Unusable, when set, says why the endpoint cannot be used (its secret
	// reference does not resolve, say). The registry keeps it, so that its
	// callables still resolve to it rather than to a broader pattern, but
	// never calls it: each of its steps gets a
	// [contracts.ErrorTypeEndpointUnusable] failure asking for a retry in
	// UnusableRetry, which the runner treats as "not called" (the step
	// goes back to the queue without using an attempt). Only Namespace,
	// Pattern, URL, Protocol and UnusableRetry matter then.
	Unusable string
	// UnusableRetry is when the steps of an Unusable endpoint are tried
	// again; 0 means [UnusableRetryDefault].
	UnusableRetry time.Duration
}

// UnusableRetryDefault is how long the steps of an unusable endpoint wait
// before they are tried again (see [Endpoint.Unusable]).
const UnusableRetryDefault = 5 * time.Second

func (e Endpoint) name() string {
	if e.Namespace == "" {
		return e.Pattern
	}
	return e.Namespace + "/" + e.Pattern
}

func isGlob(p string) bool { return strings.ContainsAny(p, "*?[") }

// EndpointStatus is an endpoint's live state, for the status API and metrics.
type EndpointStatus struct {
	Namespace, Pattern, URL, Protocol string
	// BreakerState is closed, half-open or open.
	BreakerState string
	// ConsecutiveFailures counts endpoint failures since the last success.
	ConsecutiveFailures uint32
	InFlight            int64 // steps in calls now
	Calls               int64 // calls made (a batch is one call)
	Faults              int64 // calls failed by the endpoint (unreachable, timeout, 5xx)
	Rejected            int64 // steps not called because the breaker was open
	// ConcurrencyLimit is the calls allowed in flight now (0 = no limit):
	// the configured maximum, lowered while the endpoint answers 429.
	ConcurrencyLimit int
	// Throttled counts 429 (RESOURCE_EXHAUSTED) answers.
	Throttled int64
	// Error says why the endpoint cannot be used ([Endpoint.Unusable]);
	// "" when it can.
	Error string
}

// RegistryConfig configures a [Registry].
type RegistryConfig struct {
	// Funcs are in-process Go handlers; a callable registered there is used
	// when no endpoint names it exactly.
	Funcs *Funcs
	// Client makes HTTP calls. Default [SharedClient].
	Client *http.Client
	// MaxResponseBytes bounds a response. Default [DefaultMaxResponseBytes].
	MaxResponseBytes int64
	// Breaker holds the defaults for endpoints that set no breaker values.
	Breaker BreakerSettings
	// Now defaults to time.Now.
	Now func() time.Time
	// Observer, when set, receives every call's duration and outcome.
	Observer CallObserver
	// URLPolicy, when set, judges the address of every connection to a
	// handler (see [TransportOptions.URLPolicy]). [Registry.Set] does not
	// refuse endpoints by it: registration does ([URLPolicy.Check]), and a
	// row stored under an older policy fails its calls with
	// handler_url_refused rather than keep every other endpoint from
	// loading. With a policy and no Client, the registry makes its own
	// clients with the policy; a Client given here must have been made
	// with it (NewTransport(TransportOptions{URLPolicy: ...})).
	URLPolicy *URLPolicy
}

// Registry resolves callables to handlers: an exact endpoint pattern first
// (in the step's namespace, then any namespace), then an in-process Go
// function, then the most specific glob, then the namespace default "*".
// It is a [Resolver]; [Registry.Set] replaces the endpoints at run time.
type Registry struct {
	cfg RegistryConfig
	// h2c calls http:// Connect and gRPC services; nil: the shared one.
	h2c *http.Client

	mu    sync.RWMutex
	exact map[[2]string]*endpoint // (namespace, pattern)
	globs []*endpoint             // most specific first
	all   []*endpoint
}

type endpoint struct {
	ep    Endpoint
	inv   Invoker
	guard *guard
	close func()
}

// NewRegistry returns an empty [Registry].
func NewRegistry(cfg RegistryConfig) *Registry {
	if cfg.Funcs == nil {
		cfg.Funcs = &Funcs{}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	cfg.MaxResponseBytes = cmp.Or(cfg.MaxResponseBytes, DefaultMaxResponseBytes)
	r := &Registry{cfg: cfg, exact: map[[2]string]*endpoint{}}
	if cfg.URLPolicy != nil {
		opts := TransportOptions{URLPolicy: cfg.URLPolicy}
		if r.cfg.Client == nil {
			r.cfg.Client = NewClient(NewTransport(opts))
		}
		r.h2c = newH2CClient(opts)
	}
	return r
}

// Set replaces the registered endpoints. It validates every one first and,
// if any is invalid, changes nothing and reports all problems. Endpoints
// whose settings did not change keep their breaker state and counters.
func (r *Registry) Set(eps []Endpoint) error {
	r.mu.RLock()
	old := map[[2]string]*endpoint{}
	for _, e := range r.all {
		old[[2]string{e.ep.Namespace, e.ep.Pattern}] = e
	}
	r.mu.RUnlock()

	var (
		errs  []error
		built []*endpoint
		fresh []*endpoint
		seen  = map[[2]string]bool{}
	)
	for i, ep := range eps {
		ep.Protocol = cmp.Or(ep.Protocol, ProtocolHTTP)
		key := [2]string{ep.Namespace, ep.Pattern}
		if seen[key] {
			errs = append(errs, fmt.Errorf("endpoints[%d]: duplicate pattern %q in namespace %q", i, ep.Pattern, ep.Namespace))
			continue
		}
		seen[key] = true
		if prev, ok := old[key]; ok && reflect.DeepEqual(prev.ep, ep) {
			built = append(built, prev)
			continue
		}
		e, err := r.build(ep)
		if err != nil {
			errs = append(errs, fmt.Errorf("endpoints[%d] (%s): %w", i, ep.name(), err))
			continue
		}
		built = append(built, e)
		fresh = append(fresh, e)
	}
	if err := errors.Join(errs...); err != nil {
		for _, e := range fresh {
			e.close()
		}
		return err
	}

	exact := map[[2]string]*endpoint{}
	var globs []*endpoint
	for _, e := range built {
		if isGlob(e.ep.Pattern) {
			globs = append(globs, e)
		} else {
			exact[[2]string{e.ep.Namespace, e.ep.Pattern}] = e
		}
	}
	// Most specific first: a namespace's own globs before global ones, then
	// longer literal prefixes, then longer patterns ("*" ends up last).
	slices.SortStableFunc(globs, func(a, b *endpoint) int {
		if (a.ep.Namespace == "") != (b.ep.Namespace == "") {
			if a.ep.Namespace != "" {
				return -1
			}
			return 1
		}
		if c := cmp.Compare(literalPrefix(b.ep.Pattern), literalPrefix(a.ep.Pattern)); c != 0 {
			return c
		}
		return cmp.Compare(len(b.ep.Pattern), len(a.ep.Pattern))
	})

	r.mu.Lock()
	kept := map[*endpoint]bool{}
	for _, e := range built {
		kept[e] = true
	}
	var retired []*endpoint
	for _, e := range r.all {
		if !kept[e] {
			retired = append(retired, e)
		}
	}
	r.exact, r.globs, r.all = exact, globs, built
	r.mu.Unlock()
	for _, e := range retired {
		e.close()
	}
	return nil
}

// CheckEndpoint reports whether [Registry.Set] would accept ep, with the
// same message but without a position in a list: for validating one
// endpoint before it is stored.
func CheckEndpoint(ep Endpoint) error {
	ep.Protocol = cmp.Or(ep.Protocol, ProtocolHTTP)
	e, err := NewRegistry(RegistryConfig{}).build(ep)
	if err != nil {
		return err
	}
	e.close()
	return nil
}

func literalPrefix(p string) int {
	if i := strings.IndexAny(p, "*?["); i >= 0 {
		return i
	}
	return len(p)
}

func (r *Registry) build(ep Endpoint) (*endpoint, error) {
	if ep.Pattern == "" {
		return nil, errors.New("pattern is required")
	}
	if _, err := path.Match(ep.Pattern, ""); err != nil {
		return nil, fmt.Errorf("pattern %q is not a valid glob: %w", ep.Pattern, err)
	}
	if ep.Unusable != "" {
		retry := cmp.Or(ep.UnusableRetry, UnusableRetryDefault)
		return &endpoint{ep: ep, close: func() {}, inv: unusableInvoker{name: ep.name(), reason: ep.Unusable, retry: retry}}, nil
	}
	if ep.BatchMax < 0 || ep.MaxConcurrency < 0 || ep.Timeout < 0 || ep.BatchWindow < 0 {
		return nil, errors.New("batch_max, max_concurrency, timeout and batch_window must not be negative")
	}
	e := &endpoint{ep: ep, close: func() {}}
	if ep.Protocol == ProtocolGo {
		// In-process functions run under the step's own deadline; a breaker
		// guards remote services, not our own code.
		e.inv = &funcEndpoint{funcs: r.cfg.Funcs}
		return e, nil
	}
	signer, err := NewRequestSigner(ep.Secrets)
	if err != nil {
		return nil, err
	}
	var sign func(http.Header, string, time.Time, []byte) error
	if signer != nil {
		sign = func(h http.Header, id string, ts time.Time, body []byte) error {
			signer.Sign(h, id, ts, body)
			return nil
		}
	}
	var inner interface {
		Invoker
		BatchInvoker
	}
	switch ep.Protocol {
	case ProtocolHTTP:
		inner, err = NewHTTP(HTTPConfig{
			URL: ep.URL, Timeout: ep.Timeout, MaxResponseBytes: r.cfg.MaxResponseBytes,
			Headers: ep.Headers, Sign: sign, Client: r.cfg.Client, Now: r.cfg.Now,
		})
	case ProtocolConnect, ProtocolGRPC:
		// Signing (Standard Webhooks) covers HTTP+JSON bodies; Connect and
		// gRPC handlers authenticate with headers or mTLS instead.
		cc := ConnectConfig{
			URL: ep.URL, Protocol: ep.Protocol, Timeout: ep.Timeout, MaxResponseBytes: r.cfg.MaxResponseBytes,
			Headers: ep.Headers, Now: r.cfg.Now,
		}
		if r.cfg.URLPolicy != nil {
			cc.Client = r.cfg.Client
			if strings.HasPrefix(strings.ToLower(ep.URL), "http://") {
				cc.Client = r.h2c
			}
		}
		inner, err = NewConnect(cc)
	default:
		err = fmt.Errorf("protocol %q is not one of %s, %s, %s, %s", ep.Protocol, ProtocolHTTP, ProtocolConnect, ProtocolGRPC, ProtocolGo)
	}
	if err != nil {
		return nil, err
	}
	breaker := ep.Breaker
	if breaker == (BreakerSettings{}) {
		breaker = r.cfg.Breaker
	}
	e.guard = newGuard(ep.name(), breaker, ep.MaxConcurrency, r.cfg.Now)
	e.guard.obs, e.guard.protocol = r.cfg.Observer, ep.Protocol
	if ep.BatchMax > 1 {
		b := NewBatcher(&guardedBatch{inner: inner, g: e.guard}, ep.BatchMax, ep.BatchWindow)
		e.inv, e.close = b, b.Close
	} else {
		e.inv = &guardedInvoker{inner: inner, g: e.guard}
	}
	return e, nil
}

// unusableInvoker stands for an endpoint that cannot be used: it calls
// nothing and gives every step back (see [Endpoint.Unusable]).
type unusableInvoker struct {
	name, reason string
	retry        time.Duration
}

func (u unusableInvoker) Invoke(context.Context, *contracts.StepEnvelope) contracts.StepResult {
	secs := u.retry.Seconds()
	return contracts.StepResult{
		Success: false,
		Status:  contracts.StatusFailed,
		Error: &contracts.StepError{
			Message:   fmt.Sprintf("handler endpoint %s is unusable, the handler was not called: %s", u.name, u.reason),
			ErrorType: contracts.ErrorTypeEndpointUnusable,
			Retryable: true,
		},
		OrchestrationMetadata: &contracts.OrchestrationMetadata{BackoffRequestSeconds: &secs},
	}
}

// funcEndpoint calls the in-process function named by the step's callable.
type funcEndpoint struct{ funcs *Funcs }

func (f *funcEndpoint) Invoke(ctx context.Context, env *contracts.StepEnvelope) contracts.StepResult {
	inv, ok := f.funcs.Resolve("", env.StepDefinition.Handler.Callable)
	if !ok {
		return contracts.Failure(contracts.ErrorTypeNotFound, "no in-process Go handler registered for callable \""+env.StepDefinition.Handler.Callable+"\"", true)
	}
	return inv.Invoke(ctx, env)
}

// Resolve implements [Resolver].
func (r *Registry) Resolve(namespace, callable string) (Invoker, bool) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	if e, ok := r.exact[[2]string{namespace, callable}]; ok {
		return e.inv, true
	}
	if e, ok := r.exact[[2]string{"", callable}]; ok {
		return e.inv, true
	}
	if inv, ok := r.cfg.Funcs.Resolve(namespace, callable); ok {
		return inv, true
	}
	for _, e := range r.globs {
		if e.ep.Namespace != "" && e.ep.Namespace != namespace {
			continue
		}
		if ok, _ := path.Match(e.ep.Pattern, callable); ok {
			return e.inv, true
		}
	}
	return nil, false
}

// Endpoints returns every endpoint's live state, ordered by namespace and
// pattern.
func (r *Registry) Endpoints() []EndpointStatus {
	r.mu.RLock()
	all := slices.Clone(r.all)
	r.mu.RUnlock()
	out := make([]EndpointStatus, 0, len(all))
	for _, e := range all {
		s := EndpointStatus{Namespace: e.ep.Namespace, Pattern: e.ep.Pattern, URL: RedactURL(e.ep.URL), Protocol: e.ep.Protocol, BreakerState: "closed", Error: e.ep.Unusable}
		if g := e.guard; g != nil {
			s.BreakerState = g.cb.State().String()
			s.ConsecutiveFailures = g.cb.Counts().ConsecutiveFailures
			s.InFlight, s.Calls, s.Faults, s.Rejected = g.inflight.Load(), g.calls.Load(), g.faults.Load(), g.rejected.Load()
			s.ConcurrencyLimit, s.Throttled = g.lim.state()
		}
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b EndpointStatus) int {
		return cmp.Or(cmp.Compare(a.Namespace, b.Namespace), cmp.Compare(a.Pattern, b.Pattern))
	})
	return out
}

// Close stops every endpoint's background work (batchers).
func (r *Registry) Close() {
	r.mu.Lock()
	all := r.all
	r.all, r.exact, r.globs = nil, map[[2]string]*endpoint{}, nil
	r.mu.Unlock()
	for _, e := range all {
		e.close()
	}
}
