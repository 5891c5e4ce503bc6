package runner

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tasker-runner/tasker-runner/callout"
)

// Server runs tasker-runner inside a Go program: the [Runner] that claims
// and runs steps, the handler registry with the program's in-process Go
// handlers ([Server.HandleFunc]) and its static endpoints
// ([ServerConfig.Endpoints]), the endpoints registered in the database, and
// a [Client] for templates and tasks ([Server.Client]). It is what
// `tasker-runner serve` runs.
//
// Make one with [NewServer], register the Go handlers, then [Server.Start]
// it; [Server.Stop] shuts it down gracefully. The management API is mounted
// by the program on its own mux, from package openapi (which imports this
// one): see the package documentation.
type Server struct {
	cfg       ServerConfig
	pool      *pgxpool.Pool
	funcs     *callout.Funcs
	transport *http.Transport
	registry  *callout.Registry
	runner    *Runner
	client    *Client

	handlersMu sync.Mutex // one HandleFunc at a time

	mu        sync.Mutex // Start and Stop, one at a time
	state     serverState
	cancelRun context.CancelFunc
}

type serverState int

const (
	serverNew serverState = iota
	serverRunning
	serverFailed // Start failed: only Stop is left
	serverStopped
)

// NewServer returns a [Server] on pool, which it uses but does not close.
// It checks cfg (every error names its field) and touches no database until
// [Server.Start].
func NewServer(pool *pgxpool.Pool, cfg ServerConfig) (*Server, error) {
	if pool == nil {
		return nil, errors.New("runner: NewServer: pool is required")
	}
	if err := cfg.withDefaults(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, pool: pool, funcs: &callout.Funcs{}}
	s.transport = callout.NewTransport(callout.TransportOptions{
		MaxIdleConnsPerHost: cfg.Callout.MaxIdleConnsPerHost,
		URLPolicy:           cfg.Callout.URLPolicy,
	})
	s.registry = callout.NewRegistry(callout.RegistryConfig{
		Funcs:            s.funcs,
		Client:           callout.NewClient(s.transport),
		MaxResponseBytes: cfg.Callout.MaxResponseBytes,
		Breaker:          cfg.Callout.Breaker,
		Observer:         cfg.CallObserver,
		URLPolicy:        cfg.Callout.URLPolicy,
	})
	static := make([]callout.Endpoint, 0, len(cfg.Endpoints))
	for _, e := range cfg.Endpoints {
		static = append(static, e.calloutEndpoint())
	}
	r, err := New(pool, cfg.runnerConfig(s.registry, &Endpoints{
		Registry: s.registry, Static: static, DB: pool,
		LookupEnv: cfg.LookupEnv, SecretDirs: cfg.SecretDirs, Logger: cfg.Logger,
	}))
	if err != nil {
		s.closeCallout()
		return nil, err
	}
	s.runner = r
	s.client = NewClient(pool, ClientConfig{RetryDefaults: cfg.RetryDefaults})
	return s, nil
}

// RunnerConfig is the [Config] of the [Runner] a Server with this
// configuration runs, except that handlers resolve every callable and no
// endpoints are loaded from the database: for a program that runs a Runner
// itself with its own resolver (a benchmark with in-process functions).
func (c ServerConfig) RunnerConfig(handlers callout.Resolver) Config {
	return c.runnerConfig(handlers, nil)
}

// runnerConfig is the [Config] of the Server's runner.
func (c *ServerConfig) runnerConfig(handlers callout.Resolver, eps *Endpoints) Config {
	return Config{
		WorkerID: c.WorkerID, Namespaces: c.Namespaces, Mode: c.Mode,
		MaxConcurrentSteps: c.MaxConcurrentSteps, DisableClaimWithCompletions: c.DisableClaimWithCompletions,
		PollInterval: c.PollInterval, ReconnectInitial: c.ReconnectInitial, ReconnectMax: c.ReconnectMax,
		LeaseFor: c.LeaseFor, HeartbeatInterval: c.HeartbeatInterval,
		FlushInterval: c.FlushInterval, FlushBatch: c.FlushBatch, FlushWriters: c.FlushWriters,
		ShutdownTimeout: c.ShutdownTimeout, StepTimeout: c.StepTimeout, RetryDefaults: c.RetryDefaults,
		MaxStepsPerOutcome: c.MaxStepsPerOutcome, MaxStepsPerTask: c.MaxStepsPerTask, MaxYieldsPerStep: c.MaxYieldsPerStep,
		Retention: c.Retention, Version: c.Version,
		Handlers: handlers, Endpoints: eps,
		Logger: c.Logger, OnEvent: c.OnEvent, Observer: c.Observer,
	}
}

// HandleFunc registers fn as the in-process Go handler of callable (a
// template step's handler.callable, such as "payments.charge"). A callable
// resolves to an endpoint naming it exactly first (static or registered in
// the database), then to its Go handler, then to glob endpoints.
//
// Register every handler before [Server.Start]. Registering later is safe
// and takes effect at once, but a step of that callable claimed before it
// fails its attempt with handler_not_found (retryable: its next attempt
// finds the handler). HandleFunc panics, as [http.HandleFunc] does, when
// callable is empty, fn is nil or callable already has a handler.
func (s *Server) HandleFunc(callable string, fn callout.Func) {
	if callable == "" {
		panic("runner: HandleFunc: empty callable")
	}
	if fn == nil {
		panic("runner: HandleFunc: nil handler for " + callable)
	}
	s.handlersMu.Lock()
	defer s.handlersMu.Unlock()
	if _, dup := s.funcs.Resolve("", callable); dup {
		panic(fmt.Sprintf("runner: HandleFunc: callable %q already has a handler", callable))
	}
	s.funcs.Register(callable, fn)
}

// Start registers this process as a worker, loads the handler endpoints and
// starts claiming steps. ctx bounds the start only: the Server then runs
// until [Server.Stop], whatever becomes of ctx (so a program may pass the
// context its signals cancel and call Stop once it is done). A Server
// starts once; after a failed Start only Stop is left.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch s.state {
	case serverRunning:
		return errors.New("runner: server already started")
	case serverFailed:
		return errors.New("runner: server failed to start; make a new one")
	case serverStopped:
		return errors.New("runner: server stopped; make a new one")
	}
	// The runner's context is only cancelled after a graceful stop:
	// cancelling it first would be a hard stop that leaves leases behind.
	runCtx, cancelRun := context.WithCancel(context.WithoutCancel(ctx))
	// ctx done while starting: abandon the start (a hard stop).
	detach := context.AfterFunc(ctx, cancelRun)
	err := s.runner.Start(runCtx)
	if !detach() && err == nil {
		// The runner did start, on a cancelled context: it only needs its
		// goroutines waited for.
		_ = s.runner.Stop(context.WithoutCancel(ctx))
		s.runner.Wait()
		err = fmt.Errorf("runner: start: %w", context.Cause(ctx))
	}
	if err != nil {
		cancelRun()
		s.state = serverFailed
		return err
	}
	s.cancelRun = cancelRun
	s.state = serverRunning
	return nil
}

// Stop shuts the Server down gracefully, in this order: it stops claiming,
// lets running steps finish for up to [ServerConfig.ShutdownTimeout] (or
// until ctx is done: a done ctx gives them back at once), gives the leases
// of the rest back without consuming their attempts, writes every pending
// result, marks the worker stopped, and closes the handler registry and its
// connections. Stop without Start only closes the registry; a second Stop
// does nothing. Go handlers that ignored their abandoned context may still
// be running when Stop returns: their results are dropped.
func (s *Server) Stop(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.state == serverStopped {
		return nil
	}
	var err error
	if s.state == serverRunning {
		err = s.runner.Stop(ctx)
		s.cancelRun()
		s.runner.Wait()
	}
	s.state = serverStopped
	s.closeCallout()
	return err
}

// closeCallout stops the registry's background work and closes idle
// handler connections.
func (s *Server) closeCallout() {
	s.registry.Close()
	s.transport.CloseIdleConnections()
}
