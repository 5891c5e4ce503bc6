package store_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tasker-runner/tasker-runner/runner/store"
	"github.com/tasker-runner/tasker-runner/runner/store/pgtest"
)

// TestIsUnavailable classifies real errors from pgx and PostgreSQL where
// they can be produced, and constructed ones for the server codes of an
// outage that a test cannot cause (crash_shutdown).
func TestIsUnavailable(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	dbURL := pgtest.URL(t)

	connect := func(t *testing.T, u string) *pgx.Conn {
		t.Helper()
		c, err := pgx.Connect(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Close(context.Background()) })
		return c
	}

	// A real connection refused: a port nobody listens on.
	refused := func(t *testing.T) error {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		if err := ln.Close(); err != nil {
			t.Fatal(err)
		}
		_, err = pgx.Connect(ctx, "postgres://nobody@127.0.0.1:"+strconv.Itoa(port)+"/none?sslmode=disable&connect_timeout=5")
		return err
	}

	// A real 57P01 admin_shutdown: the connection's backend is terminated,
	// as a fast shutdown does to every connection.
	terminated := func(t *testing.T) error {
		victim := connect(t, dbURL)
		var pid uint32 = victim.PgConn().PID()
		var ok bool
		if err := connect(t, dbURL).QueryRow(ctx, `SELECT pg_terminate_backend($1)`, pid).Scan(&ok); err != nil || !ok {
			t.Fatalf("pg_terminate_backend: %v %v", ok, err)
		}
		_, err := victim.Exec(ctx, "SELECT 1")
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "57P01" {
			t.Errorf("a terminated backend answered %v, want SQLSTATE 57P01", err)
		}
		return err
	}

	// The connection went away under a query (reset by the network).
	reset := func(t *testing.T) error {
		proxy := pgtest.NewProxy(t, dbURL)
		c := connect(t, proxy.URL())
		proxy.Cut()
		_, err := c.Exec(ctx, "SELECT 1")
		return err
	}

	// A pool whose only connection is taken: the deadline passes while
	// waiting for one.
	acquireTimeout := func(t *testing.T) error {
		pc, err := pgxpool.ParseConfig(dbURL)
		if err != nil {
			t.Fatal(err)
		}
		pc.MaxConns = 1
		pool, err := pgxpool.NewWithConfig(ctx, pc)
		if err != nil {
			t.Fatal(err)
		}
		defer pool.Close()
		held, err := pool.Acquire(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer held.Release()
		wctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		_, err = pool.Exec(wctx, "SELECT 1")
		return err
	}

	closedPool := func(t *testing.T) error {
		pool, err := pgxpool.New(ctx, dbURL)
		if err != nil {
			t.Fatal(err)
		}
		pool.Close()
		_, err = pool.Exec(ctx, "SELECT 1")
		return err
	}

	closedConn := func(t *testing.T) error {
		c := connect(t, dbURL)
		if err := c.Close(ctx); err != nil {
			t.Fatal(err)
		}
		_, err := c.Exec(ctx, "SELECT 1")
		return err
	}

	cancelled := func(t *testing.T) error {
		cctx, cancel := context.WithCancel(ctx)
		cancel()
		_, err := connect(t, dbURL).Exec(cctx, "SELECT 1")
		return err
	}

	sqlError := func(sql string) func(t *testing.T) error {
		return func(t *testing.T) error {
			_, err := connect(t, dbURL).Exec(ctx, sql)
			return err
		}
	}

	// A wrong database name is a configuration error, not an outage.
	unknownDatabase := func(t *testing.T) error {
		cfg, err := pgx.ParseConfig(dbURL)
		if err != nil {
			t.Fatal(err)
		}
		cfg.Database = "no_such_database_here"
		_, err = pgx.ConnectConfig(ctx, cfg)
		return err
	}

	pgErr := func(code string) func(*testing.T) error {
		return func(*testing.T) error {
			return fmt.Errorf("store: doing something: %w", &pgconn.PgError{Severity: "FATAL", Code: code})
		}
	}
	constant := func(err error) func(*testing.T) error { return func(*testing.T) error { return err } }

	for _, tc := range []struct {
		name string
		err  func(t *testing.T) error
		want bool
	}{
		{"connection refused", refused, true},
		{"backend terminated (57P01)", terminated, true},
		{"connection reset", reset, true},
		{"pool acquire timeout", acquireTimeout, true},
		{"closed pool", closedPool, true},
		{"closed connection", closedConn, true},
		{"crash_shutdown (57P02)", pgErr("57P02"), true},
		{"cannot_connect_now (57P03)", pgErr("57P03"), true},
		{"connection_failure (08006)", pgErr("08006"), true},
		{"too_many_connections (53300)", pgErr("53300"), true},
		{"unexpected EOF", constant(fmt.Errorf("store: reading: %w", io.ErrUnexpectedEOF)), true},
		{"deadline exceeded", constant(fmt.Errorf("store: listing: %w", context.DeadlineExceeded)), true},

		{"nil", constant(nil), false},
		{"cancelled by the caller", cancelled, false},
		{"unknown database", unknownDatabase, false},
		{"syntax error", sqlError("SELEC 1"), false},
		{"unique violation", sqlError("DO $$ BEGIN RAISE unique_violation; END $$"), false},
		{"not found", constant(store.ErrNotFound), false},
		{"some error", constant(errors.New("boom")), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.err(t)
			t.Logf("%T: %v", err, err)
			if tc.want && err == nil {
				t.Fatal("no error produced")
			}
			if got := store.IsUnavailable(err); got != tc.want {
				t.Errorf("IsUnavailable(%v) = %v, want %v", err, got, tc.want)
			}
		})
	}
}
