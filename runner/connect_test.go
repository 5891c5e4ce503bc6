package runner_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/tasker-runner/tasker-runner/callout"
	handlerv1 "github.com/tasker-runner/tasker-runner/contracts/gen/tasker/handler/v1"
	"github.com/tasker-runner/tasker-runner/contracts/gen/tasker/handler/v1/handlerv1connect"
	"github.com/tasker-runner/tasker-runner/runner"
	"github.com/tasker-runner/tasker-runner/runner/store/pgtest"
)

// rpcEcho answers each step with its name and the dependency names it saw,
// failing permanently if a dependency result is missing.
type rpcEcho struct{}

func (rpcEcho) Execute(_ context.Context, req *connect.Request[handlerv1.ExecuteRequest]) (*connect.Response[handlerv1.ExecuteResponse], error) {
	m := req.Msg
	var seen []any
	for name, dep := range m.GetDependencyResults() {
		if got := dep.GetResult().GetStructValue().GetFields()["step"].GetStringValue(); got != name {
			return nil, connect.NewError(connect.CodeInvalidArgument, fmt.Errorf("dependency %s carries %q", name, got))
		}
		seen = append(seen, name)
	}
	result, err := structpb.NewValue(map[string]any{"step": m.GetStep().GetName(), "seen": seen})
	if err != nil {
		return nil, err
	}
	return connect.NewResponse(&handlerv1.ExecuteResponse{Success: true, Status: "completed", Result: result}), nil
}

func (rpcEcho) ExecuteBatch(context.Context, *connect.Request[handlerv1.ExecuteBatchRequest]) (*connect.Response[handlerv1.ExecuteBatchResponse], error) {
	return nil, connect.NewError(connect.CodeUnimplemented, nil)
}

func startRPCServer(t *testing.T) string {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle(handlerv1connect.NewHandlerServiceHandler(rpcEcho{}))
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	srv := &http.Server{Handler: mux, Protocols: &protocols, ReadHeaderTimeout: time.Minute}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close(); <-done })
	return "http://" + ln.Addr().String()
}

// Diamonds run end to end through a Connect handler and through the same
// service spoken to with the gRPC protocol (h2c).
func TestConnectAndGRPCHandlersRunSteps(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	pool := pgtest.Pool(t)
	client := runner.NewClient(pool, runner.ClientConfig{})
	url := startRPCServer(t)
	reg := callout.NewRegistry(callout.RegistryConfig{})
	t.Cleanup(reg.Close)
	if err := reg.Set([]callout.Endpoint{
		{Namespace: "viaconnect", Pattern: "*", URL: url, Protocol: callout.ProtocolConnect},
		{Namespace: "viagrpc", Pattern: "*", URL: url, Protocol: callout.ProtocolGRPC},
	}); err != nil {
		t.Fatal(err)
	}
	startRunner(t, pool, runner.Config{Handlers: reg})
	for _, ns := range []string{"viaconnect", "viagrpc"} {
		register(t, client, fmt.Sprintf(diamondTemplate, ns))
		s, err := client.Submit(ctx, runner.SubmitRequest{Namespace: ns, Name: "diamond"})
		if err != nil {
			t.Fatal(err)
		}
		waitFor(t, 15*time.Second, ns+" diamond", func() bool { return taskState(t, pool, s.TaskUUID) == "complete" })
		var seen int
		if err := pool.QueryRow(ctx, `SELECT jsonb_array_length(results->'result'->'seen') FROM tasker.steps WHERE task_uuid = $1 AND name = 'd'`, s.TaskUUID).Scan(&seen); err != nil || seen != 3 {
			t.Fatalf("%s: step d saw %d dependency results (%v), want 3", ns, seen, err)
		}
	}
}
