package openapi

import (
	"context"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"
)

// WorkerStatus is one runner instance of the worker registry.
type WorkerStatus struct {
	WorkerID    string     `json:"worker_id" doc:"the runner's id in leases and audit rows"`
	Hostname    string     `json:"hostname"`
	Version     string     `json:"version"`
	Namespaces  []string   `json:"namespaces" doc:"namespaces it serves; empty means all"`
	Status      string     `json:"status" enum:"alive,stale,stopped" doc:"stopped: shut down gracefully; stale: no heartbeat for 3 intervals (probably dead; its leases will be rescued); alive otherwise"`
	StartedAt   time.Time  `json:"started_at"`
	HeartbeatAt time.Time  `json:"heartbeat_at"`
	StoppedAt   *time.Time `json:"stopped_at,omitempty"`
}

// NamespaceStatus is the work of one namespace.
type NamespaceStatus struct {
	Name  string `json:"name"`
	Ready int    `json:"ready" doc:"queue depth: steps claimable now (enqueued, or waiting_for_retry whose run_at passed)"`
	// OldestReadySeconds is 0 when nothing is ready.
	OldestReadySeconds float64 `json:"oldest_ready_seconds" doc:"age of the oldest ready step (now minus its run_at), in seconds; 0 when none is ready"`
	Scheduled          int     `json:"scheduled" doc:"steps waiting for their run_at (retries in backoff, steps given back by an open breaker)"`
	InProgress         int     `json:"in_progress" doc:"steps leased by a runner"`
	DeadLetters        int     `json:"dead_letters" doc:"steps in state error"`
}

// EndpointState is the live state of one handler endpoint in this process.
type EndpointState struct {
	Namespace           string `json:"namespace" doc:"empty: every namespace"`
	Pattern             string `json:"pattern"`
	URL                 string `json:"url,omitempty" doc:"without credentials"`
	Protocol            string `json:"protocol"`
	BreakerState        string `json:"breaker_state" enum:"closed,half-open,open"`
	ConsecutiveFailures uint32 `json:"consecutive_failures"`
	InFlight            int64  `json:"in_flight"`
	Calls               int64  `json:"calls"`
	Faults              int64  `json:"faults" doc:"calls failed by the endpoint: unreachable, timeout, 5xx"`
	Rejected            int64  `json:"rejected" doc:"steps not called because the breaker was open"`
	ConcurrencyLimit    int    `json:"concurrency_limit" doc:"calls allowed in flight now, 0 for no limit: the configured max_concurrency, lowered while the endpoint answers 429"`
	Throttled           int64  `json:"throttled" doc:"429 (RESOURCE_EXHAUSTED) answers"`
	Error               string `json:"error,omitempty" doc:"why this process cannot use the endpoint (its secret_ref does not resolve here, say): its steps wait in the queue, not called, not failed, using no attempt, until it is fixed; absent when it is usable"`
}

// RunnerCounters are this process's runner counters since it started.
type RunnerCounters struct {
	Claimed            int64 `json:"claimed"`
	Rescued            int64 `json:"rescued" doc:"claims of steps whose lease had expired"`
	Completed          int64 `json:"completed"`
	Retried            int64 `json:"retried"`
	Failed             int64 `json:"failed" doc:"steps dead-lettered"`
	Released           int64 `json:"released" doc:"leases given back unrun"`
	Stale              int64 `json:"stale" doc:"outcomes refused because the lease was lost"`
	ListenerReconnects int64 `json:"listener_reconnects"`
	InFlight           int   `json:"in_flight"`
	Active             int   `json:"active" doc:"handlers running now"`
}

// StatusBody is the answer of getStatus.
type StatusBody struct {
	Time               time.Time         `json:"time" doc:"when the status was taken"`
	Version            string            `json:"version" doc:"version of the binary answering"`
	Workers            []WorkerStatus    `json:"workers" nullable:"false"`
	Namespaces         []NamespaceStatus `json:"namespaces" nullable:"false"`
	Tasks              map[string]int    `json:"tasks" doc:"tasks by state: every unfinished one (pending, steps_in_process, blocked_by_failures), and finished ones (complete, cancelled, resolved_manually) created within tasks_window_seconds"`
	TasksWindowSeconds float64           `json:"tasks_window_seconds" doc:"how far back finished tasks are counted"`
	Endpoints          []EndpointState   `json:"endpoints,omitempty" doc:"handler endpoints of this process with their circuit breakers; absent when the server does not run a runner"`
	Runner             *RunnerCounters   `json:"runner,omitempty" doc:"this process's runner counters; absent when the server does not run a runner"`
}

type statusOutput struct {
	Body StatusBody
}

func (s *Server) registerStatus() {
	huma.Register(s.api, huma.Operation{
		OperationID: "getStatus",
		Method:      http.MethodGet,
		Path:        "/v1/status",
		Summary:     "System status",
		Description: "Workers (alive, stale or stopped), each namespace's queue depth and the age of its oldest ready step, " +
			"task counts by state, and, when this process runs a runner, its handler endpoints' circuit breakers and counters.",
		Tags:   []string{"status"},
		Errors: []int{http.StatusServiceUnavailable},
	}, s.getStatus)
}

func (s *Server) getStatus(ctx context.Context, _ *struct{}) (*statusOutput, error) {
	c := s.cfg.Client
	if c == nil {
		return nil, errNoDatabase
	}
	now := s.cfg.Now()
	workers, err := c.ListWorkers(ctx)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	queues, err := c.ListNamespaceQueues(ctx, now)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	counts, err := c.CountTasksByState(ctx, now.Add(-s.cfg.FinishedTasksWindow))
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	tasks := make(map[string]int, len(counts))
	for state, n := range counts {
		tasks[string(state)] = n
	}
	out := &statusOutput{Body: StatusBody{
		Time: now, Version: s.cfg.Version, Tasks: tasks,
		TasksWindowSeconds: s.cfg.FinishedTasksWindow.Seconds(),
		Workers:            make([]WorkerStatus, 0, len(workers)),
		Namespaces:         make([]NamespaceStatus, 0, len(queues)),
	}}
	for _, w := range workers {
		ns := w.Namespaces
		if ns == nil {
			ns = []string{}
		}
		out.Body.Workers = append(out.Body.Workers, WorkerStatus{
			WorkerID: w.WorkerID, Hostname: w.Hostname, Version: w.Version, Namespaces: ns,
			Status: w.Status(now, s.cfg.HeartbeatInterval), StartedAt: w.StartedAt, HeartbeatAt: w.HeartbeatAt, StoppedAt: w.StoppedAt,
		})
	}
	for _, q := range queues {
		n := NamespaceStatus{Name: q.Name, Ready: q.Ready, Scheduled: q.Scheduled, InProgress: q.InProgress, DeadLetters: q.DeadLetters}
		if q.OldestReadyAt != nil {
			n.OldestReadySeconds = max(now.Sub(*q.OldestReadyAt).Seconds(), 0)
		}
		out.Body.Namespaces = append(out.Body.Namespaces, n)
	}
	if s.cfg.Endpoints != nil {
		eps := s.cfg.Endpoints()
		out.Body.Endpoints = make([]EndpointState, 0, len(eps))
		for _, e := range eps {
			out.Body.Endpoints = append(out.Body.Endpoints, EndpointState{
				Namespace: e.Namespace, Pattern: e.Pattern, URL: e.URL, Protocol: e.Protocol, BreakerState: e.BreakerState,
				ConsecutiveFailures: e.ConsecutiveFailures, InFlight: e.InFlight, Calls: e.Calls, Faults: e.Faults, Rejected: e.Rejected,
				ConcurrencyLimit: e.ConcurrencyLimit, Throttled: e.Throttled, Error: e.Error,
			})
		}
	}
	if s.cfg.RunnerStats != nil {
		st := s.cfg.RunnerStats()
		out.Body.Runner = &RunnerCounters{
			Claimed: st.Claimed, Rescued: st.Rescued, Completed: st.Completed, Retried: st.Retried, Failed: st.Failed,
			Released: st.Released, Stale: st.Stale, ListenerReconnects: st.ListenerReconnects, InFlight: st.InFlight, Active: st.Active,
		}
	}
	return out, nil
}
