package pgtest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tasker-runner/tasker-runner/runner/store"
)

func TestMain(m *testing.M) { Main(m) }

// childEnv marks the test binary re-executed by TestExternalServer.
const childEnv = "TASKER_PGTEST_CHILD"

func TestParallelDatabasesAreIsolated(t *testing.T) {
	t.Parallel()
	// Both subtests create the same table and write their own row, wait for
	// each other, then check they see only their own row.
	wrote := map[string]chan struct{}{"a": make(chan struct{}), "b": make(chan struct{})}
	var mu sync.Mutex
	dbs := map[string]string{}
	t.Run("group", func(t *testing.T) {
		for me, other := range map[string]string{"a": "b", "b": "a"} {
			t.Run(me, func(t *testing.T) {
				t.Parallel()
				var once sync.Once
				signal := func() { once.Do(func() { close(wrote[me]) }) }
				defer signal() // never leave the other waiting
				ctx := testContext(t)
				pool := Pool(t)
				var db string
				if err := pool.QueryRow(ctx, "SELECT current_database()").Scan(&db); err != nil {
					t.Fatal(err)
				}
				mu.Lock()
				dbs[me] = db
				mu.Unlock()
				if _, err := pool.Exec(ctx, "CREATE TABLE probe (v text); INSERT INTO probe VALUES ('"+me+"')"); err != nil {
					t.Fatal(err)
				}
				signal()
				select {
				case <-wrote[other]:
				case <-ctx.Done():
					t.Fatal("the other test never wrote")
				}
				var seen []string
				if err := pool.QueryRow(ctx, "SELECT array_agg(v ORDER BY v) FROM probe").Scan(&seen); err != nil {
					t.Fatal(err)
				}
				if len(seen) != 1 || seen[0] != me {
					t.Errorf("database %s holds %v, want only %q", db, seen, me)
				}
			})
		}
	})
	if dbs["a"] == "" || dbs["a"] == dbs["b"] {
		t.Errorf("databases: %v; want two different ones", dbs)
	}
}

func TestPoolIsMigrated(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	began := time.Now()
	pool := Pool(t)
	var applied int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM tasker.schema_migrations").Scan(&applied); err != nil {
		t.Fatal(err)
	}
	t.Logf("migrated database ready in %v", time.Since(began).Round(time.Microsecond))
	ms, err := store.Migrations()
	if err != nil {
		t.Fatal(err)
	}
	if applied != len(ms) {
		t.Errorf("%d migrations applied, want %d", applied, len(ms))
	}
	// Migrating again finds nothing to do.
	if done, err := store.NewMigrator(pool).Up(ctx); err != nil || len(done) != 0 {
		t.Errorf("Up on a migrated database applied %d migrations, err %v", len(done), err)
	}
}

func TestManyParallelDatabases(t *testing.T) {
	t.Parallel()
	for i := range 8 {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			t.Parallel()
			ctx := testContext(t)
			conn, err := pgx.Connect(ctx, URL(t))
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(ctx)
			if _, err := conn.Exec(ctx, "SELECT 1 FROM tasker.schema_migrations LIMIT 1"); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestEmptyURL(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	pool, err := pgxpool.New(ctx, EmptyURL(t))
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	if n := countSchemas(ctx, t, pool); n != 0 {
		t.Fatalf("empty database has the %s schema", store.Schema)
	}
	if err := store.Migrate(ctx, pool); err != nil {
		t.Fatal(err)
	}
	if n := countSchemas(ctx, t, pool); n != 1 {
		t.Fatalf("no %s schema after Migrate", store.Schema)
	}
}

func TestDatabasesDroppedAtCleanup(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	var names []string
	var pool *pgxpool.Pool
	t.Run("inner", func(t *testing.T) {
		pool = Pool(t)
		var name string
		if err := pool.QueryRow(ctx, "SELECT current_database()").Scan(&name); err != nil {
			t.Fatal(err)
		}
		conn, err := pgx.Connect(ctx, URL(t))
		if err != nil {
			t.Fatal(err)
		}
		// Left open on purpose: the drop must force it closed.
		var other string
		if err := conn.QueryRow(ctx, "SELECT current_database()").Scan(&other); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = conn.Close(context.Background()) })
		names = append(names, name, other)
	})
	if err := pool.Ping(ctx); err == nil {
		t.Error("pool still usable after its test ended")
	}
	var left int
	if err := get(t).admin.QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE datname = ANY($1)", names).Scan(&left); err != nil {
		t.Fatal(err)
	}
	if left != 0 {
		t.Errorf("%d of %v not dropped", left, names)
	}
}

func TestDropStale(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	admin := get(t).admin
	cmd := exec.Command("/bin/true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	dead := fmt.Sprintf("tasker_test_%s_%d_0000", hostID(), cmd.Process.Pid)
	mine := newName("test")
	for _, db := range []string{dead, mine} {
		if _, err := admin.Exec(ctx, "CREATE DATABASE "+ident(db)); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _, _ = admin.Exec(context.Background(), "DROP DATABASE IF EXISTS "+ident(db)) })
	}
	dropStale(ctx, admin)
	var left []string
	if err := admin.QueryRow(ctx, "SELECT coalesce(array_agg(datname ORDER BY datname), '{}') FROM pg_database WHERE datname IN ($1, $2)", dead, mine).Scan(&left); err != nil {
		t.Fatal(err)
	}
	if len(left) != 1 || left[0] != mine {
		t.Errorf("after dropStale: %v; want only %s", left, mine)
	}
}

// TestExternalServer runs this test binary again with TEST_DATABASE_URL
// pointing at our server and checks that it passes, uses that server and
// leaves nothing on it.
func TestExternalServer(t *testing.T) {
	if os.Getenv(childEnv) != "" {
		t.Skip("already the child")
	}
	t.Parallel()
	ctx := testContext(t)
	s := get(t)
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.v", "-test.run=^(TestUsesExternalServer|TestParallelDatabasesAreIsolated|TestEmptyURL|TestPoolIsMigrated)$")
	cmd.Env = append(os.Environ(), EnvURL+"="+s.baseURL, childEnv+"=1")
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestUsesExternalServer") {
		t.Fatalf("child with %s: %v\n%s", EnvURL, err, out)
	}
	pid := strconv.Itoa(cmd.Process.Pid)
	rows, err := s.admin.Query(ctx, "SELECT datname FROM pg_database")
	if err != nil {
		t.Fatal(err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range names {
		if m := staleName.FindStringSubmatch(name); m != nil && m[2] == pid {
			t.Errorf("the child left database %s behind", name)
		}
	}
}

// TestUsesExternalServer checks, in the child of TestExternalServer, that the
// harness used TEST_DATABASE_URL instead of starting a cluster.
func TestUsesExternalServer(t *testing.T) {
	if os.Getenv(EnvURL) == "" {
		t.Skip(EnvURL + " not set")
	}
	s := get(t)
	if s.cluster != nil {
		t.Errorf("started a cluster although %s is set", EnvURL)
	}
	if s.baseURL != os.Getenv(EnvURL) {
		t.Errorf("server URL %s, want %s", s.baseURL, os.Getenv(EnvURL))
	}
}

func TestWithDatabase(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"postgres://u:p@h:5/old?sslmode=disable":         "postgres://u:p@h:5/new?sslmode=disable",
		"postgresql://u@/old?host=/tmp/s&dbname=old":     "postgresql://u@/new?host=%2Ftmp%2Fs",
		"postgres://postgres@/postgres?host=/tmp/x/sock": "postgres://postgres@/new?host=/tmp/x/sock",
		"host=/tmp dbname=old user=u":                    "host=/tmp dbname=old user=u dbname=new",
	} {
		got, err := withDatabase(in, "new")
		if err != nil || got != want {
			t.Errorf("withDatabase(%q) = %q, %v; want %q", in, got, err, want)
			continue
		}
		cfg, err := pgx.ParseConfig(got)
		if err != nil || cfg.Database != "new" {
			t.Errorf("%q parses to database %q, %v", got, cfg.Database, err)
		}
	}
	if !regexp.MustCompile(`^tasker_test_[0-9a-f]{6}_[0-9]+_[0-9a-f]{10}$`).MatchString(newName("test")) {
		t.Errorf("newName = %q", newName("test"))
	}
}

// BenchmarkCreateDatabase compares the CREATE DATABASE strategies for a copy
// of the migrated template: one at a time (the drop not timed), and in
// parallel (create and drop timed together).
func BenchmarkCreateDatabase(b *testing.B) {
	s := get(b)
	ctx := context.Background()
	for _, strategy := range []string{"WAL_LOG", "FILE_COPY"} {
		create := func() {
			name := newName("test")
			if _, err := s.admin.Exec(ctx, "CREATE DATABASE "+ident(name)+" TEMPLATE "+ident(s.template)+" STRATEGY "+strategy); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			if _, err := s.admin.Exec(ctx, "DROP DATABASE "+ident(name)); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
		}
		b.Run(strategy, func(b *testing.B) {
			for b.Loop() {
				create()
			}
		})
		b.Run(strategy+"/parallel", func(b *testing.B) {
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					name := newName("test")
					if _, err := s.admin.Exec(ctx, "CREATE DATABASE "+ident(name)+" TEMPLATE "+ident(s.template)+" STRATEGY "+strategy); err != nil {
						b.Error(err)
						return
					}
					if _, err := s.admin.Exec(ctx, "DROP DATABASE "+ident(name)); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

func countSchemas(ctx context.Context, t *testing.T, pool *pgxpool.Pool) int {
	t.Helper()
	var n int
	if err := pool.QueryRow(ctx, "SELECT count(*) FROM pg_namespace WHERE nspname = $1", store.Schema).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	t.Cleanup(cancel)
	return ctx
}
