package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tasker-runner/tasker-runner/cmd/tasker-runner/internal/cli"
	"github.com/tasker-runner/tasker-runner/runner"
)

// MigrateCommand applies or shows the schema migrations.
var MigrateCommand = cli.Command{
	Name: "migrate", Run: runMigrate,
	Summary: "apply or show the database schema migrations",
	Usage:   "[--config PATH] up|status",
}

func runMigrate(ctx context.Context, env *cli.Env, args []string) error {
	fs := cli.NewFlagSet("migrate")
	configPath := fs.String("config", "", "path of the TOML configuration file (default $TASKER_CONFIG_PATH)")
	if err := cli.ParseFlags(env, fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 || (fs.Arg(0) != "up" && fs.Arg(0) != "status") {
		return fmt.Errorf("%w: want exactly one of: up, status", cli.ErrUsage)
	}
	cfg, err := LoadConfig(env, *configPath)
	if err != nil {
		return err
	}
	if err := cfg.RequireDatabase(); err != nil {
		return err
	}
	pool, err := OpenPool(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	if fs.Arg(0) == "up" {
		applied, err := runner.Migrate(ctx, pool)
		for _, a := range applied {
			fmt.Fprintf(env.Stdout, "applied %s\n", a.ID())
		}
		if err != nil {
			return err
		}
		if len(applied) == 0 {
			fmt.Fprintln(env.Stdout, "database is up to date")
		}
		return nil
	}

	status, err := runner.Migrations(ctx, pool)
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tNAME\tSTATE\tAPPLIED AT")
	pending := 0
	for _, s := range status {
		state, at := "pending", "-"
		switch {
		case s.AppliedAt != nil && s.Modified:
			state, at = "MODIFIED", s.AppliedAt.UTC().Format(time.RFC3339)
		case s.AppliedAt != nil:
			state, at = "applied", s.AppliedAt.UTC().Format(time.RFC3339)
		default:
			pending++
		}
		fmt.Fprintf(tw, "%04d\t%s\t%s\t%s\n", s.Version, s.Name, state, at)
	}
	if ferr := tw.Flush(); ferr != nil && err == nil {
		err = ferr
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "%d applied, %d pending\n", len(status)-pending, pending)
	return nil
}

// checkSchema refuses to serve on a database that lacks migrations this
// binary embeds: its statements rely on them and would fail later, on the
// first submit or claim, with errors that do not say why. A database ahead
// of the binary (a newer release migrated it) is only reported: migrations
// keep older releases working during a rolling upgrade.
func checkSchema(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger) error {
	status, err := runner.Migrations(ctx, pool)
	if errors.Is(err, runner.ErrUnknownMigrations) {
		log.Warn("the database schema is newer than this binary; upgrade it when you can", "err", err)
		return nil
	}
	if err != nil {
		return err
	}
	var pending []string
	for _, s := range status {
		name := s.ID()
		switch {
		case s.AppliedAt == nil:
			pending = append(pending, name)
		case s.Modified:
			log.Warn("an applied migration differs from this binary's copy (checksum); see `tasker-runner migrate status`", "migration", name)
		}
	}
	if len(pending) > 0 {
		return fmt.Errorf("the database lacks %d migration(s) this binary needs (%s): run `tasker-runner migrate up`, or start serve with --migrate (database.migrate_on_start)",
			len(pending), strings.Join(pending, ", "))
	}
	return nil
}
