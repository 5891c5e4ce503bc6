package callout_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/tasker-runner/tasker-runner/callout"
	"github.com/tasker-runner/tasker-runner/contracts"
	handlerv1 "github.com/tasker-runner/tasker-runner/contracts/gen/tasker/handler/v1"
	"github.com/tasker-runner/tasker-runner/contracts/gen/tasker/handler/v1/handlerv1connect"
)

// rpcService is a handler service written once and served both by the
// generated Connect handler and by a grpc-go server.
type rpcService struct {
	execute func(ctx context.Context, h http.Header, req *handlerv1.ExecuteRequest) (*handlerv1.ExecuteResponse, error)
	batch   func(ctx context.Context, h http.Header, req *handlerv1.ExecuteBatchRequest) (*handlerv1.ExecuteBatchResponse, error)
}

// Connect side.

type connectService struct{ svc rpcService }

func (s connectService) Execute(ctx context.Context, req *connect.Request[handlerv1.ExecuteRequest]) (*connect.Response[handlerv1.ExecuteResponse], error) {
	if s.svc.execute == nil {
		return nil, connect.NewError(connect.CodeUnimplemented, errors.New("no Execute"))
	}
	res, err := s.svc.execute(ctx, req.Header(), req.Msg)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(res), nil
}

func (s connectService) ExecuteBatch(ctx context.Context, req *connect.Request[handlerv1.ExecuteBatchRequest]) (*connect.Response[handlerv1.ExecuteBatchResponse], error) {
	if s.svc.batch == nil {
		return nil, connect.NewError(connect.CodeUnimplemented, errors.New("no ExecuteBatch"))
	}
	res, err := s.svc.batch(ctx, req.Header(), req.Msg)
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(res), nil
}

// startConnectServer serves svc with the generated Connect handler over
// HTTP/1.1 and h2c on loopback and returns its base URL.
func startConnectServer(t *testing.T, svc rpcService) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle(handlerv1connect.NewHandlerServiceHandler(connectService{svc}))
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	srv := &http.Server{Handler: mux, Protocols: &protocols, ReadHeaderTimeout: time.Minute}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		_ = srv.Close()
		<-done
	})
	return "http://" + ln.Addr().String()
}

// gRPC side: a grpc-go server with a hand-registered service description
// (what protoc-gen-go-grpc would generate), using the generated messages.

type grpcHandlerService interface {
	Execute(context.Context, *handlerv1.ExecuteRequest) (*handlerv1.ExecuteResponse, error)
	ExecuteBatch(context.Context, *handlerv1.ExecuteBatchRequest) (*handlerv1.ExecuteBatchResponse, error)
}

type grpcService struct{ svc rpcService }

func incomingHeader(ctx context.Context) http.Header {
	md, _ := metadata.FromIncomingContext(ctx)
	h := http.Header{}
	for k, vs := range md {
		for _, v := range vs {
			h.Add(k, v)
		}
	}
	return h
}

func (s grpcService) Execute(ctx context.Context, req *handlerv1.ExecuteRequest) (*handlerv1.ExecuteResponse, error) {
	if s.svc.execute == nil {
		return nil, status.Error(codes.Unimplemented, "no Execute")
	}
	return s.svc.execute(ctx, incomingHeader(ctx), req)
}

func (s grpcService) ExecuteBatch(ctx context.Context, req *handlerv1.ExecuteBatchRequest) (*handlerv1.ExecuteBatchResponse, error) {
	if s.svc.batch == nil {
		return nil, status.Error(codes.Unimplemented, "no ExecuteBatch")
	}
	return s.svc.batch(ctx, incomingHeader(ctx), req)
}

func grpcUnary[Req any, PReq interface {
	*Req
	proto.Message
}](call func(grpcHandlerService, context.Context, PReq) (proto.Message, error), method string) grpc.MethodDesc {
	return grpc.MethodDesc{
		MethodName: method,
		Handler: func(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
			in := PReq(new(Req))
			if err := dec(in); err != nil {
				return nil, err
			}
			handler := func(ctx context.Context, req any) (any, error) {
				return call(srv.(grpcHandlerService), ctx, req.(PReq))
			}
			if interceptor == nil {
				return handler(ctx, in)
			}
			info := &grpc.UnaryServerInfo{Server: srv, FullMethod: "/" + handlerv1connect.HandlerServiceName + "/" + method}
			return interceptor(ctx, in, info, handler)
		},
	}
}

var grpcHandlerServiceDesc = grpc.ServiceDesc{
	ServiceName: handlerv1connect.HandlerServiceName,
	HandlerType: (*grpcHandlerService)(nil),
	Methods: []grpc.MethodDesc{
		grpcUnary(func(s grpcHandlerService, ctx context.Context, req *handlerv1.ExecuteRequest) (proto.Message, error) {
			return s.Execute(ctx, req)
		}, "Execute"),
		grpcUnary(func(s grpcHandlerService, ctx context.Context, req *handlerv1.ExecuteBatchRequest) (proto.Message, error) {
			return s.ExecuteBatch(ctx, req)
		}, "ExecuteBatch"),
	},
	Metadata: "tasker/handler/v1/handler.proto",
}

// startGRPCServer serves svc with grpc-go (h2c) and returns its base URL.
func startGRPCServer(t *testing.T, svc rpcService) string {
	t.Helper()
	s := grpc.NewServer()
	s.RegisterService(&grpcHandlerServiceDesc, grpcService{svc})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = s.Serve(ln)
	}()
	t.Cleanup(func() {
		s.Stop()
		<-done
	})
	return "http://" + ln.Addr().String()
}

// Both servers, by protocol name.
var rpcServers = []struct {
	protocol string
	start    func(*testing.T, rpcService) string
}{
	{callout.ProtocolConnect, startConnectServer},
	{callout.ProtocolGRPC, startGRPCServer},
}

func newConnectInvoker(t *testing.T, cfg callout.ConnectConfig) *callout.ConnectInvoker {
	t.Helper()
	inv, err := callout.NewConnect(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return inv
}

// richEnvelope sets every field of the contract to a non-zero value.
func richEnvelope() *contracts.StepEnvelope {
	return &contracts.StepEnvelope{
		EventID: "0193a0b2-7c1d-7e3f-8a4b-5c6d7e8f9a0b",
		Task: contracts.TaskInfo{
			TaskUUID: "0193a0b2-0000-7000-8000-000000000001", Namespace: "payments", Name: "order_fulfillment", Version: "1.0.0",
			Context:       json.RawMessage(`{"order_id":42,"amount":12.5,"currency":"EUR","lines":[{"sku":"a-1","qty":2}],"gift":true,"note":null}`),
			CorrelationID: "0193a0b2-0000-7000-8000-0000000000c1", ParentCorrelationID: "0193a0b2-0000-7000-8000-0000000000c0",
			Priority: 3, Tags: []string{"web", "vip"},
		},
		Step: contracts.StepInfo{
			StepUUID: "0193a0b2-0000-7000-8000-000000000002", Name: "charge_card_2", TemplateStepName: "charge_card",
			Attempts: 2, MaxAttempts: 5, Retryable: true,
			Inputs:     json.RawMessage(`{"batch_id":"001","start_cursor":0,"end_cursor":500,"batch_size":500}`),
			Checkpoint: json.RawMessage(`{"cursor":250,"items_processed":250,"accumulated_results":{"total":18.5}}`),
		},
		StepDefinition: contracts.StepDefinition{
			Handler: contracts.HandlerDefinition{
				Callable: "payments.charge_card", Method: "charge",
				Initialization: map[string]any{"gateway": "stripe", "retries": 2.0, "regions": []any{"eu", "us"}},
			},
			Dependencies: []string{"validate_order", "reserve_stock"}, TimeoutSeconds: 30,
		},
		DependencyResults: map[string]contracts.StepResult{
			"validate_order": {
				Success: true, Status: contracts.StatusCompleted,
				Result:   json.RawMessage(`{"valid":true,"customer_id":"c-981"}`),
				Metadata: json.RawMessage(`{"execution_time_ms":4}`),
			},
			"reserve_stock": {Success: true, Status: contracts.StatusCompleted, Result: json.RawMessage(`["a-1",2,null,"x"]`)},
			"root":          {Success: true, Status: contracts.StatusCompleted, Result: json.RawMessage(`"scalar"`)},
		},
	}
}

// jsonValue decodes JSON into a generic value without the entries that
// proto3 cannot tell from absent (false, 0, ""), so that the JSON envelope
// and the protobuf JSON of the message the handler received compare equal
// exactly when no information was lost.
func jsonValue(t *testing.T, b []byte) any {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	var strip func(any) any
	strip = func(v any) any {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				if e == false || e == 0.0 || e == "" {
					delete(x, k)
					continue
				}
				x[k] = strip(e)
			}
		case []any:
			for i, e := range x {
				x[i] = strip(e)
			}
		}
		return v
	}
	return strip(v)
}

type seenCall struct {
	header   http.Header
	deadline time.Time
	req      []byte // protojson of the request message
}

// recordingService answers a rich result and records what it received.
func recordingService(t *testing.T, seen chan<- seenCall) rpcService {
	return rpcService{
		execute: func(ctx context.Context, h http.Header, req *handlerv1.ExecuteRequest) (*handlerv1.ExecuteResponse, error) {
			dl, _ := ctx.Deadline()
			raw, err := protojson.Marshal(req)
			if err != nil {
				t.Error(err)
			}
			seen <- seenCall{header: h, deadline: dl, req: raw}
			return &handlerv1.ExecuteResponse{
				StepUuid: req.GetStep().GetStepUuid(),
				Success:  true,
				Status:   contracts.StatusCompleted,
				Result: structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{
					"charge_id": structpb.NewStringValue("ch_3N8"),
					"amount":    structpb.NewNumberValue(req.GetTask().GetContext().GetFields()["order_id"].GetNumberValue() * 10),
				}}),
				Metadata: &structpb.Struct{Fields: map[string]*structpb.Value{"handler_version": structpb.NewStringValue("2.3.1")}},
				OrchestrationMetadata: &handlerv1.OrchestrationMetadata{
					BackoffHint:           &handlerv1.BackoffHint{DelaySeconds: 5, BackoffType: "server_requested"},
					BackoffRequestSeconds: proto.Float64(2.5),
				},
			}, nil
		},
	}
}

func TestConnectInvokerRunsStepsEndToEnd(t *testing.T) {
	t.Parallel()
	for _, srv := range rpcServers {
		t.Run(srv.protocol, func(t *testing.T) {
			t.Parallel()
			seen := make(chan seenCall, 1)
			url := srv.start(t, recordingService(t, seen))
			inv := newConnectInvoker(t, callout.ConnectConfig{
				URL: url + "/", Protocol: srv.protocol,
				Headers: map[string]string{"x-api-key": "k-123", "Authorization": "Bearer t0k"},
			})
			env := richEnvelope()
			deadline := time.Now().Add(30 * time.Second)
			ctx, cancel := context.WithDeadline(t.Context(), deadline)
			defer cancel()
			res := inv.Invoke(ctx, env)

			// The result survives the conversion.
			if !res.Success || res.Status != contracts.StatusCompleted || res.Error != nil || res.StepUUID != env.Step.StepUUID {
				t.Fatalf("result %+v", res)
			}
			if got := jsonValue(t, res.Result); !reflect.DeepEqual(got, map[string]any{"charge_id": "ch_3N8", "amount": 420.0}) {
				t.Errorf("result %s", res.Result)
			}
			if string(res.Metadata) == "" || !reflect.DeepEqual(jsonValue(t, res.Metadata), map[string]any{"handler_version": "2.3.1"}) {
				t.Errorf("metadata %s", res.Metadata)
			}
			om := res.OrchestrationMetadata
			if om == nil || om.BackoffRequestSeconds == nil || *om.BackoffRequestSeconds != 2.5 || om.BackoffHint == nil ||
				*om.BackoffHint != (contracts.BackoffHint{DelaySeconds: 5, BackoffType: "server_requested"}) {
				t.Errorf("orchestration metadata %+v", om)
			}

			got := <-seen
			// The envelope survives the conversion: context, inputs,
			// checkpoint, initialization and dependency results included.
			want, err := json.Marshal(env)
			if err != nil {
				t.Fatal(err)
			}
			if g, w := jsonValue(t, got.req), jsonValue(t, want); !reflect.DeepEqual(g, w) {
				t.Errorf("the handler received\n%s\nwant\n%s", got.req, want)
			}
			// Headers.
			h := got.header
			for name, want := range map[string]string{
				callout.HeaderIdempotencyKey: env.Step.StepUUID,
				callout.HeaderAttempt:        "2",
				"X-Api-Key":                  "k-123",
				"Authorization":              "Bearer t0k",
			} {
				if v := h.Get(name); v != want {
					t.Errorf("header %s = %q, want %q", name, v, want)
				}
			}
			if m := traceparentRE.FindStringSubmatch(h.Get(callout.HeaderTraceparent)); m == nil || m[1] != "0193a0b2000070008000000000000001" {
				t.Errorf("traceparent %q does not carry the task's trace id", h.Get(callout.HeaderTraceparent))
			}
			if !strings.HasPrefix(h.Get("User-Agent"), "tasker-runner") {
				t.Errorf("user agent %q", h.Get("User-Agent"))
			}
			// The deadline reaches the handler, as the protocol's timeout
			// and as Tasker-Deadline.
			if got.deadline.IsZero() || got.deadline.After(deadline.Add(time.Second)) || got.deadline.Before(deadline.Add(-5*time.Second)) {
				t.Errorf("handler deadline %v, want about %v", got.deadline, deadline)
			}
			td, err := time.Parse(time.RFC3339, h.Get(callout.HeaderDeadline))
			if err != nil || td.Sub(deadline).Abs() > time.Millisecond {
				t.Errorf("Tasker-Deadline %q, want %v (%v)", h.Get(callout.HeaderDeadline), deadline.UTC(), err)
			}
		})
	}
}

// Handler-reported results of every shape keep the JSON contract's meaning.
func TestConnectInvokerNormalisesResults(t *testing.T) {
	t.Parallel()
	answers := map[string]*handlerv1.ExecuteResponse{
		"plain":     {Success: true},
		"retryable": {Success: false, Error: &handlerv1.StepError{Message: "gateway busy", ErrorType: "gateway_busy", StatusCode: 429}},
		"permanent": {Success: false, Error: &handlerv1.StepError{Message: "card declined", ErrorType: "card_declined", Retryable: proto.Bool(false)}},
		"explicit":  {Success: false, Error: &handlerv1.StepError{Message: "try again", Retryable: proto.Bool(true)}},
		"silent":    {},
		"contradicts": {Success: true, Status: contracts.StatusFailed,
			Error: &handlerv1.StepError{Message: "no"}},
		"yielded": {Status: contracts.StatusYielded, Checkpoint: &structpb.Struct{Fields: map[string]*structpb.Value{
			"cursor": structpb.NewNumberValue(2500), "items_processed": structpb.NewNumberValue(2500),
		}}},
		"null-result": {Success: true, Result: structpb.NewNullValue()},
	}
	svc := rpcService{execute: func(_ context.Context, _ http.Header, req *handlerv1.ExecuteRequest) (*handlerv1.ExecuteResponse, error) {
		return answers[req.GetStepDefinition().GetHandler().GetCallable()], nil
	}}
	for _, srv := range rpcServers {
		inv := newConnectInvoker(t, callout.ConnectConfig{URL: srv.start(t, svc), Protocol: srv.protocol})
		call := func(callable string) contracts.StepResult {
			return inv.Invoke(t.Context(), httpTestEnvelope("0190d5a1-0000-7000-8000-000000000001", callable))
		}
		name := func(s string) string { return srv.protocol + " " + s }
		if res := call("plain"); !res.Success || res.Status != contracts.StatusCompleted || res.Result != nil {
			t.Errorf("%s: %+v", name("plain"), res)
		}
		res := call("retryable")
		wantFailure(t, name("retryable"), res, "gateway_busy", true, 429, "gateway busy")
		wantFailure(t, name("permanent"), call("permanent"), "card_declined", false, 0, "card declined")
		wantFailure(t, name("explicit"), call("explicit"), contracts.ErrorTypeHandler, true, 0, "try again")
		wantFailure(t, name("silent"), call("silent"), contracts.ErrorTypeHandler, true, 0, "without an error")
		wantFailure(t, name("contradicts"), call("contradicts"), contracts.ErrorTypeHandler, true, 0, "no")
		res = call("yielded")
		if res.Success || res.Status != contracts.StatusYielded ||
			!reflect.DeepEqual(jsonValue(t, res.Checkpoint), map[string]any{"cursor": 2500.0, "items_processed": 2500.0}) {
			t.Errorf("%s: %+v", name("yielded"), res)
		}
		if res := call("null-result"); !res.Success || res.Result != nil {
			t.Errorf("%s: %+v", name("null-result"), res)
		}
	}
}

// failingService answers every call with the error fail makes of the
// callable (code name in lower case, as connect spells it).
func failingService(fail func(callable string) error) rpcService {
	return rpcService{
		execute: func(_ context.Context, _ http.Header, req *handlerv1.ExecuteRequest) (*handlerv1.ExecuteResponse, error) {
			return nil, fail(req.GetStepDefinition().GetHandler().GetCallable())
		},
		batch: func(_ context.Context, _ http.Header, req *handlerv1.ExecuteBatchRequest) (*handlerv1.ExecuteBatchResponse, error) {
			return nil, fail(req.GetSteps()[0].GetStepDefinition().GetHandler().GetCallable())
		},
	}
}

func codeByName(t *testing.T, name string) connect.Code {
	t.Helper()
	var c connect.Code
	if err := c.UnmarshalText([]byte(name)); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestConnectInvokerClassifiesErrorCodes(t *testing.T) {
	t.Parallel()
	cases := []struct {
		code      string
		errType   string
		retryable bool
	}{
		{"unavailable", contracts.ErrorTypeHandler, true},
		{"resource_exhausted", contracts.ErrorTypeHandler, true},
		{"deadline_exceeded", contracts.ErrorTypeTimeout, true},
		{"aborted", contracts.ErrorTypeHandler, true},
		{"internal", contracts.ErrorTypeHandler, true},
		{"unknown", contracts.ErrorTypeHandler, true},
		{"invalid_argument", contracts.ErrorTypeHandler, false},
		{"not_found", contracts.ErrorTypeHandler, false},
		{"permission_denied", contracts.ErrorTypeHandler, false},
		{"unauthenticated", contracts.ErrorTypeHandler, false},
		{"failed_precondition", contracts.ErrorTypeHandler, false},
		{"unimplemented", contracts.ErrorTypeHandler, false},
		{"out_of_range", contracts.ErrorTypeHandler, false},
		{"already_exists", contracts.ErrorTypeHandler, false},
		{"data_loss", contracts.ErrorTypeHandler, false},
	}
	connectURL := startConnectServer(t, failingService(func(callable string) error {
		return connect.NewError(codeByName(t, callable), errors.New("handler says "+callable))
	}))
	grpcURL := startGRPCServer(t, failingService(func(callable string) error {
		return status.Error(codes.Code(codeByName(t, callable)), "handler says "+callable)
	}))
	for _, srv := range []struct{ protocol, url string }{{callout.ProtocolConnect, connectURL}, {callout.ProtocolGRPC, grpcURL}} {
		inv := newConnectInvoker(t, callout.ConnectConfig{URL: srv.url, Protocol: srv.protocol})
		for _, tc := range cases {
			name := srv.protocol + " " + tc.code
			res := inv.Invoke(t.Context(), httpTestEnvelope("0190d5a1-0000-7000-8000-000000000001", tc.code))
			wantFailure(t, name, res, tc.errType, tc.retryable, 0,
				"handler at "+srv.url+" answered "+strings.ToUpper(tc.code), "handler says "+tc.code)
			if _, ok := backoffOf(res); ok {
				t.Errorf("%s: a backoff without a hint: %+v", name, res.OrchestrationMetadata)
			}
			// A batched call fails every step the same way.
			for i, r := range inv.InvokeBatch(t.Context(), []*contracts.StepEnvelope{
				httpTestEnvelope("0190d5a1-0000-7000-8000-000000000001", tc.code),
				httpTestEnvelope("0190d5a1-0000-7000-8000-000000000002", tc.code),
			}) {
				wantFailure(t, fmt.Sprintf("%s batch item %d", name, i), r, tc.errType, tc.retryable, 0, strings.ToUpper(tc.code))
			}
		}
	}
}

// A retryable error may ask for a delay: google.rpc.RetryInfo (both
// protocols) or Retry-After (here in Connect's response headers).
func TestConnectInvokerHonoursRetryHints(t *testing.T) {
	t.Parallel()
	retryInfo := &errdetails.RetryInfo{RetryDelay: durationpb.New(7500 * time.Millisecond)}
	connectURL := startConnectServer(t, failingService(func(callable string) error {
		var err *connect.Error
		switch callable {
		case "retry-info":
			err = connect.NewError(connect.CodeUnavailable, errors.New("busy"))
			d, _ := connect.NewErrorDetail(retryInfo)
			err.AddDetail(d)
		case "retry-after":
			err = connect.NewError(connect.CodeResourceExhausted, errors.New("slow down"))
			err.Meta().Set("Retry-After", "12")
		case "huge":
			err = connect.NewError(connect.CodeUnavailable, errors.New("busy"))
			err.Meta().Set("Retry-After", "86400")
		case "permanent":
			err = connect.NewError(connect.CodeInvalidArgument, errors.New("bad"))
			err.Meta().Set("Retry-After", "12")
		}
		return err
	}))
	grpcURL := startGRPCServer(t, failingService(func(string) error {
		st, err := status.New(codes.Unavailable, "busy").WithDetails(retryInfo)
		if err != nil {
			t.Error(err)
		}
		return st.Err()
	}))
	for _, tc := range []struct {
		protocol, url, callable string
		want                    float64 // seconds; -1: none
	}{
		{callout.ProtocolConnect, connectURL, "retry-info", 7.5},
		{callout.ProtocolConnect, connectURL, "retry-after", 12},
		{callout.ProtocolConnect, connectURL, "huge", callout.MaxRetryAfter.Seconds()},
		{callout.ProtocolConnect, connectURL, "permanent", -1},
		{callout.ProtocolGRPC, grpcURL, "retry-info", 7.5},
	} {
		inv := newConnectInvoker(t, callout.ConnectConfig{URL: tc.url, Protocol: tc.protocol})
		res := inv.Invoke(t.Context(), httpTestEnvelope("0190d5a1-0000-7000-8000-000000000001", tc.callable))
		got, ok := backoffOf(res)
		if tc.want < 0 {
			if ok {
				t.Errorf("%s %s: backoff %v on a permanent failure", tc.protocol, tc.callable, got)
			}
			continue
		}
		if !ok || got != tc.want {
			t.Errorf("%s %s: backoff %v (%v), want %v: %+v", tc.protocol, tc.callable, got, ok, tc.want, res.Error)
		}
	}
}

func TestConnectInvokerTimeouts(t *testing.T) {
	t.Parallel()
	started := make(chan string, 16) // callables whose call reached the handler
	block := rpcService{execute: func(ctx context.Context, _ http.Header, req *handlerv1.ExecuteRequest) (*handlerv1.ExecuteResponse, error) {
		started <- req.GetStepDefinition().GetHandler().GetCallable()
		<-ctx.Done() // the client's deadline travels with the call
		return nil, ctx.Err()
	}}
	for _, srv := range rpcServers {
		url := srv.start(t, block)
		env := func(callable string) *contracts.StepEnvelope {
			return httpTestEnvelope("0190d5a1-0000-7000-8000-000000000001", callable)
		}

		// The step deadline.
		inv := newConnectInvoker(t, callout.ConnectConfig{URL: url, Protocol: srv.protocol})
		ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
		res := inv.Invoke(ctx, env("deadline"))
		cancel()
		wantFailure(t, srv.protocol+" step deadline", res, contracts.ErrorTypeTimeout, true, 0, url)

		// The per-call timeout, shorter than the step deadline.
		inv = newConnectInvoker(t, callout.ConnectConfig{URL: url, Protocol: srv.protocol, Timeout: 100 * time.Millisecond})
		res = inv.Invoke(t.Context(), env("timeout"))
		wantFailure(t, srv.protocol+" call timeout", res, contracts.ErrorTypeTimeout, true, 0, "call timeout of 100ms")

		// The runner gives up (shutdown) while the handler works:
		// retryable, "abandoned".
		inv = newConnectInvoker(t, callout.ConnectConfig{URL: url, Protocol: srv.protocol})
		ctx, cancel = context.WithCancel(t.Context())
		go func() {
			for c := range started {
				if c == "cancel" {
					break
				}
			}
			cancel()
		}()
		res = inv.Invoke(ctx, env("cancel"))
		cancel()
		wantFailure(t, srv.protocol+" cancelled", res, contracts.ErrorTypeHandler, true, 0, "abandoned")
	}
}

func TestConnectInvokerConnectionRefused(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	_ = ln.Close()
	for _, protocol := range []string{callout.ProtocolConnect, callout.ProtocolGRPC} {
		inv := newConnectInvoker(t, callout.ConnectConfig{URL: "http://user:secret@" + addr + "/rpc", Protocol: protocol})
		env := httpTestEnvelope("0190d5a1-0000-7000-8000-000000000001", "x")
		res := inv.Invoke(t.Context(), env)
		wantFailure(t, protocol, res, contracts.ErrorTypeHandler, true, 0, "cannot connect to http://"+addr+"/rpc", "connection refused")
		if strings.Contains(res.Error.Message, "secret") {
			t.Errorf("%s: the message shows the password: %s", protocol, res.Error.Message)
		}
		for _, r := range inv.InvokeBatch(t.Context(), []*contracts.StepEnvelope{env}) {
			wantFailure(t, protocol+" batch", r, contracts.ErrorTypeHandler, true, 0, "connection refused")
		}
	}
}

func TestConnectInvokerOversizedResponse(t *testing.T) {
	t.Parallel()
	// Results of the size the callable says, in not very compressible text
	// (the protocols gzip responses: the limit applies after decompression).
	result := func(callable string) *handlerv1.ExecuteResponse {
		var n int
		_, _ = fmt.Sscan(callable, &n)
		var b strings.Builder
		for i := 0; b.Len() < n; i++ {
			fmt.Fprintf(&b, "%x", uint32(i)*2654435761)
		}
		return &handlerv1.ExecuteResponse{Success: true, Result: structpb.NewStringValue(b.String()[:n])}
	}
	svc := rpcService{
		execute: func(_ context.Context, _ http.Header, req *handlerv1.ExecuteRequest) (*handlerv1.ExecuteResponse, error) {
			return result(req.GetStepDefinition().GetHandler().GetCallable()), nil
		},
		batch: func(_ context.Context, _ http.Header, req *handlerv1.ExecuteBatchRequest) (*handlerv1.ExecuteBatchResponse, error) {
			out := &handlerv1.ExecuteBatchResponse{}
			for _, s := range req.GetSteps() {
				r := result(s.GetStepDefinition().GetHandler().GetCallable())
				r.StepUuid = s.GetStep().GetStepUuid()
				out.Results = append(out.Results, r)
			}
			return out, nil
		},
	}
	for _, srv := range rpcServers {
		inv := newConnectInvoker(t, callout.ConnectConfig{URL: srv.start(t, svc), Protocol: srv.protocol, MaxResponseBytes: 1024})
		if res := inv.Invoke(t.Context(), httpTestEnvelope("0190d5a1-0000-7000-8000-000000000001", "900")); !res.Success {
			t.Errorf("%s: a response under the limit failed: %+v", srv.protocol, res.Error)
		}
		res := inv.Invoke(t.Context(), httpTestEnvelope("0190d5a1-0000-7000-8000-000000000001", "5000"))
		wantFailure(t, srv.protocol, res, contracts.ErrorTypeInvalidResponse, false, 0, "larger than", "1024")

		// A batch may have the limit per step.
		envs := batchTestEnvelopes(3)
		for _, e := range envs {
			e.StepDefinition.Handler.Callable = "900"
		}
		for i, r := range inv.InvokeBatch(t.Context(), envs) {
			if !r.Success {
				t.Errorf("%s batch item %d: %+v", srv.protocol, i, r.Error)
			}
		}
		envs[0].StepDefinition.Handler.Callable = "4000"
		for i, r := range inv.InvokeBatch(t.Context(), envs) {
			wantFailure(t, fmt.Sprintf("%s oversized batch item %d", srv.protocol, i), r, contracts.ErrorTypeInvalidResponse, false, 0, "larger than", "3072")
		}
	}
}

func TestConnectInvokerBatchMatchesResults(t *testing.T) {
	t.Parallel()
	envs := batchTestEnvelopes(5)
	id := func(i int) string { return envs[i].Step.StepUUID }
	seen := make(chan http.Header, 2)
	svc := rpcService{batch: func(_ context.Context, h http.Header, req *handlerv1.ExecuteBatchRequest) (*handlerv1.ExecuteBatchResponse, error) {
		seen <- h
		if n := len(req.GetSteps()); n != 5 {
			return nil, fmt.Errorf("got %d steps", n)
		}
		ok := func(id string) *handlerv1.ExecuteResponse {
			return &handlerv1.ExecuteResponse{StepUuid: id, Success: true, Result: structpb.NewStringValue("done " + id)}
		}
		return &handlerv1.ExecuteBatchResponse{Results: []*handlerv1.ExecuteResponse{
			// in any order; 2 has no result; 1 has two
			ok(id(4)),
			{StepUuid: id(3), Error: &handlerv1.StepError{Message: "not an image"}},
			ok(id(1)),
			ok(id(0)),
			ok(id(1)),
			ok("0190d5a1-0000-7000-8000-999999999999"), // not in the call: ignored
		}}, nil
	}}
	for _, srv := range rpcServers {
		inv := newConnectInvoker(t, callout.ConnectConfig{URL: srv.start(t, svc), Protocol: srv.protocol})
		out := inv.InvokeBatch(t.Context(), envs)
		if len(out) != len(envs) {
			t.Fatalf("%s: %d results", srv.protocol, len(out))
		}
		for i, r := range out {
			if r.StepUUID != id(i) {
				t.Errorf("%s item %d: step uuid %q", srv.protocol, i, r.StepUUID)
			}
		}
		for _, i := range []int{0, 4} {
			if !out[i].Success || string(out[i].Result) != `"done `+id(i)+`"` {
				t.Errorf("%s item %d: %+v", srv.protocol, i, out[i])
			}
		}
		wantFailure(t, srv.protocol+" duplicate", out[1], contracts.ErrorTypeInvalidResponse, false, 0, "2 results for step "+id(1))
		wantFailure(t, srv.protocol+" missing", out[2], contracts.ErrorTypeInvalidResponse, true, 0, "no result for step "+id(2), "steps not in the call")
		wantFailure(t, srv.protocol+" handler failure", out[3], contracts.ErrorTypeHandler, true, 0, "not an image")

		h := <-seen
		if h.Get(callout.HeaderBatchSize) != "5" || h.Get(callout.HeaderIdempotencyKey) != "" || h.Get(callout.HeaderAttempt) != "" {
			t.Errorf("%s: batch headers %v", srv.protocol, h)
		}
	}

	// No envelope, nothing sent.
	inv := newConnectInvoker(t, callout.ConnectConfig{URL: "http://127.0.0.1:1"})
	out := inv.InvokeBatch(t.Context(), []*contracts.StepEnvelope{nil})
	wantFailure(t, "nil envelope", out[0], contracts.ErrorTypeHandler, false, 0, "no step envelope")
	wantFailure(t, "nil envelope", inv.Invoke(t.Context(), nil), contracts.ErrorTypeHandler, false, 0, "no step envelope")
}

// Concurrent single-step calls through a Batcher reach the gRPC server as
// ExecuteBatch calls and come back to their callers.
func TestConnectInvokerBehindBatcher(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var sizes []int
	svc := rpcService{batch: func(_ context.Context, _ http.Header, req *handlerv1.ExecuteBatchRequest) (*handlerv1.ExecuteBatchResponse, error) {
		mu.Lock()
		sizes = append(sizes, len(req.GetSteps()))
		mu.Unlock()
		out := &handlerv1.ExecuteBatchResponse{}
		for _, s := range req.GetSteps() {
			out.Results = append(out.Results, &handlerv1.ExecuteResponse{
				StepUuid: s.GetStep().GetStepUuid(), Success: true, Result: structpb.NewStringValue(s.GetStep().GetStepUuid()),
			})
		}
		return out, nil
	}}
	inv := newConnectInvoker(t, callout.ConnectConfig{URL: startGRPCServer(t, svc), Protocol: callout.ProtocolGRPC})
	b := callout.NewBatcher(inv, 4, time.Hour) // only full batches are sent
	defer b.Close()
	envs := batchTestEnvelopes(8)
	var wg sync.WaitGroup
	results := make([]contracts.StepResult, len(envs))
	for i, env := range envs {
		wg.Go(func() { results[i] = b.Invoke(t.Context(), env) })
	}
	wg.Wait()
	for i, r := range results {
		if !r.Success || string(r.Result) != `"`+envs[i].Step.StepUUID+`"` {
			t.Errorf("step %d: %+v", i, r)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if !reflect.DeepEqual(sizes, []int{4, 4}) {
		t.Errorf("batch sizes %v, want [4 4]", sizes)
	}
}

// https endpoints: HTTP/2 over TLS, both protocols.
func TestConnectInvokerOverTLS(t *testing.T) {
	t.Parallel()
	seen := make(chan seenCall, 2)
	mux := http.NewServeMux()
	mux.Handle(handlerv1connect.NewHandlerServiceHandler(connectService{recordingService(t, seen)}))
	srv := httptest.NewUnstartedServer(mux)
	srv.EnableHTTP2 = true
	srv.StartTLS()
	defer srv.Close()
	client := srv.Client()
	defer client.CloseIdleConnections()
	for _, protocol := range []string{callout.ProtocolConnect, callout.ProtocolGRPC} {
		inv := newConnectInvoker(t, callout.ConnectConfig{URL: srv.URL, Protocol: protocol, Client: client})
		if res := inv.Invoke(t.Context(), richEnvelope()); !res.Success {
			t.Errorf("%s: %+v", protocol, res.Error)
		}
		<-seen
	}
}

func TestNewConnectValidates(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		cfg  callout.ConnectConfig
		want string
	}{
		{callout.ConnectConfig{}, "URL is empty"},
		{callout.ConnectConfig{URL: "ftp://h"}, "scheme must be http (h2c) or https"},
		{callout.ConnectConfig{URL: "/relative"}, "scheme must be"},
		{callout.ConnectConfig{URL: "http://"}, "must be absolute"},
		{callout.ConnectConfig{URL: "http://h/run/{callable}"}, "{callable} is not supported"},
		{callout.ConnectConfig{URL: "http://h/?key=secret"}, "cannot have a query"},
		{callout.ConnectConfig{URL: "http://h/#frag"}, "cannot have a fragment"},
		{callout.ConnectConfig{URL: "http://h", Protocol: "grpc-web"}, `protocol "grpc-web" is not supported`},
		{callout.ConnectConfig{URL: "http://h", Timeout: -time.Second}, "timeout must not be negative"},
		{callout.ConnectConfig{URL: "http://h", MaxResponseBytes: -1}, "must not be negative"},
		{callout.ConnectConfig{URL: "http://h", Headers: map[string]string{"Idempotency-Key": "x"}}, "cannot be configured"},
		{callout.ConnectConfig{URL: "http://h", Headers: map[string]string{"grpc-timeout": "1S"}}, "cannot be configured"},
		{callout.ConnectConfig{URL: "http://h", Headers: map[string]string{"Connect-Timeout-Ms": "1"}}, "cannot be configured"},
		{callout.ConnectConfig{URL: "http://h", Headers: map[string]string{"bad header": "x"}}, "not a valid HTTP header name"},
		{callout.ConnectConfig{URL: "http://h", Headers: map[string]string{"X-Key": "a\nb"}}, "control characters"},
	} {
		_, err := callout.NewConnect(tc.cfg)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: error %v, want %q", tc.cfg, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), "secret") {
			t.Errorf("%+v: the error shows the query: %v", tc.cfg, err)
		}
	}
	for _, cfg := range []callout.ConnectConfig{
		{URL: "http://127.0.0.1:8080"},
		{URL: "https://handlers.internal/rpc/", Protocol: "GRPC", MaxResponseBytes: math.MaxInt64},
		{URL: "http://h", Client: (*http.Client)(nil), Headers: map[string]string{"Authorization": "Bearer x"}},
	} {
		if _, err := callout.NewConnect(cfg); err != nil {
			t.Errorf("%+v: %v", cfg, err)
		}
	}
}
