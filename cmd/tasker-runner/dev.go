package main

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/tasker-runner/tasker-runner/callout"
	"github.com/tasker-runner/tasker-runner/runner/store"
	"github.com/tasker-runner/tasker-runner/runner/store/pgcluster"
)

func runDev(ctx context.Context, env *environment, args []string) error {
	fs := newFlagSet("dev")
	configPath := fs.String("config", "", "path of the TOML configuration file (default $TASKER_CONFIG_PATH; none: built-in defaults)")
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

	var cluster *pgcluster.Cluster
	if cfg.Database.URL == "" {
		env.logger.Info("no DATABASE_URL given: starting a throwaway PostgreSQL cluster")
		cluster, err = pgcluster.Start(ctx, pgcluster.Config{})
		if err != nil {
			return stoppedWhileStarting(ctx, env, err)
		}
		defer func() {
			if err := cluster.Stop(); err != nil {
				env.logger.Error("removing the throwaway cluster", "dir", cluster.Dir(), "err", err)
				return
			}
			env.logger.Info("throwaway PostgreSQL cluster stopped and removed", "dir", cluster.Dir())
		}()
		cfg.Database.URL = cluster.URL("postgres")
	}

	funcs := &callout.Funcs{}
	registerDevHandlers(funcs)
	progress := newDevProgress(env.stdout)
	var addr string // set by ready, read by started (both on this goroutine)
	return serve(ctx, env, cfg, serveOptions{migrate: true, funcs: funcs, onEvent: progress.onEvent, started: func(ctx context.Context, e *engine) error {
		if err := runDevExample(ctx, env, e); err != nil {
			return err
		}
		select {
		case <-progress.done:
		case <-ctx.Done():
			return nil
		case <-time.After(30 * time.Second):
			fmt.Fprintln(env.stdout, "the example task has not finished after 30s; see the log above")
			return nil
		}
		fmt.Fprintf(env.stdout, "\nThe runner keeps serving; press Ctrl-C to stop.\n")
		if addr != "" {
			fmt.Fprintf(env.stdout, "  health    http://%s/health\n  spec      http://%s/openapi.yaml\n", localAddr(addr), localAddr(addr))
		}
		return nil
	}, ready: func(apiAddr string) {
		addr = apiAddr
		fmt.Fprintf(env.stdout, "\ntasker-runner %s is up\n", buildVersion())
		fmt.Fprintf(env.stdout, "  database  %s\n", store.RedactURL(cfg.Database.URL))
		if cluster != nil {
			fmt.Fprintf(env.stdout, "            (throwaway cluster in %s, removed on exit; psql %q)\n", cluster.Dir(), cluster.URL("postgres"))
		}
		if apiAddr != "" {
			fmt.Fprintf(env.stdout, "  health    http://%s/health\n", localAddr(apiAddr))
			fmt.Fprintf(env.stdout, "  spec      http://%s/openapi.yaml\n", localAddr(apiAddr))
			fmt.Fprintf(env.stdout, "  docs      http://%s/docs\n", localAddr(apiAddr))
			fmt.Fprintf(env.stdout, "  metrics   http://%s/metrics\n", localAddr(apiAddr))
			fmt.Fprintf(env.stdout, "  status    http://%s/v1/status\n", localAddr(apiAddr))
		}
		if cfg.Worker.GRPC.Enabled {
			fmt.Fprintf(env.stdout, "  grpc      %s (Connect, gRPC, gRPC-Web; h2c)\n", localAddr(cfg.Worker.GRPC.Addr()))
		}
		fmt.Fprintf(env.stdout, "Press Ctrl-C to stop.\n\n")
	}})
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
