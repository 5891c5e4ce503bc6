package dev

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tasker-runner/tasker-runner/callout"
	"github.com/tasker-runner/tasker-runner/cmd/tasker-runner/internal/apiclient"
	"github.com/tasker-runner/tasker-runner/cmd/tasker-runner/internal/app"
	"github.com/tasker-runner/tasker-runner/cmd/tasker-runner/internal/cli"
	"github.com/tasker-runner/tasker-runner/config"
	"github.com/tasker-runner/tasker-runner/runner"

	"github.com/tasker-runner/tasker-runner/runner/store/pgcluster"
	"github.com/tasker-runner/tasker-runner/runner/workflow"
)

// Command is `tasker-runner dev`, the `make run` demo.
var Command = cli.Command{
	Name: "dev", Run: runDev,
	Summary: "the make run demo: a throwaway PostgreSQL (unless DATABASE_URL is set), the runner, example handler services, an order",
	Usage:   "[--config PATH] [--chaos LANG] [--chaos-orders N] [--restart-after D] [--examples DIR]",
}

func runDev(ctx context.Context, env *cli.Env, args []string) error {
	fs := cli.NewFlagSet("dev")
	configPath := fs.String("config", "", "path of the TOML configuration file (default $TASKER_CONFIG_PATH; none: built-in defaults)")
	examplesFlag := fs.String("examples", "", "the examples directory (default: examples/ in the working directory or above it)")
	chaos := fs.String("chaos", "", "after the first order, kill this language's handler service (python, ruby, go or typescript) while more orders run: shows retries and the circuit breaker")
	chaosOrders := fs.Int("chaos-orders", 3, "how many orders --chaos submits while the service is down")
	restartAfter := fs.Duration("restart-after", 5*time.Second, "how long a handler service that died stays down before dev restarts it")
	if err := cli.ParseFlags(env, fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", cli.ErrUsage, fs.Arg(0))
	}
	if _, ok := devLanguageByKey(*chaos); *chaos != "" && !ok {
		return fmt.Errorf("%w: --chaos %q: want python, ruby, go or typescript", cli.ErrUsage, *chaos)
	}
	if *chaosOrders < 1 || *restartAfter <= 0 {
		return fmt.Errorf("%w: --chaos-orders and --restart-after must be positive", cli.ErrUsage)
	}
	cfg, err := app.LoadConfig(env, *configPath)
	if err != nil {
		return err
	}

	demo := &devDemo{env: env, cfg: cfg, chaos: *chaos, chaosOrders: *chaosOrders, restartAfter: *restartAfter}
	if err := demo.prepare(ctx, *examplesFlag); err != nil {
		return err
	}
	defer demo.close()
	// The example services listen on 127.0.0.1 and their secrets are in
	// their temporary directory.
	cfg.Worker.Callout.URLPolicy.AllowLoopback = true
	if demo.services != nil {
		cfg.Worker.Callout.SecretDirs = append(slices.Clip(cfg.Worker.Callout.SecretDirs), demo.services.tmp)
	}
	demo.cfg = cfg

	var cluster *pgcluster.Cluster
	if cfg.Database.URL == "" {
		env.Logger.Info("no DATABASE_URL given: starting a throwaway PostgreSQL cluster")
		cluster, err = pgcluster.Start(ctx, pgcluster.Config{})
		if err != nil {
			return app.StoppedWhileStarting(ctx, env, err)
		}
		defer func() {
			if err := cluster.Stop(); err != nil {
				env.Logger.Error("removing the throwaway cluster", "dir", cluster.Dir(), "err", err)
				return
			}
			env.Logger.Info("throwaway PostgreSQL cluster stopped and removed", "dir", cluster.Dir())
		}()
		cfg.Database.URL = cluster.URL("postgres")
		demo.cfg = cfg
	}
	demo.ownDatabase = cluster != nil

	err = app.Serve(ctx, env, cfg, app.ServeOptions{Migrate: true, ConfigPath: config.ResolvePath(*configPath, env.Lookup), OnEvent: demo.onEvent, Started: demo.run, Ready: func(apiAddr, grpcAddr string) {
		demo.apiAddr, demo.grpcAddr = apiAddr, grpcAddr
		fmt.Fprintf(env.Stdout, "\ntasker-runner %s is up\n", cli.BuildVersion())
		fmt.Fprintf(env.Stdout, "  database  %s\n", runner.RedactURL(cfg.Database.URL))
		if cluster != nil {
			fmt.Fprintf(env.Stdout, "            (throwaway cluster in %s, removed on exit; psql %q)\n", cluster.Dir(), cluster.URL("postgres"))
		}
	}})
	// The runner has stopped: nothing calls the services or reads their
	// endpoints any more.
	demo.close()
	return errors.Join(err, demo.forgetEndpoints())
}

// devDemo is what `dev` adds to `serve`: the example handler services, their
// endpoints, the example template and orders, and the progress output.
type devDemo struct {
	env          *cli.Env
	cfg          config.Config
	chaos        string
	chaosOrders  int
	restartAfter time.Duration

	examples    string // "" when not found: serve without the example
	template    []byte
	tpl         *workflow.Template
	workflows   []devWorkflow // the approval and batch ETL templates, run after the order
	services    *devServices
	progress    *devProgress
	apiAddr     string        // set by serve's ready callback, before run
	grpcAddr    string        // likewise; "" when the gRPC API is disabled
	ownDatabase bool          // a throwaway cluster: no need to clean up rows
	pool        *pgxpool.Pool // for the endpoint rows; opened by run
	closeOnce   sync.Once

	mu        sync.Mutex
	patterns  []string   // endpoint rows registered (by run, and by keepUp's moves)
	fallbacks []devRoute // missing languages' steps, run by the Go service
}

// devWorkflow is one of the dynamic example workflows: its template and
// how the demo names and builds its tasks.
type devWorkflow struct {
	file string // in the examples directory
	what string // "approval request", for people
	task func(n int) (string, json.RawMessage)
	doc  []byte
	tpl  *workflow.Template
}

// devWorkflows are the dynamic examples, in the order the demo runs them.
func devWorkflows() []devWorkflow {
	return []devWorkflow{
		{file: filepath.Join("templates", "approval.yaml"), what: "approval request", task: devApproval},
		{file: filepath.Join("templates", "batch_etl.yaml"), what: "batch ETL", task: devETL},
	}
}

// prepare finds the examples, reads the templates and starts the handler
// services in the background (they build while PostgreSQL starts).
func (d *devDemo) prepare(ctx context.Context, flagDir string) error {
	examples, err := findExamples(flagDir)
	if err != nil {
		if flagDir != "" || d.chaos != "" {
			return err
		}
		d.env.Logger.Warn("serving without the example workflow", "err", err)
		fmt.Fprintf(d.env.Stdout, "\n!! %v: serving without the example workflow\n", err)
		return nil
	}
	path := filepath.Join(examples, devTemplateFile)
	doc, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	tpl, err := workflow.Parse(doc)
	if err != nil {
		return fmt.Errorf("the example template %s: %w", path, err)
	}
	d.examples, d.template, d.tpl = examples, doc, tpl
	for _, w := range devWorkflows() {
		path := filepath.Join(examples, w.file)
		if w.doc, err = os.ReadFile(path); err != nil {
			return err
		}
		if w.tpl, err = workflow.Parse(w.doc); err != nil {
			return fmt.Errorf("the example template %s: %w", path, err)
		}
		if w.tpl.NamespaceName != tpl.NamespaceName {
			return fmt.Errorf("the example template %s: namespace %q, want %q as in %s", path, w.tpl.NamespaceName, tpl.NamespaceName, devTemplateFile)
		}
		d.workflows = append(d.workflows, w)
	}
	d.progress = newDevProgress(d.env.Stdout, tpl.NamespaceName)
	d.services, err = startDevServices(ctx, examples)
	return err
}

func (d *devDemo) onEvent(e runner.Event) {
	if d.progress != nil {
		d.progress.onEvent(e)
	}
}

// close stops the handler services (and their supervisors) and removes
// their files; it may be called again.
func (d *devDemo) close() {
	if d.services == nil {
		return
	}
	d.closeOnce.Do(func() {
		if err := d.services.close(); err != nil {
			d.env.Logger.Error("stopping the handler services", "err", err)
			return
		}
		d.env.Logger.Info("handler services stopped, their files removed", "dir", d.services.tmp)
	})
}

// forgetEndpoints deletes the endpoint rows run registered from a database
// that outlives dev (DATABASE_URL): they name ports and secret files that
// are gone, and a row a runner cannot load stops it from loading the rest.
func (d *devDemo) forgetEndpoints() error {
	if d.pool == nil {
		return nil
	}
	defer d.pool.Close()
	if d.ownDatabase {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var errs []error
	d.mu.Lock()
	patterns := slices.Clone(d.patterns)
	d.mu.Unlock()
	for _, pattern := range patterns {
		if err := app.DeleteEndpoint(ctx, d.pool, d.tpl.NamespaceName, pattern); err != nil {
			errs = append(errs, fmt.Errorf("removing the example endpoint %s: %w", pattern, err))
		}
	}
	return errors.Join(errs...)
}

// Breaker settings of the example endpoints: open after 5 straight failures
// (the config default), try again after 2 s (the default 30 s is long to
// watch in a demo).
const (
	devBreakerFailures = 5
	devBreakerOpenMs   = 2000
)

// run is serve's started callback: it registers the services' endpoints and
// the template, runs the first order and, with --chaos, the chaos round,
// then keeps watching until ctx ends.
func (d *devDemo) run(ctx context.Context, e *app.Engine) error {
	if d.services == nil {
		d.printWhere()
		return nil
	}
	p := d.progress
	select {
	case <-d.services.ready:
	default:
		p.printf("\nwaiting for the example handler services to build and start...\n")
	}
	if err := d.services.wait(ctx); err != nil {
		return nil // stopping
	}
	pool, err := app.OpenPool(ctx, d.cfg)
	if err != nil {
		return app.StoppedWhileStarting(ctx, d.env, fmt.Errorf("connecting to register the example endpoints: %w", err))
	}
	d.pool = pool

	if err := d.register(ctx, e); err != nil {
		return app.StoppedWhileStarting(ctx, d.env, err)
	}
	watchCtx, stopWatching := context.WithCancel(ctx)
	var watching sync.WaitGroup
	watching.Add(1)
	go func() {
		defer watching.Done()
		watchBreakers(watchCtx, e.Server, d.tpl.NamespaceName, p)
	}()
	defer func() {
		stopWatching()
		watching.Wait()
	}()

	info, infos, err := d.registerTemplates(ctx, e)
	if err != nil {
		return app.StoppedWhileStarting(ctx, d.env, err)
	}
	if err := d.runExamples(ctx, e, info, infos); err != nil || ctx.Err() != nil {
		return err
	}
	d.printWhere()
	if d.chaos != "" {
		if err := d.runChaos(ctx, e, info); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			p.printf("!! chaos: %v\n", err)
		}
	}
	p.printf("Press Ctrl-C to stop.\n")
	<-ctx.Done()
	return nil
}

// registerTemplates registers the order template and the dynamic
// workflows' templates.
func (d *devDemo) registerTemplates(ctx context.Context, e *app.Engine) (runner.TemplateInfo, []runner.TemplateInfo, error) {
	p := d.progress
	info, err := e.Client.RegisterTemplate(ctx, d.template)
	if err != nil {
		return info, nil, fmt.Errorf("registering the example template %s: %w", filepath.Join(d.examples, devTemplateFile), err)
	}
	p.printf("registered the template %s/%s@%s (%s)\n", info.Namespace, info.Name, info.Version, filepath.Join(d.examples, devTemplateFile))
	infos := make([]runner.TemplateInfo, len(d.workflows))
	for i, w := range d.workflows {
		if infos[i], err = e.Client.RegisterTemplate(ctx, w.doc); err != nil {
			return info, nil, fmt.Errorf("registering the example template %s: %w", filepath.Join(d.examples, w.file), err)
		}
		p.printf("registered the template %s/%s@%s (%s)\n", infos[i].Namespace, infos[i].Name, infos[i].Version, filepath.Join(d.examples, w.file))
	}
	return info, infos, nil
}

// runExamples submits the first order, then one task of each dynamic
// workflow, each after the one before has finished. It returns nil when
// ctx ends (dev is stopping).
func (d *devDemo) runExamples(ctx context.Context, e *app.Engine, info runner.TemplateInfo, infos []runner.TemplateInfo) error {
	p := d.progress
	p.printf("\n")
	ids, err := submitOrders(ctx, e.Client, info, p, 1, 1)
	if err != nil {
		return app.StoppedWhileStarting(ctx, d.env, err)
	}
	if _, err := p.wait(ctx, ids, 60*time.Second); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		p.printf("!! %v\n", err)
	}
	for i, w := range d.workflows {
		id, taskCtx := w.task(1)
		p.printf("\nsubmitting %s %s to %s/%s@%s: %s\n", w.what, id, infos[i].Namespace, infos[i].Name, infos[i].Version, taskCtx)
		task, err := submitTask(ctx, e.Client, infos[i], p, taskCtx)
		if err != nil {
			return app.StoppedWhileStarting(ctx, d.env, fmt.Errorf("submitting the example %s %s: %w", w.what, id, err))
		}
		if _, err := p.wait(ctx, []uuid.UUID{task}, 60*time.Second); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			p.printf("!! %v\n", err)
		}
	}
	return nil
}

// register puts an endpoint for each running service (signed with its
// secret), routing a missing language's steps to the Go example service,
// then waits until the runner has loaded the endpoints.
func (d *devDemo) register(ctx context.Context, e *app.Engine) error {
	p := d.progress
	p.printf("\nhandler services from %s (their files are in %s, removed on exit):\n", filepath.Join(d.examples, "handlers"), d.services.tmp)
	_, goUp := d.services.get("go")
	var loud []string
	for _, l := range devLanguages {
		if _, ok := d.services.get(l.key); !ok {
			loud = append(loud, d.fallBack(l, goUp))
		}
	}
	want := map[string]string{} // pattern -> the service's base URL
	for _, l := range devLanguages {
		s, ok := d.services.get(l.key)
		if !ok {
			continue
		}
		if err := d.putEndpoint(ctx, s); err != nil {
			return err
		}
		for _, r := range l.routes() {
			p.setWho(r.callable, l.label)
		}
		for _, r := range d.routesOf(s) {
			_, _, want[r.callable] = s.current()
		}
		p.printf("  %-11s pid %-7d %s  runs %s\n", l.label, s.pid(), s.url, l.steps())
	}
	for _, msg := range loud {
		d.env.Logger.Warn(strings.ReplaceAll(msg, "\n", " "))
		p.printf("\n%s\n## %s\n%s\n", strings.Repeat("#", 100), strings.ReplaceAll(msg, "\n", "\n## "), strings.Repeat("#", 100))
	}
	d.superviseServices(ctx)
	return d.waitLoaded(ctx, e, want)
}

// fallBack hands the steps of a language whose service is not running to
// the Go example service (when that runs) and returns the loud message
// saying so.
func (d *devDemo) fallBack(l devLanguage, goUp bool) string {
	p := d.progress
	var callables []string
	for _, r := range l.routes() {
		callables = append(callables, r.callable)
	}
	if !goUp {
		p.printf("  %-11s NOT RUNNING: %s have no handler (the Go service is not running either)\n", l.label, l.steps())
		return fmt.Sprintf("The %s handler service is not running: %v.\nIts steps %s (%s) have NO HANDLER: the Go handler service, their fallback, is not running either.",
			l.label, d.services.failure(l.key), l.steps(), strings.Join(callables, ", "))
	}
	d.mu.Lock()
	d.fallbacks = append(d.fallbacks, l.routes()...)
	d.mu.Unlock()
	for _, r := range l.routes() {
		p.setWho(r.callable, "Go*")
	}
	p.printf("  %-11s NOT RUNNING: %s run by the Go service (Go* below)\n", l.label, l.steps())
	return fmt.Sprintf("The %s handler service is not running: %v.\nIts steps %s (%s) FALL BACK to the Go handler service (Go* below).",
		l.label, d.services.failure(l.key), l.steps(), strings.Join(callables, ", "))
}

// routesOf returns the steps s runs: its language's, and for the Go
// service also those of the missing languages it stands in for.
func (d *devDemo) routesOf(s *devService) []devRoute {
	routes := s.lang.routes()
	if s.lang.key == "go" {
		d.mu.Lock()
		routes = append(routes, d.fallbacks...)
		d.mu.Unlock()
	}
	return routes
}

// superviseServices restarts every running service that dies, moving its
// endpoints when it comes back on another port.
func (d *devDemo) superviseServices(ctx context.Context) {
	p := d.progress
	for _, l := range devLanguages {
		if s, ok := d.services.get(l.key); ok {
			d.services.keepUp(s, d.restartAfter, p.printf, func(s *devService) {
				if err := d.putEndpoint(ctx, s); err != nil {
					p.printf("!! moving the %s endpoint to %s: %v\n", s.lang.label, s.url, err)
				}
			})
		}
	}
}

// waitLoaded waits until the runner has loaded the endpoints of want
// (pattern -> base URL): it loads endpoint rows when the database announces
// a change, and the first order must not start before.
func (d *devDemo) waitLoaded(ctx context.Context, e *app.Engine, want map[string]string) error {
	ns := d.tpl.NamespaceName
	deadline := time.Now().Add(15 * time.Second)
	for {
		loaded := 0
		for _, st := range e.Server.Endpoints() {
			// The registry shows the URL with {callable} escaped.
			if base := want[st.Pattern]; st.Namespace == ns && base != "" && strings.HasPrefix(st.URL, base+"/") {
				loaded++
			}
		}
		if loaded == len(want) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the runner did not load the example endpoints within 15s (%d of %d loaded)", loaded, len(want))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// putEndpoint registers (or moves) s's endpoints, one per callable it
// runs, as `tasker-runner handlers put` would.
func (d *devDemo) putEndpoint(ctx context.Context, s *devService) error {
	secretPath, err := d.services.secretFile(s)
	if err != nil {
		return fmt.Errorf("writing the %s service's secret: %w", s.lang.label, err)
	}
	_, _, base := s.current()
	for _, r := range d.routesOf(s) {
		row := runner.HandlerEndpoint{
			Namespace: d.tpl.NamespaceName, Pattern: r.callable, URL: base + "/{callable}", Protocol: callout.ProtocolHTTP,
			TimeoutMs: 10_000, BatchMax: 1, SecretRef: "file:" + secretPath,
			BreakerConsecutiveFailures: devBreakerFailures, BreakerOpenTimeoutMs: devBreakerOpenMs,
			BreakerIntervalMs: 60_000, BreakerMaxRequests: 1,
		}
		if err := runner.ValidateEndpoint(row, runner.SecretSource{Dirs: d.cfg.Worker.Callout.SecretDirs, Logger: d.env.Logger}); err != nil {
			return fmt.Errorf("the %s service's endpoint: %w", s.lang.label, err)
		}
		if err := app.PutEndpoint(ctx, d.pool, row); err != nil {
			return fmt.Errorf("registering the %s service's endpoint: %w", s.lang.label, err)
		}
		d.mu.Lock()
		if !slices.Contains(d.patterns, row.Pattern) {
			d.patterns = append(d.patterns, row.Pattern)
		}
		d.mu.Unlock()
	}
	return nil
}

// runChaos kills one handler service as a crash would, submits orders while
// it is down and waits for them: the runner retries the failed calls, the
// endpoint's breaker opens and holds the steps back without using their
// attempts, and once the service is back (keepUp restarts it) they finish.
func (d *devDemo) runChaos(ctx context.Context, e *app.Engine, info runner.TemplateInfo) error {
	p := d.progress
	l, _ := devLanguageByKey(d.chaos)
	s, ok := d.services.get(l.key)
	if !ok {
		return fmt.Errorf("the %s handler service is not running (the Go service runs its steps), so there is nothing to kill", l.label)
	}
	p.printf("\nchaos: killing the %s handler service (pid %d, %s) with SIGKILL; dev restarts it in %s. Meanwhile, %d more orders:\n",
		l.label, s.pid(), s.url, d.restartAfter, d.chaosOrders)
	if err := s.kill(); err != nil {
		return fmt.Errorf("killing the %s handler service: %w", l.label, err)
	}
	ids, err := submitOrders(ctx, e.Client, info, p, 2, d.chaosOrders)
	if err != nil {
		return err
	}
	states, err := p.wait(ctx, ids, d.restartAfter+90*time.Second)
	if err != nil {
		return err
	}
	complete := 0
	for _, st := range states {
		if st == "complete" {
			complete++
		}
	}
	for _, st := range e.Server.Endpoints() {
		if st.Namespace == info.Namespace && st.Pattern == l.callable {
			p.printf("chaos: %d of %d orders COMPLETE; the %s endpoint (%s) failed %d calls and held back %d steps while its breaker was open; it is %s now.\n",
				complete, len(ids), l.label, l.callable, st.Faults, st.Rejected, st.BreakerState)
		}
	}
	if d.apiAddr != "" {
		p.printf("  curl -s %s/metrics | grep -E 'tasker_(breaker_state|callout_rejected_total|steps_retried_total|steps_released_total)'\n", d.apiURL())
	}
	return nil
}

// printWhere says where the API, docs, metrics and gRPC are, and what to try.
func (d *devDemo) printWhere() {
	out := d.env.Stdout
	if d.progress != nil {
		d.progress.mu.Lock()
		defer d.progress.mu.Unlock()
	}
	fmt.Fprintf(out, "\nThe runner keeps serving; Ctrl-C stops it all.\n")
	if d.apiAddr != "" {
		a := d.apiURL()
		fmt.Fprintf(out, "  API       %s/v1/status\n", a)
		fmt.Fprintf(out, "  docs      %s/docs\n", a)
		fmt.Fprintf(out, "  metrics   %s/metrics\n", a)
		fmt.Fprintf(out, "  health    %s/health\n", a)
		fmt.Fprintf(out, "  spec      %s/openapi.yaml\n", a)
	}
	if d.grpcAddr != "" {
		transport := "h2c"
		if d.cfg.Worker.GRPC.TLS.Enabled() {
			transport = "TLS"
		}
		fmt.Fprintf(out, "  gRPC      %s (Connect, gRPC, gRPC-Web; %s)\n", localAddr(d.grpcAddr), transport)
	}
	if d.tpl == nil || d.services == nil {
		return
	}
	_, order := devOrder(9)
	api := d.clientFlags()
	fmt.Fprintf(out, "Try:\n  bin/tasker-runner submit --namespace %s --name %s --context '%s' --wait%s\n", d.tpl.NamespaceName, d.tpl.Name, order, api)
	for _, w := range d.workflows {
		_, taskCtx := w.task(2)
		fmt.Fprintf(out, "  bin/tasker-runner submit --namespace %s --name %s --context '%s' --wait%s\n", w.tpl.NamespaceName, w.tpl.Name, taskCtx, api)
	}
	if d.cfg.Worker.Web.Auth.Enabled {
		fmt.Fprintf(out, "  (the API needs a key: add --api-key KEY, or set TASKER_API_KEY)\n")
	}
	if s, ok := d.services.get("go"); ok {
		fmt.Fprintf(out, "  kill -9 %d    # the Go service: dev restarts it after %s; submit orders meanwhile (or run: make run CHAOS=go)\n", s.pid(), d.restartAfter)
	}
}

// clientFlags is what the client commands printed under "Try:" need to
// reach this runner's API: " --api URL" unless they would find it without
// (it is at the client's default address and TASKER_API_URL, which would
// override that default, is not set), "" otherwise.
func (d *devDemo) clientFlags() string {
	if d.apiAddr == "" {
		return ""
	}
	u := d.apiURL()
	env, set := d.env.Lookup.Lookup("TASKER_API_URL")
	if set && env != "" {
		if env == u {
			return ""
		}
		return " --api " + u
	}
	if isDefaultAPI(u) {
		return ""
	}
	return " --api " + u
}

// isDefaultAPI reports whether the API at base URL u is where the client
// commands look by default ([apiclient.DefaultAPIURL]): plain HTTP on the same port of
// a loopback address.
func isDefaultAPI(u string) bool {
	got, err := url.Parse(u)
	if err != nil {
		return false
	}
	def, _ := url.Parse(apiclient.DefaultAPIURL)
	if got.Scheme != def.Scheme || got.Port() != def.Port() {
		return false
	}
	if got.Hostname() == "localhost" {
		return true
	}
	ip := net.ParseIP(got.Hostname())
	return ip != nil && ip.IsLoopback()
}

// apiURL is the REST API's base URL, for people to open.
func (d *devDemo) apiURL() string {
	scheme := "http"
	if d.cfg.Worker.Web.TLS.Enabled() {
		scheme = "https"
	}
	return scheme + "://" + localAddr(d.apiAddr)
}

// localAddr turns a wildcard listen address into one a browser can open.
func localAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return addr
	}
	if ip := net.ParseIP(host); host == "" || (ip != nil && ip.IsUnspecified()) {
		host = "localhost"
	}
	return net.JoinHostPort(host, port)
}
