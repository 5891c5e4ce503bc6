package callout

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/textproto"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/tasker-runner/tasker-runner/contracts"
	handlerv1 "github.com/tasker-runner/tasker-runner/contracts/gen/tasker/handler/v1"
	"github.com/tasker-runner/tasker-runner/contracts/gen/tasker/handler/v1/handlerv1connect"
)

// ConnectConfig configures a [ConnectInvoker] for one handler service
// speaking tasker.handler.v1.HandlerService (contracts/README.md, "Connect
// and gRPC").
type ConnectConfig struct {
	// URL is the base URL of the service, http:// (HTTP/2 without TLS, h2c)
	// or https://, optionally with a path prefix (https://host/rpc): the
	// procedure path /tasker.handler.v1.HandlerService/Execute is appended.
	// It may not contain {callable} (a service dispatches on
	// step_definition.handler.callable), a query or a fragment.
	URL string
	// Protocol is [ProtocolConnect] (the default: the Connect protocol with
	// the binary protobuf codec) or [ProtocolGRPC] (gRPC: HTTP/2 only).
	Protocol string
	// Timeout bounds each call on top of the step deadline carried by the
	// context; 0 means the context alone decides. The resulting deadline is
	// sent to the service (Connect-Timeout-Ms or grpc-timeout, and
	// Tasker-Deadline).
	Timeout time.Duration
	// MaxResponseBytes limits a response message (a batched call allows
	// this much per step); default [DefaultMaxResponseBytes]. A larger
	// answer is a permanent invalid_handler_response failure.
	MaxResponseBytes int64
	// Headers are added to every request as request metadata (API keys and
	// the like). They cannot replace the headers the runner, Go or the
	// protocol set (the ones [HTTPConfig.Headers] rejects, and Connect-* and
	// Grpc-*): NewConnect rejects them.
	Headers map[string]string
	// Client sends the requests; a nil *http.Client counts as unset. It
	// must speak HTTP/2 for gRPC, with prior knowledge (h2c) on http://
	// URLs, which an ordinary http.Client does not. Default: for http://
	// URLs a shared h2c client (it ignores proxy settings), for https://
	// URLs [SharedClient] (HTTP/2 negotiated with ALPN, which gRPC requires
	// of the service).
	Client connect.HTTPClient
	// Now is the clock (Retry-After dates); default time.Now.
	Now func() time.Time
}

// ConnectInvoker calls a handler service over Connect or gRPC
// (HandlerService.Execute and ExecuteBatch). It is an [Invoker] and a
// [BatchInvoker], safe for concurrent use.
//
// Requests carry Idempotency-Key (single calls), Tasker-Attempt (single
// calls), Tasker-Batch-Size (batched calls), Tasker-Deadline, traceparent and
// the configured headers, as metadata. Requests are not signed: Standard
// Webhooks signing is defined over an HTTP+JSON body.
type ConnectInvoker struct {
	baseURL  string
	display  string // the URL without secrets, for messages
	protocol string
	timeout  time.Duration
	maxBytes int64
	headers  http.Header
	client   connect.HTTPClient
	opts     []connect.ClientOption
	now      func() time.Time

	execute *connect.Client[handlerv1.ExecuteRequest, handlerv1.ExecuteResponse]
	// batch clients by number of steps: the read limit is per step.
	batch sync.Map // int -> *connect.Client[ExecuteBatchRequest, ExecuteBatchResponse]
}

// NewConnect validates cfg and returns its invoker.
func NewConnect(cfg ConnectConfig) (*ConnectInvoker, error) {
	base, err := parseServiceURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	protocol := strings.ToLower(strings.TrimSpace(cfg.Protocol))
	switch protocol {
	case "":
		protocol = ProtocolConnect
	case ProtocolConnect, ProtocolGRPC:
	default:
		return nil, fmt.Errorf("handler protocol %q is not supported: use %q or %q", cfg.Protocol, ProtocolConnect, ProtocolGRPC)
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("handler timeout must not be negative, got %s", cfg.Timeout)
	}
	if cfg.MaxResponseBytes < 0 {
		return nil, fmt.Errorf("max response bytes must not be negative, got %d", cfg.MaxResponseBytes)
	}
	headers, err := connectHeaders(cfg.Headers)
	if err != nil {
		return nil, err
	}
	c := &ConnectInvoker{
		baseURL:  base,
		display:  RedactURL(base),
		protocol: protocol,
		timeout:  cfg.Timeout,
		maxBytes: cmp.Or(cfg.MaxResponseBytes, DefaultMaxResponseBytes),
		headers:  headers,
		client:   cfg.Client,
		now:      cfg.Now,
	}
	if hc, ok := c.client.(*http.Client); ok && hc == nil {
		c.client = nil // a nil *http.Client in the interface means the default
	}
	if c.client == nil {
		if strings.HasPrefix(strings.ToLower(base), "http://") {
			c.client = sharedH2CClient()
		} else {
			c.client = SharedClient()
		}
	}
	if c.now == nil {
		c.now = time.Now
	}
	if protocol == ProtocolGRPC {
		c.opts = append(c.opts, connect.WithGRPC())
	}
	c.execute = connect.NewClient[handlerv1.ExecuteRequest, handlerv1.ExecuteResponse](
		c.client, base+handlerv1connect.HandlerServiceExecuteProcedure,
		connect.WithSchema(handlerMethod("Execute")),
		connect.WithClientOptions(c.opts...),
		connect.WithReadMaxBytes(clampInt(c.maxBytes)),
	)
	return c, nil
}

func clampInt(n int64) int {
	if n > math.MaxInt {
		return math.MaxInt
	}
	return int(n)
}

func handlerMethod(name protoreflect.Name) protoreflect.MethodDescriptor {
	return handlerv1.File_tasker_handler_v1_handler_proto.Services().ByName("HandlerService").Methods().ByName(name)
}

// parseServiceURL checks a Connect/gRPC base URL and returns it without a
// trailing slash.
func parseServiceURL(raw string) (string, error) {
	if strings.TrimSpace(raw) == "" {
		return "", errors.New("handler URL is empty")
	}
	if strings.Contains(raw, CallablePlaceholder) {
		return "", fmt.Errorf("handler URL %s: Connect and gRPC services are called at fixed procedure paths, so %s is not supported (the service dispatches on step_definition.handler.callable)",
			RedactURL(strings.ReplaceAll(raw, CallablePlaceholder, "callable")), CallablePlaceholder)
	}
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // url.Error repeats the URL, which may hold a secret
		}
		return "", fmt.Errorf("handler URL is not a valid URL: %v", err)
	}
	shown := RedactURL(raw)
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return "", fmt.Errorf("handler URL %s: the scheme must be http (h2c) or https", shown)
	case u.Opaque != "" || u.Host == "":
		return "", fmt.Errorf("handler URL %s: must be absolute, like https://host or http://host:8080/prefix", shown)
	case u.RawQuery != "" || u.ForceQuery:
		return "", fmt.Errorf("handler URL %s: a Connect or gRPC base URL cannot have a query", shown)
	case u.Fragment != "":
		return "", fmt.Errorf("handler URL %s: a Connect or gRPC base URL cannot have a fragment", shown)
	}
	return strings.TrimRight(raw, "/"), nil
}

// connectHeaders validates the configured headers as [NewHTTP] does, and
// also reserves the protocols' own Connect-* and Grpc-* headers.
func connectHeaders(cfg map[string]string) (http.Header, error) {
	names := make([]string, 0, len(cfg))
	for name := range cfg {
		names = append(names, name)
	}
	slices.Sort(names) // report problems in a stable order
	out := http.Header{}
	var problems []error
	for _, name := range names {
		value := cfg[name]
		canon := textproto.CanonicalMIMEHeaderKey(name)
		switch {
		case !validHeaderName(name):
			problems = append(problems, fmt.Errorf("header name %q is not a valid HTTP header name", name))
		case slices.Contains(reservedHeaders, canon),
			strings.HasPrefix(canon, "Connect-"), strings.HasPrefix(canon, "Grpc-"):
			problems = append(problems, fmt.Errorf("header %q is set by the runner or the protocol and cannot be configured", name))
		case !validHeaderValue(value):
			// The value may be a secret: never quote it.
			problems = append(problems, fmt.Errorf("header %q has a value with control characters", name))
		default:
			out[canon] = append(out[canon], value)
		}
	}
	if err := errors.Join(problems...); err != nil {
		return nil, err
	}
	return out, nil
}

var sharedH2CClient = sync.OnceValue(func() *http.Client { return newH2CClient(TransportOptions{}) })

// newH2CClient returns a client speaking HTTP/2 with prior knowledge over
// plain TCP, for http:// Connect and gRPC services.
func newH2CClient(o TransportOptions) *http.Client {
	t := NewTransport(o)
	t.Proxy = nil // prior-knowledge HTTP/2 does not go through HTTP proxies
	var p http.Protocols
	p.SetUnencryptedHTTP2(true) // and not HTTP/1: h2c with prior knowledge
	t.Protocols = &p
	return NewClient(t)
}

// Invoke implements [Invoker]: one Execute call.
func (c *ConnectInvoker) Invoke(ctx context.Context, env *contracts.StepEnvelope) (res contracts.StepResult) {
	if env == nil {
		return contracts.Failure(contracts.ErrorTypeHandler, "no step envelope to send", false)
	}
	defer func() {
		if p := recover(); p != nil {
			res = contracts.Failure(contracts.ErrorTypeHandler, fmt.Sprintf("calling %s panicked: %v", c.display, p), false)
		}
	}()
	msg, err := toExecuteRequest(env)
	if err != nil {
		return contracts.Failure(contracts.ErrorTypeHandler, "cannot encode the step envelope as protobuf: "+err.Error(), false)
	}
	ctx, cancel := c.callContext(ctx)
	defer cancel()
	req := connect.NewRequest(msg)
	hdr := req.Header()
	c.setHeaders(ctx, hdr, env.Task.TaskUUID)
	if env.Step.StepUUID != "" {
		hdr[HeaderIdempotencyKey] = []string{env.Step.StepUUID}
	}
	hdr[HeaderAttempt] = []string{strconv.Itoa(env.Step.Attempts)}
	resp, err := c.execute.CallUnary(ctx, req)
	if err != nil {
		res, fault := classifyConnectError(c.display, withCause(ctx, err), c.now())
		reportFault(ctx, fault)
		if connect.CodeOf(err) == connect.CodeResourceExhausted {
			reportThrottled(ctx)
		}
		return res
	}
	res, err = fromExecuteResponse(resp.Msg)
	if err != nil {
		return contracts.Failure(contracts.ErrorTypeInvalidResponse,
			fmt.Sprintf("handler at %s answered with a result that is not a valid step result: %v", c.display, err), false)
	}
	return res
}

// InvokeBatch implements [BatchInvoker]: one ExecuteBatch call for every
// envelope, the results matched by step_uuid with the rules of
// [HTTPInvoker.InvokeBatch]:
//
//   - a step without a result: retryable invalid_handler_response for that
//     step only (an empty ExecuteBatchResponse therefore fails every step
//     retryably: protobuf cannot tell it from "no results");
//   - a step with several results: permanent invalid_handler_response;
//   - a result for a step not in the call: ignored;
//   - an RPC error: every step gets the failure [ConnectInvoker.Invoke]
//     would give.
//
// The response may be [ConnectConfig.MaxResponseBytes] per step.
func (c *ConnectInvoker) InvokeBatch(ctx context.Context, envs []*contracts.StepEnvelope) []contracts.StepResult {
	out := make([]contracts.StepResult, len(envs))
	idx := make([]int, 0, len(envs))
	msg := &handlerv1.ExecuteBatchRequest{Steps: make([]*handlerv1.ExecuteRequest, 0, len(envs))}
	for i, env := range envs {
		if env == nil {
			out[i] = contracts.Failure(contracts.ErrorTypeHandler, "no step envelope to send", false)
			continue
		}
		m, err := toExecuteRequest(env)
		if err != nil {
			out[i] = contracts.Failure(contracts.ErrorTypeHandler, "cannot encode the step envelope as protobuf: "+err.Error(), false)
			out[i].StepUUID = env.Step.StepUUID
			continue
		}
		idx = append(idx, i)
		msg.Steps = append(msg.Steps, m)
	}
	if len(idx) == 0 {
		return out
	}
	fillAll := func(r contracts.StepResult) {
		for _, i := range idx {
			out[i] = cloneResult(r)
		}
	}
	defer func() {
		if p := recover(); p != nil {
			fillAll(contracts.Failure(contracts.ErrorTypeHandler, fmt.Sprintf("calling %s panicked: %v", c.display, p), false))
		}
	}()
	ctx, cancel := c.callContext(ctx)
	defer cancel()
	taskUUID := envs[idx[0]].Task.TaskUUID
	for _, i := range idx[1:] {
		if envs[i].Task.TaskUUID != taskUUID {
			taskUUID = "" // steps of several tasks: a trace of its own
			break
		}
	}
	req := connect.NewRequest(msg)
	c.setHeaders(ctx, req.Header(), taskUUID)
	req.Header()[HeaderBatchSize] = []string{strconv.Itoa(len(idx))}
	resp, err := c.batchClient(len(idx)).CallUnary(ctx, req)
	if err != nil {
		res, fault := classifyConnectError(c.display, withCause(ctx, err), c.now())
		reportFault(ctx, fault)
		if connect.CodeOf(err) == connect.CodeResourceExhausted {
			reportThrottled(ctx)
		}
		fillAll(res)
		return out
	}
	items := make([]batchItem, len(resp.Msg.GetResults()))
	for k, r := range resp.Msg.GetResults() {
		res, err := fromExecuteResponse(r)
		items[k] = batchItem{stepUUID: r.GetStepUuid(), res: res, err: err}
	}
	matchBatch(c.display, envs, idx, items, out)
	return out
}

// batchClient returns the ExecuteBatch client whose read limit fits n steps.
func (c *ConnectInvoker) batchClient(n int) *connect.Client[handlerv1.ExecuteBatchRequest, handlerv1.ExecuteBatchResponse] {
	if v, ok := c.batch.Load(n); ok {
		return v.(*connect.Client[handlerv1.ExecuteBatchRequest, handlerv1.ExecuteBatchResponse])
	}
	limit := c.maxBytes
	if limit <= math.MaxInt64/int64(n) {
		limit *= int64(n)
	} else {
		limit = math.MaxInt64
	}
	cl := connect.NewClient[handlerv1.ExecuteBatchRequest, handlerv1.ExecuteBatchResponse](
		c.client, c.baseURL+handlerv1connect.HandlerServiceExecuteBatchProcedure,
		connect.WithSchema(handlerMethod("ExecuteBatch")),
		connect.WithClientOptions(c.opts...),
		connect.WithReadMaxBytes(clampInt(limit)),
	)
	// Batches are at most batch_max steps: few distinct sizes.
	v, _ := c.batch.LoadOrStore(n, cl)
	return v.(*connect.Client[handlerv1.ExecuteBatchRequest, handlerv1.ExecuteBatchResponse])
}

// callContext applies the per-call timeout.
func (c *ConnectInvoker) callContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if c.timeout > 0 {
		return context.WithTimeoutCause(ctx, c.timeout, &callTimeoutError{d: c.timeout})
	}
	return ctx, func() {}
}

// serverDeadlineSlack is how early a server may end a call for the
// deadline the invoker sent it (the timeout travels in whole milliseconds).
const serverDeadlineSlack = 5 * time.Millisecond

// withCause adds the cause of the call context's end (the per-call timeout)
// to err, as [HTTPInvoker] does.
func withCause(ctx context.Context, err error) error {
	if ctx.Err() == nil {
		if dl, ok := ctx.Deadline(); ok {
			// The call failed because the deadline passed (an HTTP/2 stream
			// reset, say) before the context's timer fired, or the server
			// ended it at the deadline we sent, which the protocol rounds
			// down to whole milliseconds: our timer is about to fire.
			left := time.Until(dl)
			if left <= 0 || left <= serverDeadlineSlack && connect.CodeOf(err) == connect.CodeDeadlineExceeded {
				<-ctx.Done()
			}
		}
	}
	if ctx.Err() != nil {
		if cause := context.Cause(ctx); cause != nil && !errors.Is(err, cause) {
			return fmt.Errorf("%w (%w)", cause, err)
		}
	}
	return err
}

// setHeaders sets the headers common to single and batched calls.
func (c *ConnectInvoker) setHeaders(ctx context.Context, hdr http.Header, taskUUID string) {
	for k, v := range c.headers {
		hdr[k] = v // never modified: the runner's keys are reserved
	}
	hdr["User-Agent"] = []string{userAgent}
	hdr[HeaderTraceparent] = []string{newTraceparent(ctx, taskUUID)}
	if dl, ok := ctx.Deadline(); ok {
		hdr[HeaderDeadline] = []string{dl.UTC().Format(deadlineLayout)}
	}
}

var (
	protoUnmarshal = protojson.UnmarshalOptions{DiscardUnknown: true}
	// EmitUnpopulated: proto3 false/0/"" are absent on the wire, but
	// DecodeStepResult needs "success"; unset optional fields
	// (error.retryable) stay absent, so absent still means true.
	protoMarshal = protojson.MarshalOptions{EmitUnpopulated: true}
)

// toExecuteRequest converts an envelope through its JSON form: the proto's
// json_names are the JSON contract's field names. JSON-shaped fields become
// google.protobuf.Struct, whose numbers are doubles (integers beyond 2^53
// lose precision, as in JavaScript).
func toExecuteRequest(env *contracts.StepEnvelope) (*handlerv1.ExecuteRequest, error) {
	raw, err := json.Marshal(env)
	if err != nil {
		return nil, err
	}
	msg := &handlerv1.ExecuteRequest{}
	if err := protoUnmarshal.Unmarshal(raw, msg); err != nil {
		return nil, err
	}
	return msg, nil
}

// fromExecuteResponse normalises a result message as [DecodeStepResult]
// normalises a JSON body: an unset error.retryable means true.
func fromExecuteResponse(m *handlerv1.ExecuteResponse) (contracts.StepResult, error) {
	if m == nil {
		return contracts.StepResult{}, errors.New("no result message")
	}
	raw, err := protoMarshal.Marshal(m)
	if err != nil {
		return contracts.StepResult{}, err
	}
	return DecodeStepResult(raw)
}

// classifyConnectError turns a failed Connect or gRPC call into a step
// result, and reports whether the endpoint itself is at fault (unreachable,
// timing out, overloaded, broken: what should count towards its circuit
// breaker) rather than the handler having refused the request. endpoint
// names the service in messages and must carry no secrets; now dates a
// Retry-After. Pure: same input, same result.
//
//	code (or cause)                                        step gets                            fault
//	the step deadline or the per-call timeout             retryable handler_timeout            yes
//	connection refused/reset, DNS, TLS, early close       retryable handler_error (host named)  yes
//	the context cancelled (runner gave up)                retryable handler_error "abandoned"   no
//	answer over MaxResponseBytes (client-side)            permanent invalid_handler_response   no
//	answer that does not decode (client-side)             permanent invalid_handler_response   no
//	DEADLINE_EXCEEDED from the service                    retryable handler_timeout            yes
//	UNAVAILABLE, INTERNAL, UNKNOWN                        retryable handler_error              yes
//	RESOURCE_EXHAUSTED (throttling, like HTTP 429)        retryable handler_error              no
//	ABORTED, CANCELED from the service                    retryable handler_error              no
//	INVALID_ARGUMENT, NOT_FOUND, ALREADY_EXISTS,
//	PERMISSION_DENIED, UNAUTHENTICATED,
//	FAILED_PRECONDITION, OUT_OF_RANGE, UNIMPLEMENTED,
//	DATA_LOSS                                             permanent handler_error              no
//	any other code                                        retryable handler_error              yes
//
// Messages name the code (gRPC's upper-case names) and the service's own
// message; status_code stays 0. Codes a client synthesises from a plain
// HTTP status (a proxy's 503 or 404) follow the same table. A retryable
// failure honours a retry delay from the service: a google.rpc.RetryInfo
// error detail, else a Retry-After header or trailer (seconds or HTTP date),
// capped at [MaxRetryAfter], as orchestration_metadata.backoff_request_seconds.
func classifyConnectError(endpoint string, err error, now time.Time) (contracts.StepResult, bool) {
	var ce *connect.Error
	isConnect := errors.As(err, &ce)
	wire := isConnect && connect.IsWireError(ce)
	var refused *URLRefusedError
	if errors.As(err, &refused) {
		// The policy's verdict, not the endpoint's fault.
		return ClassifyCallError(endpoint, err), false
	}
	var callTimeout *callTimeoutError
	if errors.As(err, &callTimeout) {
		// Our per-call timeout ended the call (see withCause), even when
		// the server's DEADLINE_EXCEEDED for it came back first.
		return ClassifyCallError(endpoint, err), true
	}
	if !wire {
		switch {
		case errors.Is(err, context.Canceled):
			return ClassifyCallError(endpoint, err), false
		case errors.Is(err, context.DeadlineExceeded):
			return ClassifyCallError(endpoint, err), true
		case !isConnect:
			return ClassifyCallError(endpoint, err), true
		case ce.Code() == connect.CodeResourceExhausted:
			// The client's read limit (connect.WithReadMaxBytes).
			return contracts.Failure(contracts.ErrorTypeInvalidResponse,
				fmt.Sprintf("response from %s larger than the limit: %s", endpoint, ce.Message()), false), false
		case ce.Code() == connect.CodeInvalidArgument:
			// The client could not decode or decompress the answer.
			return contracts.Failure(contracts.ErrorTypeInvalidResponse,
				fmt.Sprintf("handler at %s answered with a message that cannot be read: %s", endpoint, ce.Message()), false), false
		case isTransportError(ce.Unwrap()):
			return ClassifyCallError(endpoint, ce.Unwrap()), true
		}
	}
	code := ce.Code()
	name := codeName(code)
	var msg string
	if wire {
		msg = fmt.Sprintf("handler at %s answered %s", endpoint, name)
	} else {
		msg = fmt.Sprintf("call to %s failed with %s", endpoint, name)
	}
	if m := ce.Message(); m != "" {
		msg += ": " + m
	}
	var retryable, fault bool
	errType := contracts.ErrorTypeHandler
	switch code {
	case connect.CodeDeadlineExceeded:
		retryable, fault, errType = true, true, contracts.ErrorTypeTimeout
	case connect.CodeUnavailable, connect.CodeInternal, connect.CodeUnknown:
		retryable, fault = true, true
	case connect.CodeResourceExhausted, connect.CodeAborted, connect.CodeCanceled:
		// RESOURCE_EXHAUSTED is throttling (HTTP 429): it lowers the
		// endpoint's concurrency limit (see reportThrottled), it does not
		// open the breaker.
		retryable = true
	case connect.CodeInvalidArgument, connect.CodeNotFound, connect.CodeAlreadyExists, connect.CodePermissionDenied,
		connect.CodeUnauthenticated, connect.CodeFailedPrecondition, connect.CodeOutOfRange,
		connect.CodeUnimplemented, connect.CodeDataLoss:
		retryable = false
	default:
		retryable, fault = true, true
	}
	res := contracts.Failure(errType, msg, retryable)
	if retryable {
		if d, ok := retryDelay(ce, now); ok {
			s := d.Seconds()
			res.OrchestrationMetadata = &contracts.OrchestrationMetadata{BackoffRequestSeconds: &s}
		}
	}
	return res, fault
}

// codeName is the gRPC name of a code: UNAVAILABLE, DEADLINE_EXCEEDED...
func codeName(c connect.Code) string {
	s := c.String()
	if strings.HasPrefix(s, "code_") {
		return "code " + strings.TrimPrefix(s, "code_")
	}
	return strings.ToUpper(s)
}

// isTransportError reports an error of the network below the protocol.
func isTransportError(err error) bool {
	if err == nil {
		return false
	}
	var dnsErr *net.DNSError
	var opErr *net.OpError
	var certErr *tls.CertificateVerificationError
	var unknownAuth x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var recErr tls.RecordHeaderError
	var errno syscall.Errno
	return errors.As(err, &dnsErr) || errors.As(err, &opErr) || errors.As(err, &errno) ||
		errors.As(err, &certErr) || errors.As(err, &unknownAuth) || errors.As(err, &hostErr) || errors.As(err, &recErr) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}

const retryInfoType = "google.rpc.RetryInfo"

// retryDelay reads the delay a service asks for: a google.rpc.RetryInfo
// detail, else Retry-After in the error's headers or trailers.
func retryDelay(ce *connect.Error, now time.Time) (time.Duration, bool) {
	for _, d := range ce.Details() {
		if d.Type() != retryInfoType {
			continue
		}
		if delay, ok := parseRetryInfo(d.Bytes()); ok {
			return min(delay, MaxRetryAfter), true
		}
	}
	return ParseRetryAfter(ce.Meta().Get("Retry-After"), now)
}

// parseRetryInfo decodes google.rpc.RetryInfo{google.protobuf.Duration
// retry_delay = 1} (Duration{int64 seconds = 1; int32 nanos = 2}) without
// depending on the generated errdetails package.
func parseRetryInfo(b []byte) (time.Duration, bool) {
	var delay []byte
	found := false
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return 0, false
		}
		b = b[n:]
		if num == 1 && typ == protowire.BytesType {
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return 0, false
			}
			delay, found = v, true
			b = b[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, b)
		if n < 0 {
			return 0, false
		}
		b = b[n:]
	}
	if !found {
		return 0, false
	}
	var secs, nanos int64
	for len(delay) > 0 {
		num, typ, n := protowire.ConsumeTag(delay)
		if n < 0 {
			return 0, false
		}
		delay = delay[n:]
		if (num == 1 || num == 2) && typ == protowire.VarintType {
			v, n := protowire.ConsumeVarint(delay)
			if n < 0 {
				return 0, false
			}
			if num == 1 {
				secs = int64(v)
			} else {
				nanos = int64(int32(v))
			}
			delay = delay[n:]
			continue
		}
		n = protowire.ConsumeFieldValue(num, typ, delay)
		if n < 0 {
			return 0, false
		}
		delay = delay[n:]
	}
	if secs < 0 || nanos < 0 {
		return 0, false
	}
	if secs >= int64(MaxRetryAfter/time.Second) {
		return MaxRetryAfter, true
	}
	return time.Duration(secs)*time.Second + time.Duration(nanos), true
}
