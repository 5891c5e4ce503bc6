package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tasker-runner/tasker-runner/cmd/tasker-runner/internal/cli"
	"github.com/tasker-runner/tasker-runner/config"
	"github.com/tasker-runner/tasker-runner/openapi"
	"github.com/tasker-runner/tasker-runner/runner"
)

// ServeCommand runs the runner and its API against PostgreSQL.
var ServeCommand = cli.Command{
	Name: "serve", Run: runServe,
	Summary: "run the runner and its API against a PostgreSQL database",
	Usage:   "[--config PATH] [--migrate]",
}

func runServe(ctx context.Context, env *cli.Env, args []string) error {
	fs := cli.NewFlagSet("serve")
	configPath := fs.String("config", "", "path of the TOML configuration file (default $TASKER_CONFIG_PATH; none: built-in defaults)")
	migrate := fs.Bool("migrate", false, "apply pending database migrations before serving (also database.migrate_on_start)")
	if err := cli.ParseFlags(env, fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", cli.ErrUsage, fs.Arg(0))
	}
	cfg, err := LoadConfig(env, *configPath)
	if err != nil {
		return err
	}
	if err := cfg.RequireDatabase(); err != nil {
		return err
	}
	return Serve(ctx, env, cfg, ServeOptions{Migrate: *migrate || cfg.Database.MigrateOnStart, ConfigPath: config.ResolvePath(*configPath, env.Lookup)})
}

// loadConfig resolves, loads and validates the configuration, and warns
// about variables that look like misspelt overrides (they are ignored).
func LoadConfig(env *cli.Env, flagPath string) (config.Config, error) {
	if env.Environ != nil {
		for _, t := range config.EnvTypos(env.Environ()) {
			fmt.Fprintf(env.Stderr, "tasker-runner: warning: %s overrides no configuration key and is ignored; did you mean %s?\n", t.Name, t.Suggest)
		}
	}
	return config.Load(config.ResolvePath(flagPath, env.Lookup), env.Lookup)
}

// openPool connects to the configured database.
func OpenPool(ctx context.Context, cfg config.Config) (*pgxpool.Pool, error) {
	return runner.OpenPool(ctx, runner.PoolConfig{
		URL:            cfg.Database.URL,
		MaxConns:       int32(cfg.Database.MaxConns),
		MinConns:       int32(cfg.Database.MinConns),
		ConnectTimeout: time.Duration(cfg.Database.ConnectTimeoutSeconds) * time.Second,
	})
}

// stoppedWhileStarting turns the error of a start-up that a stop request
// (Ctrl-C, SIGTERM) cut short into a clean stop: the stop was asked for, and
// what had started is undone by the caller's defers. Otherwise the user would
// get exit 1 and the error of whatever was interrupted (for dev, a killed
// initdb and its output). A migration cut short is rolled back by its
// transaction, so the next start applies it again.
func StoppedWhileStarting(ctx context.Context, env *cli.Env, err error) error {
	if ctx.Err() == nil {
		return err
	}
	env.Logger.Info("stopped while starting")
	env.Logger.Debug("start-up interrupted", "err", err)
	return nil
}

// ServeOptions are what `dev` adds to a plain `serve`.
type ServeOptions struct {
	Migrate bool
	// configPath is the configuration file's path, "" for none: its
	// directory may hold "file:" secrets (worker.callout.secret_dirs).
	ConfigPath string
	// ready, when set, is called with the bound addresses of the REST and
	// Connect/gRPC APIs ("" when disabled) once they accept connections and
	// the runner is claiming.
	Ready func(apiAddr, grpcAddr string)
	// OnEvent sees every step outcome.
	OnEvent func(runner.Event)
	// started, when set, runs once everything is up (dev submits its
	// example here).
	Started func(ctx context.Context, e *Engine) error
}

// serve runs everything the runner is made of until ctx is done, then stops
// it all gracefully: the runner first (it finishes or releases in-flight
// steps and writes every result), then the API.
func Serve(ctx context.Context, env *cli.Env, cfg config.Config, opts ServeOptions) error {
	log := env.Logger
	if opts.ConfigPath != "" {
		if abs, err := filepath.Abs(opts.ConfigPath); err == nil {
			cfg.Worker.Callout.SecretDirs = append(slices.Clip(cfg.Worker.Callout.SecretDirs), filepath.Dir(abs))
		}
	}
	sec, err := newServeSecurity(cfg, log)
	if err != nil {
		return err
	}
	pool, err := openDatabase(ctx, env, cfg, opts.Migrate)
	if err != nil {
		return err
	}
	defer pool.Close()
	metrics := openapi.NewMetrics(openapi.MetricsConfig{Queues: runner.NewClient(pool, runner.ClientConfig{}), Logger: log})
	eng, err := NewEngine(pool, cfg, log, opts.OnEvent, metrics)
	if err != nil {
		return err
	}
	stopRunner, err := eng.start(ctx, env, cfg.Worker.ShutdownTimeout())
	if err != nil {
		return err
	}
	apiCfg := apiConfig(cfg, pool, eng, log)
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics.Handler())
	mux.Handle("/", openapi.New(apiCfg).Handler())
	web, err := startWeb(cfg, sec.auth.Middleware(mux), sec.webTLS, log)
	if err != nil {
		return errors.Join(err, stopRunner())
	}
	stopGRPC, grpcAddr, err := startGRPC(ctx, cfg, apiCfg, sec.auth, sec.grpcTLS, log)
	if err != nil {
		web.close()
		return errors.Join(err, stopRunner())
	}
	defer func() { _ = stopGRPC(context.Background()) }() // safety net; the explicit call below reports errors
	if opts.Ready != nil {
		opts.Ready(web.addr, grpcAddr)
	}
	if opts.Started != nil {
		if err := opts.Started(ctx, eng); err != nil {
			log.Error("start-up task failed", "err", err)
		}
	}

	select {
	case <-ctx.Done():
		log.Info("shutting down: finishing in-flight steps", "timeout", cfg.Worker.ShutdownTimeout())
	case err := <-web.errs:
		return errors.Join(fmt.Errorf("management API: %w", err), stopRunner())
	}
	return shutdown(ctx, cfg, log, stopRunner(), web, stopGRPC)
}

// serveSecurity is what serve checks before anything starts: bad keys and
// certificates fail at once.
type serveSecurity struct {
	auth            *openapi.Authenticator
	webTLS, grpcTLS *tls.Config
}

func newServeSecurity(cfg config.Config, log *slog.Logger) (serveSecurity, error) {
	var sec serveSecurity
	if err := checkExposure(cfg, log); err != nil {
		return sec, err
	}
	var err error
	if sec.auth, err = newAuthenticator(cfg); err != nil {
		return sec, err
	}
	if sec.webTLS, err = listenerTLS("worker.web.tls", cfg.Worker.Web.TLS, log); err != nil {
		return sec, err
	}
	sec.grpcTLS, err = listenerTLS("worker.grpc.tls", cfg.Worker.GRPC.TLS, log)
	return sec, err
}

// openDatabase connects, then migrates the schema (migrate) or checks that
// it is current.
func openDatabase(ctx context.Context, env *cli.Env, cfg config.Config, migrate bool) (*pgxpool.Pool, error) {
	log := env.Logger
	pool, err := OpenPool(ctx, cfg)
	if err != nil {
		return nil, StoppedWhileStarting(ctx, env, err)
	}
	log.Info("connected to database", "url", runner.RedactURL(cfg.Database.URL))
	if migrate {
		applied, err := runner.Migrate(ctx, pool)
		if err != nil {
			pool.Close()
			return nil, StoppedWhileStarting(ctx, env, err)
		}
		for _, m := range applied {
			log.Info("applied migration", "version", m.Version, "name", m.Name)
		}
	} else if err := checkSchema(ctx, pool, log); err != nil {
		pool.Close()
		return nil, StoppedWhileStarting(ctx, env, err)
	}
	return pool, nil
}

// apiConfig is the management API's configuration (REST and gRPC alike).
func apiConfig(cfg config.Config, pool *pgxpool.Pool, eng *Engine, log *slog.Logger) openapi.Config {
	return openapi.Config{
		Version: cli.BuildVersion(),
		Checks: []openapi.Check{
			{Name: "database", Run: eng.Server.CheckDatabase},
			{Name: "listener", Run: eng.Server.CheckListener},
			{Name: "event_loop", Run: eng.Server.CheckEventLoop},
		},
		PoolStats:         func() openapi.PoolStats { return openapi.PoolStats(eng.Server.PoolStats()) },
		Client:            eng.Client,
		MaxRequestBytes:   int64(cfg.Worker.Web.MaxRequestBytes),
		HeartbeatInterval: cfg.Worker.Leases.HeartbeatInterval(),
		Endpoints:         eng.Server.Endpoints,
		URLPolicy:         urlPolicy(cfg),
		SecretDirs:        cfg.Worker.Callout.SecretDirs,
		RunnerStats:       eng.Server.Stats,
		Logger:            log,
	}
}

// webServer is the management API's HTTP server; srv is nil when
// worker.web is disabled.
type webServer struct {
	srv  *http.Server
	errs chan error // what Serve returned
	addr string     // the bound address, "" when disabled
}

// startWeb serves handler on worker.web's address, when enabled.
func startWeb(cfg config.Config, handler http.Handler, webTLS *tls.Config, log *slog.Logger) (*webServer, error) {
	w := &webServer{errs: make(chan error, 1)}
	if !cfg.Worker.Web.Enabled {
		return w, nil
	}
	ln, err := net.Listen("tcp", cfg.Worker.Web.Addr())
	if err != nil {
		return nil, fmt.Errorf("worker.web: listening on %s: %w", cfg.Worker.Web.Addr(), err)
	}
	w.addr = ln.Addr().String()
	w.srv = &http.Server{
		Handler:           handler,
		TLSConfig:         webTLS,
		ErrorLog:          serverErrorLog(log),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	// Logged before serving: the socket is bound, and a client that got an
	// answer must find the line (tests read the log once healthy).
	log.Info("management API listening", "addr", w.addr, "tls", webTLS != nil)
	go func() {
		if webTLS != nil {
			// The certificate comes from TLSConfig.GetCertificate.
			w.errs <- w.srv.ServeTLS(ln, "", "")
			return
		}
		w.errs <- w.srv.Serve(ln)
	}()
	return w, nil
}

func (w *webServer) close() {
	if w.srv != nil {
		_ = w.srv.Close()
	}
}

// shutdown stops the APIs once the runner has stopped (with runnerErr) and
// reports the first problem.
func shutdown(ctx context.Context, cfg config.Config, log *slog.Logger, runnerErr error, web *webServer, stopGRPC func(context.Context) error) error {
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.Worker.ShutdownTimeout()+5*time.Second)
	defer cancel()
	if web.srv != nil {
		if err := web.srv.Shutdown(shutdownCtx); err != nil {
			return fmt.Errorf("management API: shutting down: %w", err)
		}
		if err := <-web.errs; err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("management API: %w", err)
		}
	}
	if err := stopGRPC(shutdownCtx); err != nil {
		return fmt.Errorf("Connect/gRPC API: shutting down: %w", err)
	}
	if runnerErr != nil {
		return fmt.Errorf("runner: %w", runnerErr)
	}
	log.Info("stopped")
	return nil
}
