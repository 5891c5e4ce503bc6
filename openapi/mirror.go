package openapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"time"

	"connectrpc.com/connect"
	"connectrpc.com/grpchealth"
	"github.com/danielgtaylor/huma/v2"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/tasker-runner/tasker-runner/contracts/gen/tasker/admin/v1/adminv1connect"
)

// The Connect/gRPC mirror of the management API (tasker.admin.v1).
//
// Every procedure of AdminService runs the REST operation's own handler
// function (submitTask, getTask, ...) of a [Server] built from the same
// [Config], so both APIs share validation, [runner.Client] calls, error
// decisions and response shapes and cannot drift apart:
//
//   - Request bodies are converted to the REST body type through JSON
//     (protojson, whose field names are the REST names) and validated
//     against the REST operation's own JSON Schema before the handler runs,
//     so the same constraints (lengths, enums, ranges, closed objects) hold.
//     Path and query parameters are validated against the REST operation's
//     parameter schemas too ([Server.checkParams]), so a bad one is refused
//     with REST's message, at the same field.
//   - Responses are converted back through JSON: the REST body is
//     marshalled and decoded into the proto message, rejecting fields the
//     message lacks, so a REST field missing from admin.proto is an error
//     (tests catch it), not silently dropped.
//   - Problems become Connect errors: 404 NotFound, 409 FailedPrecondition,
//     400 and 422 InvalidArgument (with a google.rpc.BadRequest detail listing
//     each field, named as in the request message), 413 ResourceExhausted,
//     503 Unavailable, 500 Internal.
//
// The handler also serves grpc.health.v1 (running the readiness checks) and
// server reflection (v1 and v1alpha), and applies the [Authenticator]'s
// rules to every procedure.

// AdminServiceName is the fully qualified name of the mirrored service.
const AdminServiceName = adminv1connect.AdminServiceName

// Mirror serves AdminService, grpc.health.v1 and server reflection over
// Connect, gRPC and gRPC-Web.
type Mirror struct {
	s   *Server
	mux *http.ServeMux
}

var _ adminv1connect.AdminServiceHandler = (*mirrorService)(nil)

// NewMirror builds the Connect/gRPC mirror of the REST API configured by
// cfg. auth may be nil (no authentication). Serve [Mirror.Handler] with
// HTTP/2 (h2c when unencrypted) for gRPC; Connect also works over HTTP/1.1.
func NewMirror(cfg Config, auth *Authenticator) *Mirror {
	if auth == nil {
		auth = &Authenticator{}
	}
	s := New(cfg)
	m := &Mirror{s: s, mux: http.NewServeMux()}
	intercept := connect.WithInterceptors(auth.ConnectInterceptor())
	// Template operations accept larger bodies (as over REST); the others
	// check their own limit.
	readMax := connect.WithReadMaxBytes(int(max(s.cfg.MaxRequestBytes, TemplateRequestBytes)))
	m.mux.Handle(adminv1connect.NewAdminServiceHandler(&mirrorService{s: s}, intercept, readMax))
	m.mux.Handle(grpchealth.NewHandler(mirrorHealth{s}, intercept))
	refl := newReflection(AdminServiceName, grpchealth.HealthV1ServiceName)
	m.mux.Handle(refl.v1(intercept))
	m.mux.Handle(refl.v1alpha(intercept))
	return m
}

// Handler returns the HTTP handler serving every procedure.
func (m *Mirror) Handler() http.Handler { return m.mux }

// mirrorHealth answers grpc.health.v1 with the readiness checks: SERVING
// when every check passes, NOT_SERVING otherwise, for the server as a whole
// ("") and for AdminService.
type mirrorHealth struct{ s *Server }

func (h mirrorHealth) Check(ctx context.Context, req *grpchealth.CheckRequest) (*grpchealth.CheckResponse, error) {
	if req.Service != "" && req.Service != AdminServiceName {
		return nil, connect.NewError(connect.CodeNotFound, fmt.Errorf("unknown service %q", req.Service))
	}
	out, err := h.s.ready(ctx, nil)
	if err != nil {
		return nil, connectError(err, "")
	}
	if out.Body.Status != StatusHealthy {
		return &grpchealth.CheckResponse{Status: grpchealth.StatusNotServing}, nil
	}
	return &grpchealth.CheckResponse{Status: grpchealth.StatusServing}, nil
}

// ---- conversions

// toProto decodes the JSON form of a REST body into msg, refusing fields
// msg does not have.
func toProto(v any, msg proto.Message) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("openapi: mirror: %w", err)
	}
	if err := protojson.Unmarshal(b, msg); err != nil {
		return fmt.Errorf("openapi: mirror: %T does not fit %T: %w", v, msg, err)
	}
	return nil
}

// fromProto turns a request message into the REST body T: through JSON,
// validated by the REST body's schema (field problems at body.<path>, as
// over REST).
func fromProto[T any](s *Server, msg proto.Message) (T, error) {
	var out T
	b, err := protojson.Marshal(msg)
	if err != nil {
		return out, fmt.Errorf("openapi: mirror: %w", err)
	}
	return bodyFromJSON[T](s, b)
}

// bodyFromJSON decodes and validates the JSON body b of a REST operation
// whose body type is T.
func bodyFromJSON[T any](s *Server, b []byte) (T, error) {
	var out T
	if d := jsonTextProblem(b, "body"); d != nil {
		return out, invalid("validation failed", d)
	}
	var data any
	if err := json.Unmarshal(b, &data); err != nil {
		return out, fmt.Errorf("openapi: mirror: %w", err)
	}
	registry := s.api.OpenAPI().Components.Schemas
	schema := registry.Schema(reflect.TypeFor[T](), true, "")
	pb := huma.NewPathBuffer(make([]byte, 0, 64), 0)
	pb.Push("body")
	res := &huma.ValidateResult{}
	huma.Validate(registry, schema, pb, huma.ModeWriteToServer, data, res)
	if err := validationProblem(res, "body"); err != nil {
		return out, err
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return out, invalid("validation failed", fieldError("body", err.Error()))
	}
	return out, nil
}

// limitBody refuses a request larger than the REST body limit.
func (s *Server) limitBody(msg proto.Message) error {
	if n := proto.Size(msg); int64(n) > s.cfg.MaxRequestBytes {
		return problem(http.StatusRequestEntityTooLarge, fmt.Sprintf("the request is %d bytes, more than the limit of %d", n, s.cfg.MaxRequestBytes))
	}
	return nil
}

// connectError turns a problem into a Connect error. Field locations lose
// REST's "path.", "query." and "header." prefixes and "body" becomes
// bodyField (the request field holding the body, or "" when the request
// message is the body): body.context.order.id is context.order.id.
func connectError(err error, bodyField string) error {
	var ce *connect.Error
	if errors.As(err, &ce) {
		return err
	}
	var se huma.StatusError
	if !errors.As(err, &se) {
		return connect.NewError(connect.CodeInternal, errors.New("internal error; the server log has the details"))
	}
	code := codeForStatus(se.GetStatus())
	msg := se.Error()
	var em *huma.ErrorModel
	var violations []*errdetails.BadRequest_FieldViolation
	if errors.As(err, &em) {
		msg = em.Detail
		if msg == "" {
			msg = em.Title
		}
		for _, d := range em.Errors {
			if d == nil {
				continue
			}
			field := fieldPath(d.Location, bodyField)
			msg += "; " + field + ": " + d.Message
			violations = append(violations, &errdetails.BadRequest_FieldViolation{Field: field, Description: d.Message})
		}
	}
	cerr := connect.NewError(code, errors.New(msg))
	if len(violations) > 0 {
		if detail, derr := connect.NewErrorDetail(&errdetails.BadRequest{FieldViolations: violations}); derr == nil {
			cerr.AddDetail(detail)
		}
	}
	addRetryAfter(cerr, err)
	return cerr
}

// addRetryAfter carries a problem's Retry-After (the database is
// unavailable) over to a Connect error: as the Retry-After metadata and as
// a google.rpc.RetryInfo detail, which gRPC clients understand.
func addRetryAfter(cerr *connect.Error, err error) {
	var he huma.HeadersError
	if !errors.As(err, &he) {
		return
	}
	ra := he.GetHeaders().Get("Retry-After")
	secs, perr := strconv.Atoi(ra)
	if perr != nil || secs < 0 {
		return
	}
	cerr.Meta().Set("Retry-After", ra)
	if detail, derr := connect.NewErrorDetail(&errdetails.RetryInfo{RetryDelay: durationpb.New(time.Duration(secs) * time.Second)}); derr == nil {
		cerr.AddDetail(detail)
	}
}

func fieldPath(loc, bodyField string) string {
	for _, p := range []string{"path.", "query.", "header."} {
		if rest, ok := strings.CutPrefix(loc, p); ok {
			return rest
		}
	}
	if loc == "body" {
		if bodyField == "" {
			return "(request)"
		}
		return bodyField
	}
	if rest, ok := strings.CutPrefix(loc, "body"); ok {
		if bodyField == "" {
			return strings.TrimPrefix(rest, ".")
		}
		return bodyField + rest
	}
	return loc
}

// codeForStatus maps an HTTP status of a problem to a Connect code.
func codeForStatus(status int) connect.Code {
	switch status {
	case http.StatusBadRequest, http.StatusUnprocessableEntity:
		return connect.CodeInvalidArgument
	case http.StatusUnauthorized:
		return connect.CodeUnauthenticated
	case http.StatusForbidden:
		return connect.CodePermissionDenied
	case http.StatusNotFound:
		return connect.CodeNotFound
	case http.StatusConflict, http.StatusPreconditionFailed:
		return connect.CodeFailedPrecondition
	case http.StatusRequestEntityTooLarge, http.StatusTooManyRequests:
		return connect.CodeResourceExhausted
	case 499:
		return connect.CodeCanceled
	case http.StatusServiceUnavailable:
		return connect.CodeUnavailable
	case http.StatusGatewayTimeout:
		return connect.CodeDeadlineExceeded
	case http.StatusNotImplemented:
		return connect.CodeUnimplemented
	}
	return connect.CodeInternal
}

// respond converts a REST body into the response message.
func respond[M any, PM interface {
	*M
	proto.Message
}](s *Server, ctx context.Context, body any) (*connect.Response[M], error) {
	var msg PM = new(M)
	if err := toProto(body, msg); err != nil {
		return nil, connectError(s.fail(ctx, err), "")
	}
	return connect.NewResponse((*M)(msg)), nil
}
