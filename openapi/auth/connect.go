package auth

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"connectrpc.com/connect"
)

// Procedures that need no credential.
var (
	healthService      = "/grpc.health.v1.Health/"
	reflectionServices = []string{
		"/grpc.reflection.v1.ServerReflection/",
		"/grpc.reflection.v1alpha.ServerReflection/",
	}
)

// ConnectInterceptor applies the same rules to Connect, gRPC and gRPC-Web
// procedures, unary and streaming: it answers
// [connect.CodeUnauthenticated] for a missing or invalid credential and
// [connect.CodePermissionDenied] for a read-only one on a procedure that
// writes, and puts the [Principal] in the handler's context. Use it as a
// handler option (connect.WithInterceptors); on a client it does nothing.
func (a *Authenticator) ConnectInterceptor() connect.Interceptor {
	return connectAuth{a}
}

type connectAuth struct{ a *Authenticator }

// procedure decides on one call: the context to go on with, or an error.
func (c connectAuth) procedure(ctx context.Context, spec connect.Spec, peer connect.Peer, h http.Header) (context.Context, error) {
	a := c.a
	if !a.cfg.Enabled || spec.IsClient {
		return ctx, nil
	}
	proc := spec.Procedure
	for _, s := range reflectionServices {
		if strings.HasPrefix(proc, s) {
			return ctx, nil
		}
	}
	health := strings.HasPrefix(proc, healthService)
	if health && a.cfg.PublicHealth {
		return ctx, nil
	}
	write := !health && !readOnlyProcedure(spec)
	p, aerr := a.check(h, write)
	if aerr != nil {
		code := connect.CodeUnauthenticated
		if aerr.status == http.StatusForbidden {
			code = connect.CodePermissionDenied
		}
		err := connect.NewError(code, errors.New(aerr.detail))
		// The challenge is an HTTP header: gRPC and gRPC-Web carry error
		// metadata as trailers, where clients reject it.
		if code == connect.CodeUnauthenticated && peer.Protocol == connect.ProtocolConnect {
			err.Meta().Set("WWW-Authenticate", aerr.wwwAuthenticate())
		}
		return ctx, err
	}
	return WithPrincipal(ctx, p), nil
}

// readOnlyProcedure reports whether a procedure only reads: its method is
// named Get*, List* or Watch* (the prefix followed by an upper-case letter
// or nothing), or its handler declares no side effects.
func readOnlyProcedure(spec connect.Spec) bool {
	if spec.IdempotencyLevel == connect.IdempotencyNoSideEffects {
		return true
	}
	method := spec.Procedure[strings.LastIndexByte(spec.Procedure, '/')+1:]
	for _, prefix := range []string{"Get", "List", "Watch"} {
		if rest, ok := strings.CutPrefix(method, prefix); ok && (rest == "" || rest[0] >= 'A' && rest[0] <= 'Z') {
			return true
		}
	}
	return false
}

func (c connectAuth) WrapUnary(next connect.UnaryFunc) connect.UnaryFunc {
	return func(ctx context.Context, req connect.AnyRequest) (connect.AnyResponse, error) {
		ctx, err := c.procedure(ctx, req.Spec(), req.Peer(), req.Header())
		if err != nil {
			return nil, err
		}
		return next(ctx, req)
	}
}

func (c connectAuth) WrapStreamingClient(next connect.StreamingClientFunc) connect.StreamingClientFunc {
	return next
}

func (c connectAuth) WrapStreamingHandler(next connect.StreamingHandlerFunc) connect.StreamingHandlerFunc {
	return func(ctx context.Context, conn connect.StreamingHandlerConn) error {
		ctx, err := c.procedure(ctx, conn.Spec(), conn.Peer(), conn.RequestHeader())
		if err != nil {
			return err
		}
		return next(ctx, conn)
	}
}
