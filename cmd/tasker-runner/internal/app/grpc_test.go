package app

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protodesc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/dynamicpb"

	"github.com/tasker-runner/tasker-runner/cmd/tasker-runner/internal/clitest"
	"github.com/tasker-runner/tasker-runner/runner/store/pgtest"
)

// reflectionClient does what grpcurl does with server reflection: it knows
// no message type in advance and learns every one from the server. This
// file must not import a health or admin package (such as
// google.golang.org/grpc/health/grpc_health_v1): the server under test is
// this test binary, and an import here would register the descriptors in
// it, so a server that cannot resolve them itself would pass.
type reflectionClient struct {
	t      *testing.T
	stream reflectionpb.ServerReflection_ServerReflectionInfoClient
	files  map[string]*descriptorpb.FileDescriptorProto // by file name
}

func (c *reflectionClient) ask(req *reflectionpb.ServerReflectionRequest) *reflectionpb.ServerReflectionResponse {
	c.t.Helper()
	if err := c.stream.Send(req); err != nil {
		c.t.Fatalf("reflection: sending %v: %v", req, err)
	}
	resp, err := c.stream.Recv()
	if err != nil {
		c.t.Fatalf("reflection: %v", err)
	}
	return resp
}

// list is `grpcurl list`.
func (c *reflectionClient) list() []string {
	c.t.Helper()
	resp := c.ask(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}})
	var names []string
	for _, s := range resp.GetListServicesResponse().GetService() {
		names = append(names, s.GetName())
	}
	slices.Sort(names)
	return names
}

// add keeps the file descriptors of a reflection answer; it returns an
// error for an error answer ("Symbol not found").
func (c *reflectionClient) add(what string, resp *reflectionpb.ServerReflectionResponse) error {
	if e := resp.GetErrorResponse(); e != nil {
		return fmt.Errorf("%s: reflection error %d: %s", what, e.GetErrorCode(), e.GetErrorMessage())
	}
	raw := resp.GetFileDescriptorResponse().GetFileDescriptorProto()
	if len(raw) == 0 {
		return fmt.Errorf("%s: no file descriptor in %v", what, resp)
	}
	for _, b := range raw {
		fd := &descriptorpb.FileDescriptorProto{}
		if err := proto.Unmarshal(b, fd); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		c.files[fd.GetName()] = fd
	}
	return nil
}

// resolve is `grpcurl describe SERVICE`: the file declaring symbol and,
// file by file, everything it imports, built into a registry.
func (c *reflectionClient) resolve(symbol string) (*protoregistry.Files, error) {
	c.t.Helper()
	if err := c.add(symbol, c.ask(&reflectionpb.ServerReflectionRequest{
		MessageRequest: &reflectionpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: symbol},
	})); err != nil {
		return nil, err
	}
	for {
		var missing []string
		for _, fd := range c.files {
			for _, dep := range fd.GetDependency() {
				if _, ok := c.files[dep]; !ok && !slices.Contains(missing, dep) {
					missing = append(missing, dep)
				}
			}
		}
		if len(missing) == 0 {
			break
		}
		for _, name := range missing {
			if err := c.add(name, c.ask(&reflectionpb.ServerReflectionRequest{
				MessageRequest: &reflectionpb.ServerReflectionRequest_FileByFilename{FileByFilename: name},
			})); err != nil {
				return nil, err
			}
		}
	}
	set := &descriptorpb.FileDescriptorSet{}
	for _, fd := range c.files {
		set.File = append(set.File, fd)
	}
	return protodesc.NewFiles(set)
}

// TestGRPCReflectionResolvesEveryService is what `grpcurl -plaintext HOST:PORT
// list`, `describe` and `grpc.health.v1.Health/Check` do against serve (and
// what Kubernetes gRPC probes and reflection-based tools rely on): every
// service reflection lists resolves to its file descriptor, and Check,
// called with messages built from those descriptors alone, answers SERVING.
func TestGRPCReflectionResolvesEveryService(t *testing.T) {
	t.Parallel()
	vars, addr := clitest.WebVars(t)
	vars["DATABASE_URL"] = pgtest.URL(t)
	grpcAddr := net.JoinHostPort(vars["TASKER_WORKER_GRPC_HOST"], vars["TASKER_WORKER_GRPC_PORT"])
	c := clitest.Start(t, vars, "serve")
	c.WaitHealthy(addr, clitest.StartupTimeout)

	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rc := &reflectionClient{t: t, stream: stream, files: map[string]*descriptorpb.FileDescriptorProto{}}

	services := rc.list()
	for _, want := range []string{"grpc.health.v1.Health", "tasker.admin.v1.AdminService"} {
		if !slices.Contains(services, want) {
			t.Errorf("reflection lists %v, without %s", services, want)
		}
	}
	var health protoreflect.ServiceDescriptor
	for _, name := range services {
		files, err := rc.resolve(name)
		if err != nil {
			t.Errorf("service %s is listed but does not resolve: %v", name, err)
			continue
		}
		d, err := files.FindDescriptorByName(protoreflect.FullName(name))
		if err != nil {
			t.Errorf("service %s: the descriptors reflection gave do not declare it: %v", name, err)
			continue
		}
		sd, ok := d.(protoreflect.ServiceDescriptor)
		if !ok || sd.Methods().Len() == 0 {
			t.Errorf("service %s: %v is not a service with methods", name, d)
			continue
		}
		if name == "grpc.health.v1.Health" {
			health = sd
		}
	}
	if err := stream.CloseSend(); err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); !errors.Is(err, io.EOF) {
		t.Errorf("reflection stream end: %v", err)
	}
	if health == nil {
		t.Fatal("grpc.health.v1.Health did not resolve: cannot call Check")
	}

	// grpcurl -plaintext HOST:PORT grpc.health.v1.Health/Check
	check := health.Methods().ByName("Check")
	if check == nil {
		t.Fatal("grpc.health.v1.Health has no Check method")
	}
	req := dynamicpb.NewMessage(check.Input())
	resp := dynamicpb.NewMessage(check.Output())
	if err := conn.Invoke(ctx, "/grpc.health.v1.Health/Check", req, resp); err != nil {
		t.Fatalf("grpc.health.v1.Health/Check: %v", err)
	}
	status := check.Output().Fields().ByName("status")
	if status == nil || status.Enum() == nil {
		t.Fatalf("HealthCheckResponse has no enum field status: %v", check.Output())
	}
	got := status.Enum().Values().ByNumber(resp.Get(status).Enum())
	if got == nil || got.Name() != "SERVING" {
		t.Errorf("Check answered status %v, want SERVING", got)
	}
	c.Stop(syscall.SIGTERM)
}
