package main

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/tasker-runner/tasker-runner/runner/store"
)

func runMigrate(ctx context.Context, env *environment, args []string) error {
	fs := newFlagSet("migrate")
	configPath := fs.String("config", "", "path of the TOML configuration file (default $TASKER_CONFIG_PATH)")
	if err := parseFlags(env, fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 || (fs.Arg(0) != "up" && fs.Arg(0) != "status") {
		return fmt.Errorf("%w: want exactly one of: up, status", errUsage)
	}
	cfg, err := loadConfig(env, *configPath)
	if err != nil {
		return err
	}
	if err := cfg.RequireDatabase(); err != nil {
		return err
	}
	pool, err := openPool(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	m := store.NewMigrator(pool)

	if fs.Arg(0) == "up" {
		applied, err := m.Up(ctx)
		for _, a := range applied {
			fmt.Fprintf(env.stdout, "applied %04d_%s\n", a.Version, a.Name)
		}
		if err != nil {
			return err
		}
		if len(applied) == 0 {
			fmt.Fprintln(env.stdout, "database is up to date")
		}
		return nil
	}

	status, err := m.Status(ctx)
	tw := tabwriter.NewWriter(env.stdout, 0, 4, 2, ' ', 0)
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
	fmt.Fprintf(env.stdout, "%d applied, %d pending\n", len(status)-pending, pending)
	return nil
}
