package openapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/tasker-runner/tasker-runner/callout"
	"github.com/tasker-runner/tasker-runner/runner"
)

// The handler endpoint registry (tasker.handler_endpoints): where and how
// the handlers matching a pattern are called. Changes are announced to
// every runner, which reloads its registry without a restart.

// BreakerSettings configures an endpoint's circuit breaker; zeros take the
// runner's defaults (worker.callout.breaker).
type BreakerSettings struct {
	ConsecutiveFailures int `json:"consecutive_failures,omitempty" minimum:"0" maximum:"2147483647" doc:"failures in a row that open the breaker"`
	OpenTimeoutMs       int `json:"open_timeout_ms,omitempty" minimum:"0" maximum:"2147483647" doc:"how long it stays open before a trial call"`
	IntervalMs          int `json:"interval_ms,omitempty" minimum:"0" maximum:"2147483647" doc:"how often the closed breaker clears its counts; 0 never"`
	MaxRequests         int `json:"max_requests,omitempty" minimum:"0" maximum:"2147483647" doc:"trial calls allowed while half-open"`
}

// HandlerEndpointInput is the body of putHandler.
type HandlerEndpointInput struct {
	URL            string            `json:"url,omitempty" maxLength:"2048" doc:"where to call: for http, a URL that may contain {callable} (replaced by the step's callable); for connect and grpc, the service's base URL; unused for go" example:"http://payments:8080/handlers/{callable}"`
	Protocol       string            `json:"protocol,omitempty" enum:"http,connect,grpc,go" default:"http" doc:"http (HTTP+JSON), connect, grpc, or go (an in-process Go function registered under the callable)"`
	TimeoutMs      int               `json:"timeout_ms,omitempty" minimum:"0" maximum:"2147483647" doc:"bounds one call; 0 leaves it to the step's timeout"`
	MaxConcurrency int               `json:"max_concurrency,omitempty" minimum:"0" maximum:"2147483647" doc:"calls in flight at most; 0 no limit"`
	BatchMax       int               `json:"batch_max,omitempty" minimum:"1" maximum:"2147483647" default:"1" doc:"more than 1 sends up to this many steps in one call"`
	BatchWindowMs  *int              `json:"batch_window_ms,omitempty" minimum:"0" maximum:"2147483647" doc:"how long a batch waits for company; absent: 2"`
	Breaker        BreakerSettings   `json:"breaker,omitzero"`
	Headers        map[string]string `json:"headers,omitempty" doc:"sent with every call"`
	SecretRef      string            `json:"secret_ref,omitempty" maxLength:"1024" pattern:"^(env:[A-Za-z_][A-Za-z0-9_]*|file:/.+)$" doc:"where the Standard Webhooks signing secrets are: env:NAME (the variable holds one, or several separated by commas, newest first) or file:/path (one per line). The secrets themselves are never sent nor returned." example:"env:PAYMENTS_WEBHOOK_SECRET"`
}

// HandlerEndpoint is a registered handler endpoint.
type HandlerEndpoint struct {
	Namespace      string            `json:"namespace" doc:"the namespace it serves; empty: every namespace"`
	Pattern        string            `json:"pattern" doc:"a callable (payments.refund), a glob (payments.*), or * (the namespace's default)"`
	URL            string            `json:"url" doc:"credentials in the URL are masked"`
	Protocol       string            `json:"protocol" enum:"http,connect,grpc,go"`
	TimeoutMs      int               `json:"timeout_ms"`
	MaxConcurrency int               `json:"max_concurrency"`
	BatchMax       int               `json:"batch_max"`
	BatchWindowMs  int               `json:"batch_window_ms"`
	Breaker        BreakerSettings   `json:"breaker"`
	Headers        map[string]string `json:"headers" doc:"values of headers whose names suggest a credential (authorization, cookie, token, secret, key, password, signature) are masked"`
	SecretRef      string            `json:"secret_ref,omitempty" doc:"where the signing secrets are (never the secrets)"`
	Signed         bool              `json:"signed" doc:"calls are signed (Standard Webhooks)"`
	Error          string            `json:"error,omitempty" doc:"why the runner of this process cannot use the endpoint (its secret_ref does not resolve here, say): its steps wait in the queue, not called, not failed, using no attempt, until it is fixed (the runner looks again every few seconds, and when the endpoint is put again); absent when it is usable, or when this process runs no runner"`
	CreatedAt      time.Time         `json:"created_at"`
	UpdatedAt      time.Time         `json:"updated_at"`
}

// HandlerList is the answer of listHandlers.
type HandlerList struct {
	Items []HandlerEndpoint `json:"items" nullable:"false"`
}

type handlerKey struct {
	Pattern   string `path:"pattern" minLength:"1" maxLength:"255" doc:"the callable or glob (URL-escaped)" example:"payments.*"`
	Namespace string `query:"namespace" maxLength:"56" pattern:"^([a-z0-9_][a-z0-9_.-]{0,55})?$" doc:"the namespace the endpoint serves; absent or empty: every namespace"`
}

type putHandlerInput struct {
	Pattern   string `path:"pattern" minLength:"1" maxLength:"255" doc:"the callable or glob (URL-escaped)" example:"payments.*"`
	Namespace string `query:"namespace" maxLength:"56" pattern:"^([a-z0-9_][a-z0-9_.-]{0,55})?$" doc:"the namespace the endpoint serves; absent or empty: every namespace"`
	Body      HandlerEndpointInput
}

type handlerOutput struct {
	Status int
	Body   HandlerEndpoint
}

type listHandlersInput struct {
	Namespace string `query:"namespace" maxLength:"56" doc:"only endpoints of this namespace (empty string not allowed here: omit it to list all)"`
}

type listHandlersOutput struct {
	Body HandlerList
}

func (s *Server) registerHandlers() {
	tags := []string{"handlers"}
	huma.Register(s.api, huma.Operation{
		OperationID: "listHandlers",
		Method:      http.MethodGet,
		Path:        "/v1/handlers",
		Summary:     "List handler endpoints",
		Description: "Every handler endpoint registered in the database, by namespace and pattern, with error set on those the runner of this process cannot use (their steps wait). Endpoints from the configuration file are not listed (see getStatus for what this process runs).",
		Tags:        tags,
		Errors:      []int{http.StatusUnprocessableEntity, http.StatusServiceUnavailable},
	}, s.listHandlers)
	huma.Register(s.api, huma.Operation{
		OperationID: "getHandler",
		Method:      http.MethodGet,
		Path:        "/v1/handlers/{pattern}",
		Summary:     "Get a handler endpoint",
		Tags:        tags,
		Errors:      []int{http.StatusNotFound, http.StatusUnprocessableEntity, http.StatusServiceUnavailable},
	}, s.getHandler)
	huma.Register(s.api, huma.Operation{
		OperationID:   "putHandler",
		Method:        http.MethodPut,
		Path:          "/v1/handlers/{pattern}",
		Summary:       "Register or replace a handler endpoint",
		Description:   "Creates (201) or replaces (200) the endpoint for the pattern in the namespace. It is checked as a runner would load it (protocol, URL and its {callable} placeholder, headers, the secret reference resolving in this process) and every runner applies it without a restart. A replaced endpoint starts with a fresh circuit breaker.",
		Tags:          tags,
		DefaultStatus: http.StatusOK,
		MaxBodyBytes:  s.cfg.MaxRequestBytes,
		Responses: map[string]*huma.Response{
			"201": {Description: "Created", Content: map[string]*huma.MediaType{"application/json": {Schema: s.api.OpenAPI().Components.Schemas.Schema(reflect.TypeFor[HandlerEndpoint](), true, "")}}},
		},
		Errors: []int{http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity, http.StatusServiceUnavailable},
	}, s.putHandler)
	huma.Register(s.api, huma.Operation{
		OperationID:   "deleteHandler",
		Method:        http.MethodDelete,
		Path:          "/v1/handlers/{pattern}",
		Summary:       "Remove a handler endpoint",
		Description:   "Every runner stops using it without a restart.",
		Tags:          tags,
		DefaultStatus: http.StatusNoContent,
		Errors:        []int{http.StatusNotFound, http.StatusUnprocessableEntity, http.StatusServiceUnavailable},
	}, s.deleteHandler)
}

func (s *Server) listHandlers(ctx context.Context, in *listHandlersInput) (*listHandlersOutput, error) {
	if s.cfg.Client == nil {
		return nil, errNoDatabase
	}
	rows, err := s.cfg.Client.ListEndpoints(ctx)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	out := &listHandlersOutput{Body: HandlerList{Items: make([]HandlerEndpoint, 0, len(rows))}}
	unusable := s.unusableEndpoints()
	for _, r := range rows {
		if in.Namespace != "" && r.Namespace != in.Namespace {
			continue
		}
		h := handlerFromRow(r)
		h.Error = unusable[[2]string{r.Namespace, r.Pattern}]
		out.Body.Items = append(out.Body.Items, h)
	}
	return out, nil
}

// unusableEndpoints maps (namespace, pattern) to why this process's runner
// cannot use that endpoint; empty without a runner.
func (s *Server) unusableEndpoints() map[[2]string]string {
	out := map[[2]string]string{}
	if s.cfg.Endpoints == nil {
		return out
	}
	for _, e := range s.cfg.Endpoints() {
		if e.Error != "" {
			out[[2]string{e.Namespace, e.Pattern}] = e.Error
		}
	}
	return out
}

// findEndpoint reads one endpoint row.
func (s *Server) findEndpoint(ctx context.Context, k handlerKey) (runner.HandlerEndpoint, error) {
	row, err := s.cfg.Client.GetEndpoint(ctx, k.Namespace, k.Pattern)
	if errors.Is(err, runner.ErrNotFound) {
		return row, problem(http.StatusNotFound, k.describe()+" is not registered")
	}
	if err != nil {
		return row, s.fail(ctx, err)
	}
	return row, nil
}

func (k handlerKey) describe() string {
	if k.Namespace == "" {
		return fmt.Sprintf("handler endpoint %q (every namespace)", k.Pattern)
	}
	return fmt.Sprintf("handler endpoint %q in namespace %q", k.Pattern, k.Namespace)
}

func (s *Server) getHandler(ctx context.Context, in *handlerKey) (*handlerOutput, error) {
	if s.cfg.Client == nil {
		return nil, errNoDatabase
	}
	row, err := s.findEndpoint(ctx, *in)
	if err != nil {
		return nil, err
	}
	h := handlerFromRow(row)
	h.Error = s.unusableEndpoints()[[2]string{row.Namespace, row.Pattern}]
	return &handlerOutput{Status: http.StatusOK, Body: h}, nil
}

func (s *Server) putHandler(ctx context.Context, in *putHandlerInput) (*handlerOutput, error) {
	if s.cfg.Client == nil {
		return nil, errNoDatabase
	}
	b := in.Body
	row := runner.HandlerEndpoint{
		Namespace: in.Namespace, Pattern: in.Pattern, URL: b.URL, Protocol: b.Protocol,
		TimeoutMs: b.TimeoutMs, MaxConcurrency: b.MaxConcurrency, BatchMax: b.BatchMax, BatchWindowMs: BatchWindowDefaultMs,
		BreakerMaxRequests: b.Breaker.MaxRequests, BreakerIntervalMs: b.Breaker.IntervalMs,
		BreakerOpenTimeoutMs: b.Breaker.OpenTimeoutMs, BreakerConsecutiveFailures: b.Breaker.ConsecutiveFailures,
		Headers: b.Headers, SecretRef: b.SecretRef,
	}
	if row.Protocol == "" {
		row.Protocol = "http"
	}
	if b.BatchWindowMs != nil {
		row.BatchWindowMs = *b.BatchWindowMs
	}
	if row.Protocol != callout.ProtocolGo && row.URL != "" {
		if err := s.cfg.URLPolicy.Check(row.URL); err != nil {
			return nil, invalid("the handler endpoint is not valid", fieldError("body.url", err.Error()))
		}
	}
	if err := runner.ValidateEndpoint(row, runner.SecretSource{LookupEnv: s.cfg.LookupEnv, Dirs: s.cfg.SecretDirs, Logger: s.cfg.Logger}); err != nil {
		return nil, invalid("the handler endpoint is not valid", fieldError(endpointLocation(err.Error()), err.Error()))
	}
	saved, err := s.cfg.Client.PutEndpoint(ctx, row, s.cfg.Now())
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	status := http.StatusOK
	if saved.CreatedAt.Equal(saved.UpdatedAt) {
		status = http.StatusCreated
	}
	return &handlerOutput{Status: status, Body: handlerFromRow(saved)}, nil
}

// endpointLocation guesses the field a validation message is about.
func endpointLocation(msg string) string {
	m := strings.ToLower(msg)
	switch {
	case strings.Contains(m, "secret"):
		return "body.secret_ref"
	case strings.Contains(m, "url"):
		return "body.url"
	case strings.Contains(m, "header"):
		return "body.headers"
	case strings.Contains(m, "protocol"):
		return "body.protocol"
	case strings.Contains(m, "pattern"):
		return "path.pattern"
	}
	return "body"
}

type deleteHandlerOutput struct{}

func (s *Server) deleteHandler(ctx context.Context, in *handlerKey) (*deleteHandlerOutput, error) {
	if s.cfg.Client == nil {
		return nil, errNoDatabase
	}
	deleted, err := s.cfg.Client.DeleteEndpoint(ctx, in.Namespace, in.Pattern)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	if !deleted {
		return nil, problem(http.StatusNotFound, in.describe()+" is not registered")
	}
	return &deleteHandlerOutput{}, nil
}

func handlerFromRow(r runner.HandlerEndpoint) HandlerEndpoint {
	headers := make(map[string]string, len(r.Headers))
	for k, v := range r.Headers {
		if sensitiveHeader(k) {
			v = masked
		}
		headers[k] = v
	}
	return HandlerEndpoint{
		Namespace: r.Namespace, Pattern: r.Pattern, URL: maskURL(r.URL), Protocol: r.Protocol,
		TimeoutMs: r.TimeoutMs, MaxConcurrency: r.MaxConcurrency, BatchMax: r.BatchMax, BatchWindowMs: r.BatchWindowMs,
		Breaker: BreakerSettings{
			ConsecutiveFailures: r.BreakerConsecutiveFailures, OpenTimeoutMs: r.BreakerOpenTimeoutMs,
			IntervalMs: r.BreakerIntervalMs, MaxRequests: r.BreakerMaxRequests,
		},
		Headers: headers, SecretRef: r.SecretRef, Signed: r.SecretRef != "",
		CreatedAt: r.CreatedAt, UpdatedAt: r.UpdatedAt,
	}
}

const masked = "********"

// BatchWindowDefaultMs is the batch window of an endpoint registered
// without one (the column's default).
const BatchWindowDefaultMs = 2

func sensitiveHeader(name string) bool {
	n := strings.ToLower(name)
	for _, w := range []string{"authorization", "cookie", "token", "secret", "key", "password", "signature", "credential"} {
		if strings.Contains(n, w) {
			return true
		}
	}
	return false
}

// maskURL hides the password of a URL's user information.
func maskURL(raw string) string {
	u, err := url.Parse(strings.ReplaceAll(raw, "{callable}", "CALLABLE"))
	if err != nil || u.User == nil {
		return raw
	}
	if _, has := u.User.Password(); !has {
		return raw
	}
	u.User = url.UserPassword(u.User.Username(), "xxxxx")
	return strings.ReplaceAll(u.String(), "CALLABLE", "{callable}")
}
