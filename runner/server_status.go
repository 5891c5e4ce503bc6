package runner

import (
	"context"
	"errors"

	"github.com/tasker-runner/tasker-runner/callout"
)

// What a [Server] tells the management API (openapi.Config), its health
// checks and its metrics. Each is safe to call at any time, before Start
// and after Stop included.

// Client returns the [Client] that registers templates and submits tasks
// on the Server's database, with [ServerConfig.RetryDefaults]. It works
// whether or not the Server is running (openapi.Config.Client).
func (s *Server) Client() *Client { return s.client }

// WorkerID returns the Server's worker id in leases and history.
func (s *Server) WorkerID() string { return s.runner.WorkerID() }

// Stats returns the runner's counters since it started
// (openapi.Config.RunnerStats).
func (s *Server) Stats() Stats { return s.runner.Stats() }

// Endpoints returns the live state of every handler endpoint, static and
// registered in the database, ordered by namespace and pattern: breaker
// state, calls, faults, why one is unusable (openapi.Config.Endpoints, for
// /v1/handlers and /v1/status). In-process Go handlers registered by
// [Server.HandleFunc] are not endpoints and are not listed.
func (s *Server) Endpoints() []callout.EndpointStatus { return s.registry.Endpoints() }

// ListenerConnected reports whether the LISTEN connection is up.
func (s *Server) ListenerConnected() bool { return s.runner.ListenerConnected() }

// CheckDatabase reports whether the database answers: a readiness check
// (openapi.Check).
func (s *Server) CheckDatabase(ctx context.Context) error { return s.pool.Ping(ctx) }

// CheckListener reports whether the LISTEN connection is up, always nil in
// [ModePollingOnly]: a readiness check (openapi.Check).
func (s *Server) CheckListener(context.Context) error {
	if s.cfg.Mode == ModePollingOnly || s.runner.ListenerConnected() {
		return nil
	}
	return errors.New("LISTEN connection is down (reconnecting; the poller keeps work moving in hybrid mode)")
}

// CheckEventLoop reports whether the runner is claiming: it fails before
// Start, after Stop, and when every claim for a lease's length failed. A
// readiness check (openapi.Check).
func (s *Server) CheckEventLoop(ctx context.Context) error { return s.runner.CheckEventLoop(ctx) }

// PoolStats returns the state of the Server's database pool. It converts
// to openapi.PoolStats, which has the same fields.
func (s *Server) PoolStats() PoolStats {
	st := s.pool.Stat()
	return PoolStats{MaxConns: st.MaxConns(), TotalConns: st.TotalConns(), AcquiredConns: st.AcquiredConns(), IdleConns: st.IdleConns()}
}
