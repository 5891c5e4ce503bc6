package openapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"

	"connectrpc.com/connect"
	"google.golang.org/grpc"
	// The descriptors of grpc.health.v1, registered in the protobuf
	// registry the reflection service answers from. connectrpc.com/grpchealth
	// serves the service from a private copy of the .proto whose package
	// is connectext.grpc.health.v1, so without this import reflection lists
	// grpc.health.v1.Health but cannot describe it ("Symbol not found"),
	// and grpcurl, Kubernetes gRPC probes and other reflection clients fail.
	// The two are the same on the wire.
	_ "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/reflection"
	reflectionv1 "google.golang.org/grpc/reflection/grpc_reflection_v1"
	reflectionv1alpha "google.golang.org/grpc/reflection/grpc_reflection_v1alpha"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"
)

// Server reflection (grpc.reflection.v1 and v1alpha) for the mirror: grpc-go's
// implementation of the protocol, answering from the protobuf registry of
// this binary, served as Connect bidirectional streams (so over gRPC and,
// with HTTP/2, Connect). It lists exactly the given services, each of which
// must be described in that registry (newReflection panics otherwise: a
// listed service that cannot be described breaks every reflection client).

type reflector struct {
	v1Server      reflectionv1.ServerReflectionServer
	v1alphaServer reflectionv1alpha.ServerReflectionServer
}

// serviceList is a reflection.ServiceInfoProvider naming services.
type serviceList []string

func (l serviceList) GetServiceInfo() map[string]grpc.ServiceInfo {
	out := make(map[string]grpc.ServiceInfo, len(l))
	for _, name := range l {
		out[name] = grpc.ServiceInfo{}
	}
	return out
}

func newReflection(services ...string) *reflector {
	for _, name := range services {
		if _, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(name)); err != nil {
			panic(fmt.Sprintf("openapi: reflection would list %s, whose descriptor is not registered: %v", name, err))
		}
	}
	opts := reflection.ServerOptions{Services: serviceList(services)}
	return &reflector{v1Server: reflection.NewServerV1(opts), v1alphaServer: reflection.NewServer(opts)}
}

func (r *reflector) v1(opts ...connect.HandlerOption) (string, http.Handler) {
	procedure := "/" + reflectionv1.ServerReflection_ServiceDesc.ServiceName + "/ServerReflectionInfo"
	return "/" + reflectionv1.ServerReflection_ServiceDesc.ServiceName + "/", connect.NewBidiStreamHandler(procedure,
		func(ctx context.Context, s *connect.BidiStream[reflectionv1.ServerReflectionRequest, reflectionv1.ServerReflectionResponse]) error {
			return r.v1Server.ServerReflectionInfo(&bidiAdapter[reflectionv1.ServerReflectionRequest, reflectionv1.ServerReflectionResponse]{ctx: ctx, s: s})
		}, opts...)
}

func (r *reflector) v1alpha(opts ...connect.HandlerOption) (string, http.Handler) {
	procedure := "/" + reflectionv1alpha.ServerReflection_ServiceDesc.ServiceName + "/ServerReflectionInfo"
	return "/" + reflectionv1alpha.ServerReflection_ServiceDesc.ServiceName + "/", connect.NewBidiStreamHandler(procedure,
		func(ctx context.Context, s *connect.BidiStream[reflectionv1alpha.ServerReflectionRequest, reflectionv1alpha.ServerReflectionResponse]) error {
			return r.v1alphaServer.ServerReflectionInfo(&bidiAdapter[reflectionv1alpha.ServerReflectionRequest, reflectionv1alpha.ServerReflectionResponse]{ctx: ctx, s: s})
		}, opts...)
}

// bidiAdapter presents a Connect bidirectional stream as the grpc-go
// stream the reflection service expects. Only Recv, Send and Context are
// used by it.
type bidiAdapter[Req, Res any] struct {
	ctx context.Context
	s   *connect.BidiStream[Req, Res]
}

var _ grpc.BidiStreamingServer[reflectionv1.ServerReflectionRequest, reflectionv1.ServerReflectionResponse] = (*bidiAdapter[reflectionv1.ServerReflectionRequest, reflectionv1.ServerReflectionResponse])(nil)

// Recv answers io.EOF itself (not wrapped) when the client is done sending:
// the reflection service compares with ==.
func (a *bidiAdapter[Req, Res]) Recv() (*Req, error) {
	m, err := a.s.Receive()
	if errors.Is(err, io.EOF) {
		return nil, io.EOF
	}
	return m, err
}
func (a *bidiAdapter[Req, Res]) Send(m *Res) error { return a.s.Send(m) }
func (a *bidiAdapter[Req, Res]) Context() context.Context {
	return a.ctx
}
func (a *bidiAdapter[Req, Res]) SetHeader(md metadata.MD) error {
	for k, vs := range md {
		for _, v := range vs {
			a.s.ResponseHeader().Add(k, v)
		}
	}
	return nil
}
func (a *bidiAdapter[Req, Res]) SendHeader(md metadata.MD) error { return a.SetHeader(md) }
func (a *bidiAdapter[Req, Res]) SetTrailer(md metadata.MD) {
	for k, vs := range md {
		for _, v := range vs {
			a.s.ResponseTrailer().Add(k, v)
		}
	}
}
func (a *bidiAdapter[Req, Res]) SendMsg(m any) error { return a.s.Send(m.(*Res)) }
func (a *bidiAdapter[Req, Res]) RecvMsg(any) error {
	return errors.New("openapi: reflection stream: RecvMsg is not supported; use Recv")
}
