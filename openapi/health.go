package openapi

import (
	"context"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"
)

// Check is one named readiness check, such as "database".
type Check struct {
	Name string
	// Run reports nil when the dependency is usable. It must honour ctx.
	Run func(ctx context.Context) error
}

// Health states reported by the health endpoints.
const (
	StatusHealthy   = "healthy"
	StatusUnhealthy = "unhealthy"
)

// CheckResult is the outcome of one [Check].
type CheckResult struct {
	Status     string  `json:"status" enum:"healthy,unhealthy" doc:"healthy when the check passed"`
	DurationMs float64 `json:"duration_ms" doc:"how long the check took, in milliseconds"`
	Message    string  `json:"message,omitempty" doc:"why the check failed"`
}

// HealthBody is the body of the readiness endpoints.
type HealthBody struct {
	Status        string                 `json:"status" enum:"healthy,unhealthy" doc:"healthy when every check passed"`
	Version       string                 `json:"version" doc:"version of the running binary"`
	UptimeSeconds float64                `json:"uptime_seconds" doc:"seconds since the server started"`
	Checks        map[string]CheckResult `json:"checks" doc:"each check by name"`
}

type healthOutput struct {
	Status int
	Body   HealthBody
}

// LiveBody is the body of the liveness endpoint.
type LiveBody struct {
	Status string `json:"status" enum:"healthy" doc:"always healthy while the process serves requests"`
}

type liveOutput struct {
	Body LiveBody
}

func (s *Server) registerHealth() {
	huma.Register(s.api, huma.Operation{
		OperationID: "getHealth",
		Method:      http.MethodGet,
		Path:        "/health",
		Summary:     "Overall health",
		Description: "Runs every readiness check. Answers 503 when any fails.",
		Tags:        []string{"health"},
		Security:    publicSecurity(),
		Responses:   healthResponses(true),
	}, s.ready)
	huma.Register(s.api, huma.Operation{
		OperationID: "getHealthLive",
		Method:      http.MethodGet,
		Path:        "/health/live",
		Summary:     "Liveness",
		Description: "Answers 200 while the process can serve requests; checks nothing else.",
		Tags:        []string{"health"},
		Security:    publicSecurity(),
		Responses:   healthResponses(false),
	}, func(context.Context, *struct{}) (*liveOutput, error) {
		return &liveOutput{Body: LiveBody{Status: StatusHealthy}}, nil
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "getHealthReady",
		Method:      http.MethodGet,
		Path:        "/health/ready",
		Summary:     "Readiness",
		Description: "Runs every readiness check (database, listener, event loop) with its status, duration and message. Answers 503 when any fails.",
		Tags:        []string{"health"},
		Security:    publicSecurity(),
		Responses:   healthResponses(true),
	}, s.ready)
	s.registerDetailedHealth()
}

// publicSecurity is the security requirement of the health operations:
// none (`security: []` in the document), as with the default
// worker.web.auth.public_health = true.
func publicSecurity() []map[string][]string { return []map[string][]string{} }

// healthResponses are the documented non-200 responses of a health
// operation: 503 when a readiness check fails (checks), 401 when health is
// not public (worker.web.auth.public_health = false) and no valid credential
// came, and 422 for an unknown query parameter.
func healthResponses(checks bool) map[string]*huma.Response {
	problem := func(desc string) *huma.Response {
		return &huma.Response{
			Description: desc,
			Content: map[string]*huma.MediaType{
				"application/problem+json": {Schema: &huma.Schema{Ref: "#/components/schemas/ErrorModel"}},
			},
		}
	}
	r := map[string]*huma.Response{
		"401": problem("Unauthorized: only when health is not public (worker.web.auth.public_health = false) and no valid credential came"),
		"422": problem("Unprocessable Entity: an unknown query parameter"),
	}
	if checks {
		r["503"] = &huma.Response{Description: "a check failed"}
	}
	return r
}

func (s *Server) ready(ctx context.Context, _ *struct{}) (*healthOutput, error) {
	out := &healthOutput{Status: http.StatusOK, Body: HealthBody{
		Status:        StatusHealthy,
		Version:       s.cfg.Version,
		UptimeSeconds: s.cfg.Now().Sub(s.started).Seconds(),
		Checks:        make(map[string]CheckResult, len(s.cfg.Checks)),
	}}
	for _, c := range s.cfg.Checks {
		cctx, cancel := context.WithTimeout(ctx, s.cfg.CheckTimeout)
		start := time.Now()
		err := c.Run(cctx)
		cancel()
		r := CheckResult{Status: StatusHealthy, DurationMs: float64(time.Since(start).Microseconds()) / 1000}
		if err != nil {
			r.Status, r.Message = StatusUnhealthy, err.Error()
			out.Status, out.Body.Status = http.StatusServiceUnavailable, StatusUnhealthy
		}
		out.Body.Checks[c.Name] = r
	}
	return out, nil
}
