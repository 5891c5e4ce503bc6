package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tasker-runner/tasker-runner/config"
	"github.com/tasker-runner/tasker-runner/openapi"
	"github.com/tasker-runner/tasker-runner/runner/store"
)

func runServe(ctx context.Context, env *environment, args []string) error {
	fs := newFlagSet("serve")
	configPath := fs.String("config", "", "path of the TOML configuration file (default $TASKER_CONFIG_PATH; none: built-in defaults)")
	migrate := fs.Bool("migrate", false, "apply pending database migrations before serving (also database.migrate_on_start)")
	if err := parseFlags(env, fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	cfg, err := loadConfig(env, *configPath)
	if err != nil {
		return err
	}
	if err := cfg.RequireDatabase(); err != nil {
		return err
	}
	return serve(ctx, env, cfg, *migrate || cfg.Database.MigrateOnStart, nil)
}

// loadConfig resolves, loads and validates the configuration.
func loadConfig(env *environment, flagPath string) (config.Config, error) {
	return config.Load(config.ResolvePath(flagPath, env.lookup), env.lookup)
}

// openPool connects to the configured database.
func openPool(ctx context.Context, cfg config.Config) (*pgxpool.Pool, error) {
	return store.NewPool(ctx, store.PoolConfig{
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
func stoppedWhileStarting(ctx context.Context, env *environment, err error) error {
	if ctx.Err() == nil {
		return err
	}
	env.logger.Info("stopped while starting")
	env.logger.Debug("start-up interrupted", "err", err)
	return nil
}

// serve runs everything the runner is made of until ctx is done, then stops
// it all gracefully. ready, when set, is called with the API's address once
// it accepts connections.
func serve(ctx context.Context, env *environment, cfg config.Config, migrate bool, ready func(apiAddr string)) error {
	log := env.logger
	pool, err := openPool(ctx, cfg)
	if err != nil {
		return stoppedWhileStarting(ctx, env, err)
	}
	defer pool.Close()
	log.Info("connected to database", "url", store.RedactURL(cfg.Database.URL))

	if migrate {
		applied, err := store.NewMigrator(pool).Up(ctx)
		if err != nil {
			return stoppedWhileStarting(ctx, env, err)
		}
		for _, m := range applied {
			log.Info("applied migration", "version", m.Version, "name", m.Name)
		}
	}

	api := openapi.New(openapi.Config{
		Version: buildVersion(),
		Checks: []openapi.Check{
			{Name: "database", Run: pool.Ping},
		},
	})

	var (
		httpSrv *http.Server
		httpErr = make(chan error, 1)
		apiAddr string
	)
	if cfg.Worker.Web.Enabled {
		ln, err := net.Listen("tcp", cfg.Worker.Web.Addr())
		if err != nil {
			return fmt.Errorf("worker.web: listening on %s: %w", cfg.Worker.Web.Addr(), err)
		}
		apiAddr = ln.Addr().String()
		httpSrv = &http.Server{
			Handler:           api.Handler(),
			ReadHeaderTimeout: 10 * time.Second,
			IdleTimeout:       2 * time.Minute,
		}
		go func() { httpErr <- httpSrv.Serve(ln) }()
		log.Info("management API listening", "addr", apiAddr)
	}
	if ready != nil {
		ready(apiAddr)
	}

	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err := <-httpErr:
		return fmt.Errorf("management API: %w", err)
	}

	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Duration(cfg.Worker.ShutdownTimeoutSeconds)*time.Second)
	defer cancel()
	if httpSrv != nil {
		if err := httpSrv.Shutdown(shutdownCtx); err != nil {
			return fmt.Errorf("management API: shutting down: %w", err)
		}
		if err := <-httpErr; err != nil && !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("management API: %w", err)
		}
	}
	log.Info("stopped")
	return nil
}
