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
	o := outage{ctx: t.Context(), dbURL: pgtest.URL(t)}

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
		{"connection refused", o.refused, true},
		{"backend terminated (57P01)", o.terminated, true},
		{"connection reset", o.reset, true},
		{"pool acquire timeout", o.acquireTimeout, true},
		{"closed pool", o.closedPool, true},
		{"closed connection", o.closedConn, true},
		{"crash_shutdown (57P02)", pgErr("57P02"), true},
		{"cannot_connect_now (57P03)", pgErr("57P03"), true},
		{"connection_failure (08006)", pgErr("08006"), true},
		{"too_many_connections (53300)", pgErr("53300"), true},
		{"unexpected EOF", constant(fmt.Errorf("store: reading: %w", io.ErrUnexpectedEOF)), true},
		{"deadline exceeded", constant(fmt.Errorf("store: listing: %w", context.DeadlineExceeded)), true},

		{"nil", constant(nil), false},
		{"cancelled by the caller", o.cancelled, false},
		{"unknown database", o.unknownDatabase, false},
		{"syntax error", o.sqlError("SELEC 1"), false},
		{"unique violation", o.sqlError("DO $$ BEGIN RAISE unique_violation; END $$"), false},
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

// outage produces the errors of TestIsUnavailable against the database at
// dbURL: real refusals, terminations, cuts and timeouts, and errors that
// are no outage.
type outage struct {
	ctx   context.Context
	dbURL string
}

// connect opens a connection to u, closed when t ends.
func (o outage) connect(t *testing.T, u string) *pgx.Conn {
	t.Helper()
	c, err := pgx.Connect(o.ctx, u)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

// refused is a real connection refused: a port nobody listens on.
func (o outage) refused(t *testing.T) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	_, err = pgx.Connect(o.ctx, "postgres://nobody@127.0.0.1:"+strconv.Itoa(port)+"/none?sslmode=disable&connect_timeout=5")
	return err
}

// terminated is a real 57P01 admin_shutdown: the connection's backend is
// terminated, as a fast shutdown does to every connection.
func (o outage) terminated(t *testing.T) error {
	victim := o.connect(t, o.dbURL)
	var pid uint32 = victim.PgConn().PID()
	var ok bool
	if err := o.connect(t, o.dbURL).QueryRow(o.ctx, `SELECT pg_terminate_backend($1)`, pid).Scan(&ok); err != nil || !ok {
		t.Fatalf("pg_terminate_backend: %v %v", ok, err)
	}
	_, err := victim.Exec(o.ctx, "SELECT 1")
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "57P01" {
		t.Errorf("a terminated backend answered %v, want SQLSTATE 57P01", err)
	}
	return err
}

// reset is a connection gone away under a query (reset by the network).
func (o outage) reset(t *testing.T) error {
	proxy := pgtest.NewProxy(t, o.dbURL)
	c := o.connect(t, proxy.URL())
	proxy.Cut()
	_, err := c.Exec(o.ctx, "SELECT 1")
	return err
}

// acquireTimeout queries a pool whose only connection is taken: the
// deadline passes while waiting for one.
func (o outage) acquireTimeout(t *testing.T) error {
	pc, err := pgxpool.ParseConfig(o.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	pc.MaxConns = 1
	pool, err := pgxpool.NewWithConfig(o.ctx, pc)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	held, err := pool.Acquire(o.ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Release()
	wctx, cancel := context.WithTimeout(o.ctx, 50*time.Millisecond)
	defer cancel()
	_, err = pool.Exec(wctx, "SELECT 1")
	return err
}

// closedPool queries through a pool that was closed.
func (o outage) closedPool(t *testing.T) error {
	pool, err := pgxpool.New(o.ctx, o.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	pool.Close()
	_, err = pool.Exec(o.ctx, "SELECT 1")
	return err
}

// closedConn queries through a connection that was closed.
func (o outage) closedConn(t *testing.T) error {
	c := o.connect(t, o.dbURL)
	if err := c.Close(o.ctx); err != nil {
		t.Fatal(err)
	}
	_, err := c.Exec(o.ctx, "SELECT 1")
	return err
}

// cancelled queries with a context the caller cancelled.
func (o outage) cancelled(t *testing.T) error {
	cctx, cancel := context.WithCancel(o.ctx)
	cancel()
	_, err := o.connect(t, o.dbURL).Exec(cctx, "SELECT 1")
	return err
}

// sqlError runs sql, which fails.
func (o outage) sqlError(sql string) func(t *testing.T) error {
	return func(t *testing.T) error {
		_, err := o.connect(t, o.dbURL).Exec(o.ctx, sql)
		return err
	}
}

// unknownDatabase connects to a wrong database name: a configuration
// error, not an outage.
func (o outage) unknownDatabase(t *testing.T) error {
	cfg, err := pgx.ParseConfig(o.dbURL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Database = "no_such_database_here"
	_, err = pgx.ConnectConfig(o.ctx, cfg)
	return err
}
