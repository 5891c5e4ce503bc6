package openapi

import (
	"context"
	"net/http"

	"github.com/danielgtaylor/huma/v2"
)

// PoolStats describes the database connection pool for /health/detailed.
type PoolStats struct {
	MaxConns      int32 `json:"max_conns" doc:"the pool's size"`
	TotalConns    int32 `json:"total_conns" doc:"connections open now"`
	AcquiredConns int32 `json:"acquired_conns" doc:"connections in use"`
	IdleConns     int32 `json:"idle_conns" doc:"connections open and idle"`
}

// SemaphoreUse describes the runner's concurrency for /health/detailed.
type SemaphoreUse struct {
	Capacity int `json:"capacity" doc:"max_concurrent_steps"`
	Active   int `json:"active" doc:"handlers running now"`
	InFlight int `json:"in_flight" doc:"steps claimed and not yet written (permits in use)"`
}

// BreakerHealth is one handler endpoint's breaker for /health/detailed.
type BreakerHealth struct {
	Namespace           string `json:"namespace" doc:"empty: every namespace"`
	Pattern             string `json:"pattern"`
	Protocol            string `json:"protocol"`
	State               string `json:"state" doc:"closed, half-open or open"`
	ConsecutiveFailures uint32 `json:"consecutive_failures"`
	InFlight            int64  `json:"in_flight"`
}

// DetailedHealthBody is /health/detailed: readiness plus the breakers, the
// pool and the semaphore.
type DetailedHealthBody struct {
	HealthBody
	Breakers  []BreakerHealth `json:"breakers" doc:"every handler endpoint's circuit breaker"`
	Pool      *PoolStats      `json:"pool,omitempty" doc:"the database connection pool"`
	Semaphore *SemaphoreUse   `json:"semaphore,omitempty" doc:"the runner's step concurrency"`
}

type detailedHealthOutput struct {
	Status int
	Body   DetailedHealthBody
}

func (s *Server) registerDetailedHealth() {
	huma.Register(s.api, huma.Operation{
		OperationID: "getHealthDetailed",
		Method:      http.MethodGet,
		Path:        "/health/detailed",
		Summary:     "Detailed health",
		Description: "The readiness checks plus every endpoint's circuit breaker, the database pool and the runner's semaphore use. Answers 503 when a check fails.",
		Tags:        []string{"health"},
		Security:    publicSecurity(),
		Responses:   healthResponses(true),
	}, func(ctx context.Context, in *struct{}) (*detailedHealthOutput, error) {
		ready, err := s.ready(ctx, in)
		if err != nil {
			return nil, err
		}
		out := &detailedHealthOutput{Status: ready.Status, Body: DetailedHealthBody{HealthBody: ready.Body, Breakers: []BreakerHealth{}}}
		if s.cfg.Endpoints != nil {
			for _, e := range s.cfg.Endpoints() {
				out.Body.Breakers = append(out.Body.Breakers, BreakerHealth{
					Namespace: e.Namespace, Pattern: e.Pattern, Protocol: e.Protocol, State: e.BreakerState,
					ConsecutiveFailures: e.ConsecutiveFailures, InFlight: e.InFlight,
				})
			}
		}
		if s.cfg.PoolStats != nil {
			p := s.cfg.PoolStats()
			out.Body.Pool = &p
		}
		if s.cfg.RunnerStats != nil {
			st := s.cfg.RunnerStats()
			out.Body.Semaphore = &SemaphoreUse{Capacity: st.Capacity, Active: st.Active, InFlight: st.InFlight}
		}
		return out, nil
	})
}
