package openapi_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/structpb"

	adminv1 "github.com/tasker-runner/tasker-runner/contracts/gen/tasker/admin/v1"
	"github.com/tasker-runner/tasker-runner/contracts/gen/tasker/admin/v1/adminv1connect"
	"github.com/tasker-runner/tasker-runner/openapi"
	"github.com/tasker-runner/tasker-runner/runner/store/pgtest"

	"github.com/tasker-runner/tasker-runner/runner"
)

// mirrorServer serves the mirror on loopback with h2c (Connect, gRPC and
// gRPC-Web) on a private database, and returns its base URL and address.
func mirrorServer(t *testing.T, auth *openapi.Authenticator) (string, string) {
	t.Helper()
	return serveMirror(t, pgtest.Pool(t), auth)
}

// serveMirror serves the mirror as mirrorServer does, on pool.
func serveMirror(t *testing.T, pool *pgxpool.Pool, auth *openapi.Authenticator) (string, string) {
	t.Helper()
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cfg := openapi.Config{
		Version: "test", Client: runner.NewClient(pool, runner.ClientConfig{}), Logger: log,
		Checks: []openapi.Check{{Name: "database", Run: pool.Ping}},
	}
	return serveMirrorConfig(t, cfg, auth)
}

// serveMirrorConfig serves the mirror of cfg as mirrorServer does.
func serveMirrorConfig(t *testing.T, cfg openapi.Config, auth *openapi.Authenticator) (string, string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	srv := &http.Server{Handler: openapi.NewMirror(cfg, auth).Handler(), Protocols: &protocols, ReadHeaderTimeout: time.Minute}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		_ = srv.Close()
		<-done
	})
	return "http://" + ln.Addr().String(), ln.Addr().String()
}

func grpcConn(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// h2cClient speaks HTTP/2 without TLS, for Connect clients.
func h2cClient(t *testing.T) *http.Client {
	var protocols http.Protocols
	protocols.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &protocols}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr}
}

func listServices(t *testing.T, ctx context.Context, conn *grpc.ClientConn) []string {
	t.Helper()
	stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatalf("reflection: %v", err)
	}
	var names []string
	for _, s := range resp.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	// grpcurl describes a service next: its file must resolve.
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: openapi.AdminServiceName}}); err != nil {
		t.Fatal(err)
	}
	resp, err = stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.GetFileDescriptorResponse().GetFileDescriptorProto()) == 0 {
		t.Errorf("reflection: no file descriptor for %s: %v", openapi.AdminServiceName, resp)
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
		t.Errorf("reflection stream end: %v", err)
	}
	slices.Sort(names)
	return names
}

// A real grpc-go client: health, reflection (grpcurl-style listing) and
// mirrored operations; the Connect client on the same server.
func TestMirrorGRPC(t *testing.T) {
	base, addr := mirrorServer(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn := grpcConn(t, addr)
	mirrorHealthAndReflection(t, ctx, conn)
	mirrorRegisterOverGRPC(t, ctx, conn)
	client := adminv1connect.NewAdminServiceClient(h2cClient(t), base)
	task := mirrorSubmitAndRead(t, ctx, client)
	mirrorOtherReads(t, ctx, client, task)
	mirrorChanges(t, ctx, client, task)
}

func mirrorHealthAndReflection(t *testing.T, ctx context.Context, conn *grpc.ClientConn) {
	t.Helper()
	for _, svc := range []string{"", openapi.AdminServiceName} {
		h, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: svc})
		if err != nil || h.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("health %q: %v %v", svc, h, err)
		}
	}
	if _, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: "nope"}); status.Code(err) != codes.NotFound {
		t.Errorf("health of an unknown service: %v", err)
	}

	got := listServices(t, ctx, conn)
	want := []string{"grpc.health.v1.Health", "tasker.admin.v1.AdminService"}
	if !slices.Equal(got, want) {
		t.Errorf("ListServices = %v, want %v", got, want)
	}

}

// mirrorRegisterOverGRPC registers orderTemplate through grpc-go's own
// unary call.
func mirrorRegisterOverGRPC(t *testing.T, ctx context.Context, conn *grpc.ClientConn) {
	t.Helper()
	reg := &adminv1.RegisterTemplateResponse{}
	if err := conn.Invoke(ctx, "/tasker.admin.v1.AdminService/RegisterTemplate", &adminv1.RegisterTemplateRequest{Template: orderTemplate}, reg); err != nil {
		t.Fatal(err)
	}
	if !reg.GetCreated() || reg.GetTemplate().GetName() != "order" || reg.GetTemplate().GetSteps() != 3 || len(reg.GetWarnings()) != 0 ||
		reg.GetTemplate().GetDefinition().GetFields()["namespace_name"].GetStringValue() != "shop" {
		t.Errorf("RegisterTemplate: %v", reg)
	}
	if err := conn.Invoke(ctx, "/tasker.admin.v1.AdminService/RegisterTemplate", &adminv1.RegisterTemplateRequest{Template: orderTemplate}, reg); err != nil || reg.GetCreated() {
		t.Errorf("registering again: created %v, %v", reg.GetCreated(), err)
	}
	// An invalid template: InvalidArgument with each field.
	err := conn.Invoke(ctx, "/tasker.admin.v1.AdminService/RegisterTemplate", &adminv1.RegisterTemplateRequest{Template: brokenTemplate}, reg)
	if status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "template.steps[0].dependencies[0]") {
		t.Errorf("broken template: %v", err)
	}
	var fields []string
	for _, d := range status.Convert(err).Details() {
		if br, ok := d.(*errdetails.BadRequest); ok {
			for _, v := range br.GetFieldViolations() {
				fields = append(fields, v.GetField())
			}
		}
	}
	if !slices.Contains(fields, "template.steps[0].dependencies[0]") {
		t.Errorf("BadRequest fields = %v", fields)
	}

}

// mirrorSubmitAndRead submits an order with the Connect client (Connect
// protocol over h2c), reads it back and returns it.
func mirrorSubmitAndRead(t *testing.T, ctx context.Context, client adminv1connect.AdminServiceClient) *adminv1.Task {
	t.Helper()
	ctxStruct, _ := structpb.NewStruct(map[string]any{"order_id": 7})
	sub, err := client.SubmitTask(ctx, connect.NewRequest(&adminv1.SubmitTaskRequest{
		Namespace: "shop", Name: "order", Context: ctxStruct, IdempotencyKey: "k1", Tags: []string{"a"},
	}))
	if err != nil {
		t.Fatal(err)
	}
	task := sub.Msg.GetTask()
	if !sub.Msg.GetCreated() || task.GetState() == "" || len(task.GetSteps()) != 3 || task.GetContext().GetFields()["order_id"].GetNumberValue() != 7 {
		t.Errorf("SubmitTask: %v", sub.Msg)
	}
	again, err := client.SubmitTask(ctx, connect.NewRequest(&adminv1.SubmitTaskRequest{Namespace: "shop", Name: "order", Context: ctxStruct, IdempotencyKey: "k1"}))
	if err != nil || again.Msg.GetCreated() || again.Msg.GetTask().GetTaskUuid() != task.GetTaskUuid() {
		t.Errorf("idempotent resubmission: %v %v", again, err)
	}
	got2, err := client.GetTask(ctx, connect.NewRequest(&adminv1.GetTaskRequest{TaskUuid: task.GetTaskUuid(), Include: []string{"transitions"}}))
	if err != nil {
		t.Fatal(err)
	}
	if got2.Msg.GetTask().GetTaskUuid() != task.GetTaskUuid() || len(got2.Msg.GetTask().GetTransitions()) == 0 {
		t.Errorf("GetTask: %v", got2.Msg)
	}
	// Bad input: the context against input_schema, unknown ids, bad uuids.
	badCtx, _ := structpb.NewStruct(map[string]any{"order_id": "seven"})
	_, err = client.SubmitTask(ctx, connect.NewRequest(&adminv1.SubmitTaskRequest{Namespace: "shop", Name: "order", Context: badCtx}))
	if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "context.order_id") {
		t.Errorf("invalid context: %v", err)
	}
	_, err = client.SubmitTask(ctx, connect.NewRequest(&adminv1.SubmitTaskRequest{Namespace: "shop", Name: strings.Repeat("x", 200)}))
	if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "name") {
		t.Errorf("too long a name: %v", err)
	}
	_, err = client.GetTask(ctx, connect.NewRequest(&adminv1.GetTaskRequest{TaskUuid: "0190a5a0-0000-7000-8000-000000000000"}))
	if connect.CodeOf(err) != connect.CodeNotFound {
		t.Errorf("unknown task: %v", err)
	}
	_, err = client.GetTask(ctx, connect.NewRequest(&adminv1.GetTaskRequest{TaskUuid: "nope"}))
	if connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "task_uuid") {
		t.Errorf("bad uuid: %v", err)
	}
	return task
}

// mirrorOtherReads: the other reads answer and fit their messages.
func mirrorOtherReads(t *testing.T, ctx context.Context, client adminv1connect.AdminServiceClient, task *adminv1.Task) {
	t.Helper()
	list, err := client.ListTasks(ctx, connect.NewRequest(&adminv1.ListTasksRequest{Namespace: "shop"}))
	if err != nil || len(list.Msg.GetItems()) != 1 {
		t.Errorf("ListTasks: %v %v", list, err)
	}
	if _, err := client.ListTasks(ctx, connect.NewRequest(&adminv1.ListTasksRequest{Limit: 501})); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Errorf("ListTasks limit 501: %v", err)
	}
	step := task.GetSteps()[0]
	if st, err := client.GetStep(ctx, connect.NewRequest(&adminv1.GetStepRequest{StepUuid: step.GetStepUuid()})); err != nil || st.Msg.GetStep().GetName() != step.GetName() {
		t.Errorf("GetStep: %v %v", st, err)
	}
	if _, err := client.RetryStep(ctx, connect.NewRequest(&adminv1.RetryStepRequest{StepUuid: step.GetStepUuid()})); connect.CodeOf(err) != connect.CodeFailedPrecondition {
		t.Errorf("retrying a step not in error: %v", err)
	}
	if st, err := client.GetStatus(ctx, connect.NewRequest(&adminv1.GetStatusRequest{})); err != nil || st.Msg.GetVersion() != "test" {
		t.Errorf("GetStatus: %v %v", st, err)
	}
	if l, err := client.ListTemplates(ctx, connect.NewRequest(&adminv1.ListTemplatesRequest{})); err != nil || len(l.Msg.GetItems()) != 1 {
		t.Errorf("ListTemplates: %v %v", l, err)
	}
	if g, err := client.GetTemplate(ctx, connect.NewRequest(&adminv1.GetTemplateRequest{Namespace: "shop", Name: "order"})); err != nil || g.Msg.GetTemplate().GetVersion() != "1.0.0" {
		t.Errorf("GetTemplate: %v %v", g, err)
	}
	if v, err := client.ValidateTemplate(ctx, connect.NewRequest(&adminv1.ValidateTemplateRequest{Template: brokenTemplate})); err != nil || v.Msg.GetValid() || len(v.Msg.GetProblems()) == 0 {
		t.Errorf("ValidateTemplate: %v %v", v, err)
	}
	// Warnings, as over REST.
	if v, err := client.ValidateTemplate(ctx, connect.NewRequest(&adminv1.ValidateTemplateRequest{Template: taskerTemplate})); err != nil || !v.Msg.GetValid() ||
		len(v.Msg.GetWarnings()) != 2 || v.Msg.GetWarnings()[0].GetPath() != "loaded_from" || v.Msg.GetWarnings()[0].GetLine() != 4 {
		t.Errorf("ValidateTemplate with warnings: %v %v", v, err)
	}
	if r, err := client.RegisterTemplate(ctx, connect.NewRequest(&adminv1.RegisterTemplateRequest{Template: taskerTemplate})); err != nil || !r.Msg.GetCreated() ||
		len(r.Msg.GetWarnings()) != 2 || r.Msg.GetWarnings()[1].GetPath() != "steps[1].retry.initial_delay" {
		t.Errorf("RegisterTemplate with warnings: %v %v", r, err)
	}
}

// mirrorChanges: dead letters, handler endpoints, resolve and cancel.
func mirrorChanges(t *testing.T, ctx context.Context, client adminv1connect.AdminServiceClient, task *adminv1.Task) {
	t.Helper()
	step := task.GetSteps()[0]
	if d, err := client.ListDeadLetters(ctx, connect.NewRequest(&adminv1.ListDeadLettersRequest{})); err != nil || len(d.Msg.GetItems()) != 0 {
		t.Errorf("ListDeadLetters: %v %v", d, err)
	}
	if _, err := client.RedriveDeadLetters(ctx, connect.NewRequest(&adminv1.RedriveDeadLettersRequest{})); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Errorf("redrive nothing: %v", err)
	}
	if r, err := client.RedriveDeadLetters(ctx, connect.NewRequest(&adminv1.RedriveDeadLettersRequest{Filter: &adminv1.DeadLetterFilter{}})); err != nil || r.Msg.GetRedriven() != 0 {
		t.Errorf("redrive by filter: %v %v", r, err)
	}
	put, err := client.PutHandler(ctx, connect.NewRequest(&adminv1.PutHandlerRequest{Pattern: "remote.*", Namespace: "shop",
		Endpoint: &adminv1.HandlerEndpointInput{Url: "http://127.0.0.1:1/{callable}", Headers: map[string]string{"Authorization": "secret"}}}))
	if err != nil || !put.Msg.GetCreated() || put.Msg.GetHandler().GetHeaders()["Authorization"] == "secret" {
		t.Errorf("PutHandler: %v %v", put, err)
	}
	if _, err := client.PutHandler(ctx, connect.NewRequest(&adminv1.PutHandlerRequest{Pattern: "x", Endpoint: &adminv1.HandlerEndpointInput{Protocol: "smtp"}})); connect.CodeOf(err) != connect.CodeInvalidArgument || !strings.Contains(err.Error(), "endpoint.protocol") {
		t.Errorf("bad protocol: %v", err)
	}
	if l, err := client.ListHandlers(ctx, connect.NewRequest(&adminv1.ListHandlersRequest{})); err != nil || len(l.Msg.GetItems()) != 1 {
		t.Errorf("ListHandlers: %v %v", l, err)
	}
	if _, err := client.GetHandler(ctx, connect.NewRequest(&adminv1.GetHandlerRequest{Pattern: "remote.*", Namespace: "shop"})); err != nil {
		t.Errorf("GetHandler: %v", err)
	}
	if _, err := client.DeleteHandler(ctx, connect.NewRequest(&adminv1.DeleteHandlerRequest{Pattern: "remote.*", Namespace: "shop"})); err != nil {
		t.Errorf("DeleteHandler: %v", err)
	}
	if _, err := client.DeleteHandler(ctx, connect.NewRequest(&adminv1.DeleteHandlerRequest{Pattern: "remote.*", Namespace: "shop"})); connect.CodeOf(err) != connect.CodeNotFound {
		t.Errorf("deleting again: %v", err)
	}
	resolved, err := client.ResolveStep(ctx, connect.NewRequest(&adminv1.ResolveStepRequest{StepUuid: step.GetStepUuid(), Reason: "by hand", Result: structpb.NewStringValue("ok")}))
	if err != nil || resolved.Msg.GetStep().GetState() != "resolved_manually" {
		t.Errorf("ResolveStep: %v %v", resolved, err)
	}
	cancelled, err := client.CancelTask(ctx, connect.NewRequest(&adminv1.CancelTaskRequest{TaskUuid: task.GetTaskUuid(), Reason: "test"}))
	if err != nil || cancelled.Msg.GetTask().GetState() != "cancelled" {
		t.Errorf("CancelTask: %v %v", cancelled, err)
	}
	if _, err := client.CancelTask(ctx, connect.NewRequest(&adminv1.CancelTaskRequest{TaskUuid: task.GetTaskUuid()})); connect.CodeOf(err) != connect.CodeFailedPrecondition {
		t.Errorf("cancelling again: %v", err)
	}
}

// Auth over gRPC is the REST rules: no credential Unauthenticated, a read
// key on a write PermissionDenied, admin passes, health and reflection
// public.
func TestMirrorAuth(t *testing.T) {
	_, addr := mirrorServer(t, newAuth(t, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn := grpcConn(t, addr)
	with := func(key string) context.Context {
		if key == "" {
			return ctx
		}
		return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+key)
	}

	if h, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{}); err != nil || h.GetStatus() != healthpb.HealthCheckResponse_SERVING {
		t.Errorf("public health: %v %v", h, err)
	}
	if got := listServices(t, ctx, conn); !slices.Contains(got, openapi.AdminServiceName) {
		t.Errorf("public reflection: %v", got)
	}

	submit := func(key string) error {
		return conn.Invoke(with(key), "/tasker.admin.v1.AdminService/SubmitTask",
			&adminv1.SubmitTaskRequest{Namespace: "shop", Name: "order"}, &adminv1.SubmitTaskResponse{})
	}
	status := func(key string) error {
		return conn.Invoke(with(key), "/tasker.admin.v1.AdminService/GetStatus", &adminv1.GetStatusRequest{}, &adminv1.GetStatusResponse{})
	}
	validate := func(key string) error {
		return conn.Invoke(with(key), "/tasker.admin.v1.AdminService/ValidateTemplate", &adminv1.ValidateTemplateRequest{Template: orderTemplate}, &adminv1.ValidateTemplateResponse{})
	}
	for _, c := range []struct {
		name string
		err  error
		want codes.Code
	}{
		{"no credential, read", status(""), codes.Unauthenticated},
		{"no credential, write", submit(""), codes.Unauthenticated},
		{"wrong key", status("wrong-key-0123456789abcdef"), codes.Unauthenticated},
		{"read key, read", status(readKey), codes.OK},
		{"read key, no side effects", validate(readKey), codes.OK},
		{"read key, write", submit(readKey), codes.PermissionDenied},
		// Admin passes auth and reaches the operation: the template is unknown.
		{"admin key, write", submit(adminKey), codes.InvalidArgument},
	} {
		if got := grpcCode(c.err); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, c.err, c.want)
		}
	}
}

func grpcCode(err error) codes.Code { return status.Code(err) }

// protoRecorder remembers the HTTP version of the last answer.
type protoRecorder struct {
	rt    http.RoundTripper
	proto atomic.Pointer[string]
}

func (p *protoRecorder) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := p.rt.RoundTrip(r)
	if err == nil {
		p.proto.Store(&resp.Proto)
	}
	return resp, err
}

// gRPC-Web, as browsers speak it (HTTP/1.1) and over h2c: reads answer,
// errors keep their codes, and auth applies.
func TestMirrorGRPCWeb(t *testing.T) {
	open, _ := mirrorServer(t, nil)
	guarded, _ := mirrorServer(t, newAuth(t, nil))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	http1 := &http.Transport{}
	t.Cleanup(http1.CloseIdleConnections)

	for _, c := range []struct {
		name  string
		rt    http.RoundTripper
		proto string
	}{
		{"HTTP/1.1", http1, "HTTP/1.1"},
		{"h2c", h2cClient(t).Transport, "HTTP/2.0"},
	} {
		t.Run(c.name, func(t *testing.T) {
			rec := &protoRecorder{rt: c.rt}
			hc := &http.Client{Transport: rec}
			client := adminv1connect.NewAdminServiceClient(hc, open, connect.WithGRPCWeb())
			st, err := client.GetStatus(ctx, connect.NewRequest(&adminv1.GetStatusRequest{}))
			if err != nil || st.Msg.GetVersion() != "test" || st.Msg.GetTime() == nil {
				t.Fatalf("GetStatus: %v %v", st, err)
			}
			if ct := st.Header().Get("Content-Type"); ct != "application/grpc-web+proto" {
				t.Errorf("Content-Type %q, want application/grpc-web+proto", ct)
			}
			if got := *rec.proto.Load(); got != c.proto {
				t.Errorf("answered over %s, want %s", got, c.proto)
			}
			_, err = client.GetTask(ctx, connect.NewRequest(&adminv1.GetTaskRequest{TaskUuid: "0190a5a0-0000-7000-8000-000000000000"}))
			if connect.CodeOf(err) != connect.CodeNotFound {
				t.Errorf("unknown task: %v", err)
			}

			client = adminv1connect.NewAdminServiceClient(hc, guarded, connect.WithGRPCWeb())
			if _, err := client.GetStatus(ctx, connect.NewRequest(&adminv1.GetStatusRequest{})); connect.CodeOf(err) != connect.CodeUnauthenticated {
				t.Errorf("no credential: %v, want Unauthenticated", err)
			}
			req := connect.NewRequest(&adminv1.SubmitTaskRequest{Namespace: "shop", Name: "order"})
			req.Header().Set("Authorization", "Bearer "+readKey)
			if _, err := client.SubmitTask(ctx, req); connect.CodeOf(err) != connect.CodePermissionDenied {
				t.Errorf("read key on a write: %v, want PermissionDenied", err)
			}
			get := connect.NewRequest(&adminv1.GetStatusRequest{})
			get.Header().Set("X-API-Key", readKey)
			if st, err := client.GetStatus(ctx, get); err != nil || st.Msg.GetVersion() != "test" {
				t.Errorf("read key: %v %v", st, err)
			}
		})
	}
}

// ListTasks filters on correlation_id as REST's listTasks does; a malformed
// one is InvalidArgument naming the field.
func TestMirrorListTasksByCorrelationID(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	base, _ := mirrorServer(t, nil)
	client := adminv1connect.NewAdminServiceClient(h2cClient(t), base)
	if _, err := client.RegisterTemplate(ctx, connect.NewRequest(&adminv1.RegisterTemplateRequest{Template: orderTemplate})); err != nil {
		t.Fatal(err)
	}
	corrA, corrB := uuid.NewString(), uuid.NewString()
	submit := func(corr string, order int) string {
		t.Helper()
		c, _ := structpb.NewStruct(map[string]any{"order_id": order})
		res, err := client.SubmitTask(ctx, connect.NewRequest(&adminv1.SubmitTaskRequest{Namespace: "shop", Name: "order", Context: c, CorrelationId: corr}))
		if err != nil {
			t.Fatal(err)
		}
		return res.Msg.GetTask().GetTaskUuid()
	}
	a1 := submit(corrA, 1)
	b := submit(corrB, 2)
	a2 := submit(corrA, 3)
	list := func(r *adminv1.ListTasksRequest) []string {
		t.Helper()
		res, err := client.ListTasks(ctx, connect.NewRequest(r))
		if err != nil {
			t.Fatalf("ListTasks(%v): %v", r, err)
		}
		var ids []string
		for _, it := range res.Msg.GetItems() {
			if r.CorrelationId != "" && it.GetCorrelationId() != r.CorrelationId {
				t.Errorf("ListTasks(%v) lists %s of correlation id %s", r, it.GetTaskUuid(), it.GetCorrelationId())
			}
			ids = append(ids, it.GetTaskUuid())
		}
		return ids
	}
	if got, want := list(&adminv1.ListTasksRequest{CorrelationId: corrA}), []string{a2, a1}; !slices.Equal(got, want) {
		t.Errorf("correlation id %s: %v, want %v", corrA, got, want)
	}
	if got, want := list(&adminv1.ListTasksRequest{CorrelationId: corrB, Namespace: "shop"}), []string{b}; !slices.Equal(got, want) {
		t.Errorf("correlation id %s: %v, want %v", corrB, got, want)
	}
	if got := list(&adminv1.ListTasksRequest{CorrelationId: uuid.NewString()}); len(got) != 0 {
		t.Errorf("an unknown correlation id: %v", got)
	}
	if got := list(&adminv1.ListTasksRequest{}); len(got) != 3 {
		t.Errorf("no filter: %v, want 3 tasks", got)
	}

	_, err := client.ListTasks(ctx, connect.NewRequest(&adminv1.ListTasksRequest{CorrelationId: "nope"}))
	var ce *connect.Error
	if !errors.As(err, &ce) || ce.Code() != connect.CodeInvalidArgument || !strings.Contains(ce.Message(), "correlation_id") {
		t.Fatalf("a malformed correlation id: %v", err)
	}
	var fields []string
	for _, d := range ce.Details() {
		v, err := d.Value()
		if err != nil {
			t.Fatal(err)
		}
		if br, ok := v.(*errdetails.BadRequest); ok {
			for _, fv := range br.GetFieldViolations() {
				fields = append(fields, fv.GetField())
			}
		}
	}
	if !slices.Equal(fields, []string{"correlation_id"}) {
		t.Errorf("BadRequest fields = %v, want [correlation_id]", fields)
	}
}

// Issue 14 over Connect: strings the database cannot store and values out
// of range are InvalidArgument naming the field, as over REST; templates
// can be deleted.
func TestMirrorBadInput(t *testing.T) {
	t.Parallel()
	base, _ := mirrorServer(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client := adminv1connect.NewAdminServiceClient(h2cClient(t), base)
	if _, err := client.RegisterTemplate(ctx, connect.NewRequest(&adminv1.RegisterTemplateRequest{Template: orderTemplate})); err != nil {
		t.Fatal(err)
	}
	nulCtx, _ := structpb.NewStruct(map[string]any{"order_id": 1, "order": map[string]any{"note": "a\x00b"}})
	okCtx, _ := structpb.NewStruct(map[string]any{"order_id": 1})
	for _, tc := range []struct {
		name  string
		call  func() error
		field string
	}{
		{"NUL in the context", func() error {
			_, err := client.SubmitTask(ctx, connect.NewRequest(&adminv1.SubmitTaskRequest{Namespace: "shop", Name: "order", Context: nulCtx}))
			return err
		}, "context.order.note"},
		{"NUL in a tag", func() error {
			_, err := client.SubmitTask(ctx, connect.NewRequest(&adminv1.SubmitTaskRequest{Namespace: "shop", Name: "order", Context: okCtx, Tags: []string{"a", "\x00"}}))
			return err
		}, "tags[1]"},
		{"NUL in the initiator", func() error {
			_, err := client.SubmitTask(ctx, connect.NewRequest(&adminv1.SubmitTaskRequest{Namespace: "shop", Name: "order", Context: okCtx, Initiator: "x\x00"}))
			return err
		}, "initiator"},
		{"NUL in a filter", func() error {
			_, err := client.ListTasks(ctx, connect.NewRequest(&adminv1.ListTasksRequest{Namespace: "sh\x00op"}))
			return err
		}, "namespace"},
		{"NUL in a template name", func() error {
			_, err := client.GetTemplate(ctx, connect.NewRequest(&adminv1.GetTemplateRequest{Namespace: "shop", Name: "or\x00der"}))
			return err
		}, "name"},
		{"NUL in a header value", func() error {
			_, err := client.PutHandler(ctx, connect.NewRequest(&adminv1.PutHandlerRequest{Pattern: "x",
				Endpoint: &adminv1.HandlerEndpointInput{Url: "http://pay/", Headers: map[string]string{"X-A": "\x00"}}}))
			return err
		}, "endpoint.headers.X-A"},
		{"NUL in a resolved result", func() error {
			_, err := client.ResolveStep(ctx, connect.NewRequest(&adminv1.ResolveStepRequest{StepUuid: "0190a5a0-0000-7000-8000-000000000000", Result: structpb.NewStringValue("\x00")}))
			return err
		}, "result"},
		{"negative breaker setting", func() error {
			_, err := client.PutHandler(ctx, connect.NewRequest(&adminv1.PutHandlerRequest{Pattern: "x",
				Endpoint: &adminv1.HandlerEndpointInput{Url: "http://pay/", Breaker: &adminv1.BreakerSettings{OpenTimeoutMs: -1}}}))
			return err
		}, "endpoint.breaker.open_timeout_ms"},
		{"namespace too long", func() error {
			_, err := client.RegisterTemplate(ctx, connect.NewRequest(&adminv1.RegisterTemplateRequest{
				Template: "name: t\nnamespace_name: " + strings.Repeat("n", 57) + "\nversion: 1\nsteps:\n  - {name: a, handler: {callable: c}}\n"}))
			return err
		}, "template.namespace_name"},
	} {
		err := tc.call()
		if connect.CodeOf(err) != connect.CodeInvalidArgument || !slices.Contains(violationFields(err), tc.field) {
			t.Errorf("%s: %v (fields %v), want InvalidArgument at %s", tc.name, err, violationFields(err), tc.field)
		}
	}
	mirrorPriorityEndsAndDelete(t, ctx, client, okCtx)
}

// mirrorPriorityEndsAndDelete: the ends of the priority range are stored as
// sent; a template is deleted once its task is finished.
func mirrorPriorityEndsAndDelete(t *testing.T, ctx context.Context, client adminv1connect.AdminServiceClient, okCtx *structpb.Struct) {
	t.Helper()
	sub, err := client.SubmitTask(ctx, connect.NewRequest(&adminv1.SubmitTaskRequest{Namespace: "shop", Name: "order", Context: okCtx, Priority: math.MinInt32}))
	if err != nil || sub.Msg.GetTask().GetPriority() != math.MinInt32 {
		t.Fatalf("priority MinInt32: %v %v", sub, err)
	}
	// DeleteTemplate: refused while a task is unfinished, then done.
	del := &adminv1.DeleteTemplateRequest{Namespace: "shop", Name: "order", Version: "1.0.0"}
	if _, err := client.DeleteTemplate(ctx, connect.NewRequest(del)); connect.CodeOf(err) != connect.CodeFailedPrecondition {
		t.Errorf("deleting a template with a live task: %v", err)
	}
	if _, err := client.CancelTask(ctx, connect.NewRequest(&adminv1.CancelTaskRequest{TaskUuid: sub.Msg.GetTask().GetTaskUuid()})); err != nil {
		t.Fatal(err)
	}
	if _, err := client.DeleteTemplate(ctx, connect.NewRequest(del)); err != nil {
		t.Errorf("DeleteTemplate: %v", err)
	}
	if _, err := client.DeleteTemplate(ctx, connect.NewRequest(del)); connect.CodeOf(err) != connect.CodeNotFound {
		t.Errorf("deleting again: %v", err)
	}
	if _, err := client.DeleteTemplate(ctx, connect.NewRequest(&adminv1.DeleteTemplateRequest{Namespace: "shop", Name: "order"})); connect.CodeOf(err) != connect.CodeInvalidArgument {
		t.Errorf("deleting without a version: %v", err)
	}
}

// violationFields lists the fields of a Connect error's BadRequest detail.
func violationFields(err error) []string {
	var fields []string
	var ce *connect.Error
	if errors.As(err, &ce) {
		for _, d := range ce.Details() {
			if v, derr := d.Value(); derr == nil {
				if br, ok := v.(*errdetails.BadRequest); ok {
					for _, f := range br.GetFieldViolations() {
						fields = append(fields, f.GetField())
					}
				}
			}
		}
	}
	return fields
}
