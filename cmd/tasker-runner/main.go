// Command tasker-runner runs Tasker-style workflow steps kept in PostgreSQL by
// calling their handlers. Run "tasker-runner help" for its subcommands.
//
// This file is the command table; the commands live in packages by concern
// under internal/: cli (what they share), app (serve, migrate, openapi and
// the wiring of the engine and the API they and the others use), dev (the
// make run demo), bench, apiclient (the commands that call a running
// server's API) and conformance.
package main

// README.md's list of commands comes from their usage lines (cli.Reference).
//go:generate go test -run ^TestREADMECommands$ . -args -update-readme

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/sethvargo/go-envconfig"

	"github.com/tasker-runner/tasker-runner/cmd/tasker-runner/internal/apiclient"
	"github.com/tasker-runner/tasker-runner/cmd/tasker-runner/internal/app"
	"github.com/tasker-runner/tasker-runner/cmd/tasker-runner/internal/bench"
	"github.com/tasker-runner/tasker-runner/cmd/tasker-runner/internal/cli"
	"github.com/tasker-runner/tasker-runner/cmd/tasker-runner/internal/conformance"
	"github.com/tasker-runner/tasker-runner/cmd/tasker-runner/internal/dev"
)

// version is set at build time with -ldflags "-X main.version=v1.2.3".
var version = ""

func init() { cli.Version = version }

// commands is the command table, in the order the usage lists them.
func commands() cli.Table {
	return cli.Table{
		Commands: []cli.Command{
			app.ServeCommand,
			app.MigrateCommand,
			dev.Command,
			bench.Command,
			app.OpenAPICommand,
			apiclient.SubmitCommand,
			apiclient.StatusCommand,
			apiclient.TasksCommand,
			apiclient.HandlersCommand,
			apiclient.TemplatesCommand,
			apiclient.DLQCommand,
			conformance.Command,
			cli.VersionCommand,
		},
		// Run by tasker-runner itself, not by people: not listed.
		Hidden: []cli.Command{bench.WorkerCommand},
	}
}

func main() {
	env := &cli.Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Lookup: envconfig.OsLookuper(), Environ: os.Environ}
	app.ApplyGCDefault(os.LookupEnv)
	env.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: cli.LogLevel(os.Getenv("TASKER_LOG_LEVEL"))}))

	// The first SIGINT/SIGTERM starts a graceful stop; once it is under way
	// the default handling is restored, so a second one ends the process.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop()
	}()
	code := cli.Main(ctx, env, commands(), os.Args[1:])
	stop()
	os.Exit(code)
}
