// Package runner runs Tasker workflows on PostgreSQL: it claims the ready
// steps of tasks, calls their handlers (HTTP+JSON, Connect, gRPC or Go
// functions of the same process) and writes their results back, each write
// advancing its task's DAG.
//
// # The front door: Server
//
// A Go program runs the whole thing in its own process with a [Server]:
//
//	pool, err := runner.OpenPool(ctx, runner.PoolConfig{URL: os.Getenv("DATABASE_URL")})
//	...
//	defer pool.Close()
//	if _, err := runner.Migrate(ctx, pool); err != nil { ... }
//
//	srv, err := runner.NewServer(pool, runner.ServerConfig{
//		Endpoints: []runner.StaticEndpoint{{Pattern: "mail.*", URL: "http://mail.internal/steps/{callable}"}},
//	})
//	...
//	srv.HandleFunc("payments.charge", charge) // in-process Go handlers, by callable
//	srv.HandleFunc("inventory.reserve", reserve)
//	if err := srv.Start(ctx); err != nil { ... }
//	defer srv.Stop(context.Background()) // stop claiming, drain, give back the rest
//
//	_, err = srv.Client().RegisterTemplate(ctx, templateYAML)
//	task, err := srv.Client().Submit(ctx, runner.SubmitRequest{Namespace: "shop", Name: "order", Context: orderJSON})
//
// [ServerConfig] holds the runner's settings, how handlers are called
// ([CalloutConfig]: connection pool, URL policy, response size, circuit
// breaker) and the static handler endpoints ([StaticEndpoint]); zero values
// take documented defaults, and [NewServer] names the field of every
// error. A step's callable resolves to an endpoint naming it exactly
// (static, or registered in the database through the management API, which
// replaces a static one of the same pattern), then to the Go handler registered under it with
// [Server.HandleFunc], then to the most specific glob endpoint.
//
// # The management API on your mux
//
// Package openapi serves the REST management API (templates, tasks, steps,
// handler endpoints, status); it imports this package, so the program
// mounts it on its own mux with what the Server reports:
//
//	api := openapi.New(openapi.Config{
//		Client:      srv.Client(),
//		Endpoints:   srv.Endpoints,
//		RunnerStats: srv.Stats,
//	})
//	mux.Handle("/", api.Handler())
//
// Optionally, the readiness checks ([Server.CheckDatabase],
// [Server.CheckListener], [Server.CheckEventLoop], each an openapi.Check's
// Run), the pool's state (openapi.PoolStats(srv.PoolStats())) and the
// same URL policy as [CalloutConfig.URLPolicy]. The API has no
// authentication of its own: wrap the handler in the program's. The
// repository's examples/embedded is a complete service built this way;
// `tasker-runner serve` is built on a Server too.
//
// # The parts
//
// A [Client] registers templates and submits tasks, and carries the admin
// operations (as River's client carries JobCancel and JobList): read tasks,
// steps, dead letters, templates, handler endpoints, workers and queues
// ([Client.GetTask], [Client.ListTasks], ...), and change them by hand
// ([Client.CancelTask], [Client.RetryStep], [Client.RedriveSteps],
// [Client.ResolveStep], [Client.PutEndpoint]). Its types ([Task], [Step],
// [HandlerEndpoint], ...) are the runner's own, with states typed as
// [StepState] and [TaskState]. It needs no running runner, so a program
// that only submits or administers uses [NewClient] alone. A [Runner]
// is the engine a Server runs: it wakes on LISTEN/NOTIFY and a fallback
// poller, claims ready steps under a lease in one statement, runs them with
// bounded concurrency and writes results in batches that also claim the
// next steps. [Endpoints] keeps a handler registry in step with the
// endpoints registered in the database. [OpenPool], [Migrate] and
// [Migrations] open and migrate the database.
//
// Inside, a Runner is a set of services, each a type with its own config,
// narrow dependencies and start/stop: the claimer (the claim loop), the
// listener and poller (which wake it), the dispatcher (the permits and the
// worker goroutines), the completer (batched writes that claim the next
// steps), the maintainer (lease extension, heartbeat, rescue sweeps), the
// retainer and the endpoint watcher. Runner.services declares the order
// they stop in.
//
// Every state change of a step or task is checked by the database itself
// against the legal moves of Tasker's state machine (row triggers), which
// also record every move other than the happy path's in the history tables:
// see README.md, "Architecture".
package runner
