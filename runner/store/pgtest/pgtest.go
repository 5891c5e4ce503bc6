// Package pgtest gives each test its own migrated PostgreSQL database.
//
// A test binary that uses it calls [Main] from TestMain:
//
//	func TestMain(m *testing.M) { pgtest.Main(m) }
//
// and each test asks for a database with [Pool] or [URL]. The first such call
// starts one throwaway cluster for the whole test binary (see package
// pgcluster), or uses the server named by TEST_DATABASE_URL when that is set,
// and creates a template database migrated once with [store.Migrate]. Every
// test then gets a copy of the template (CREATE DATABASE ... TEMPLATE), which
// costs milliseconds and keeps parallel tests (t.Parallel) fully isolated.
// Databases are dropped when their test ends; the template and the cluster
// when [Main] returns. Test binaries that never ask for a database start
// nothing.
//
// Tests of package store itself must live in package store_test: pgtest
// imports store.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/fnv"
	"net/url"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/goleak"

	"github.com/tasker-runner/tasker-runner/runner/store"
	"github.com/tasker-runner/tasker-runner/runner/store/pgcluster"
)

// EnvURL names the environment variable that points the harness at an
// existing server instead of a throwaway cluster. Its role must be allowed to
// create databases (a superuser, or a role with CREATEDB).
const EnvURL = "TEST_DATABASE_URL"

// Main runs the tests, then drops the template database, stops the cluster
// and fails the binary if goroutines leaked. Call it from TestMain.
func Main(m *testing.M) {
	code := m.Run()
	if err := shutdown(); err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "pgtest: goroutines leaked by the tests: %v\n", err)
			code = 1
		}
	}
	os.Exit(code)
}

// Pool returns a pool on a fresh, fully migrated database private to t. The
// pool is closed and the database dropped when t ends.
func Pool(t testing.TB) *pgxpool.Pool {
	t.Helper()
	u := newDatabase(t, true)
	pool, err := pgxpool.New(context.Background(), u)
	if err != nil {
		t.Fatalf("pgtest: opening a pool: %v", err)
	}
	// Registered after the drop, so it runs before it.
	t.Cleanup(pool.Close)
	return pool
}

// URL returns the URL of a fresh, fully migrated database private to t, for
// code that opens its own connections (subprocesses, the CLI). The database
// is dropped, closing any connection still open, when t ends.
func URL(t testing.TB) string {
	t.Helper()
	return newDatabase(t, true)
}

// EmptyURL returns the URL of a fresh database private to t with no
// migration applied, for testing the migrations themselves. It is dropped
// when t ends.
func EmptyURL(t testing.TB) string {
	t.Helper()
	return newDatabase(t, false)
}

// ClusterURL returns the URL of database db on the harness's server, starting
// the server if needed. Nothing is created or dropped: it is for tests that
// need the server itself, such as connecting to the postgres database.
func ClusterURL(t testing.TB, db string) string {
	t.Helper()
	s := get(t)
	u, err := withDatabase(s.baseURL, db)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return u
}

// server is the harness's state for one test binary.
type server struct {
	cluster  *pgcluster.Cluster // nil when EnvURL is used
	baseURL  string             // the administrative database, where CREATE DATABASE runs
	admin    *pgxpool.Pool
	template string
	// createSuffix ends every CREATE DATABASE ... TEMPLATE <template>.
	createSuffix string
}

var (
	setupOnce sync.Once
	setupDone atomic.Bool
	srv       *server
	srvErr    error
)

// get returns the server, setting it up on first use.
func get(t testing.TB) *server {
	t.Helper()
	setupOnce.Do(func() {
		setupDone.Store(true)
		srv, srvErr = setup()
	})
	if srvErr != nil {
		t.Fatalf("pgtest: %v", srvErr)
	}
	return srv
}

func setup() (_ *server, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	s := &server{}
	defer func() {
		if err != nil {
			_ = s.close()
		}
	}()

	external := os.Getenv(EnvURL)
	if external != "" {
		s.baseURL = external
	} else {
		c, err := pgcluster.Start(ctx, pgcluster.Config{BaseDir: fastBaseDir()})
		if err != nil {
			return nil, fmt.Errorf("%w\n(or set %s to a PostgreSQL server whose role may create databases)", err, EnvURL)
		}
		s.cluster = c
		s.baseURL = c.URL("postgres")
	}
	cfg, err := pgxpool.ParseConfig(s.baseURL)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", EnvURL, err)
	}
	cfg.MaxConns = 8
	if s.admin, err = pgxpool.NewWithConfig(ctx, cfg); err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", redact(s.baseURL), err)
	}
	var canCreate bool
	var versionNum int
	err = s.admin.QueryRow(ctx, `SELECT rolsuper OR rolcreatedb, current_setting('server_version_num')::int
		FROM pg_roles WHERE rolname = current_user`).Scan(&canCreate, &versionNum)
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", redact(s.baseURL), err)
	}
	if !canCreate {
		return nil, fmt.Errorf("%s: the role may not create databases, and every test gets its own: use a superuser or ALTER ROLE ... CREATEDB", EnvURL)
	}
	if versionNum < pgcluster.MinVersion*10000 {
		return nil, fmt.Errorf("PostgreSQL %d is too old: tasker-runner needs %d or newer", versionNum/10000, pgcluster.MinVersion)
	}
	if external != "" {
		dropStale(ctx, s.admin)
	}
	// STRATEGY FILE_COPY (PostgreSQL 15+) copies the template's files after
	// a checkpoint instead of WAL-logging every block (WAL_LOG, the default
	// since 15). For a database as small as ours it is the faster: on a
	// 2-core VM with the cluster on tmpfs, about 25 ms against 35 ms one at a
	// time and 16 ms against 30 ms in parallel (BenchmarkCreateDatabase).
	if versionNum >= 150000 {
		s.createSuffix = " STRATEGY FILE_COPY"
	}

	tpl := newName("tpl")
	if _, err := s.admin.Exec(ctx, "CREATE DATABASE "+ident(tpl)+" TEMPLATE template0"); err != nil {
		if external != "" {
			return nil, fmt.Errorf("creating the template database (the role of %s must be allowed to create databases): %w", EnvURL, err)
		}
		return nil, fmt.Errorf("creating the template database: %w", err)
	}
	s.template = tpl
	tplURL, err := withDatabase(s.baseURL, tpl)
	if err != nil {
		return nil, err
	}
	pool, err := pgxpool.New(ctx, tplURL)
	if err != nil {
		return nil, fmt.Errorf("connecting to the template database: %w", err)
	}
	err = store.Migrate(ctx, pool)
	// CREATE DATABASE refuses a template with open connections.
	pool.Close()
	if err != nil {
		return nil, fmt.Errorf("migrating the template database: %w", err)
	}
	// No test may connect to the template by mistake and block every copy.
	if _, err := s.admin.Exec(ctx, "ALTER DATABASE "+ident(tpl)+" ALLOW_CONNECTIONS false"); err != nil {
		return nil, fmt.Errorf("locking the template database: %w", err)
	}
	return s, nil
}

// shutdown undoes setup, if it ran.
func shutdown() error {
	if !setupDone.Load() || srv == nil {
		return nil
	}
	return srv.close()
}

func (s *server) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var errs []error
	if s.template != "" && s.admin != nil {
		if _, err := s.admin.Exec(ctx, "DROP DATABASE IF EXISTS "+ident(s.template)+" WITH (FORCE)"); err != nil {
			errs = append(errs, fmt.Errorf("dropping the template database: %w", err))
		}
	}
	if s.admin != nil {
		s.admin.Close()
	}
	if s.cluster != nil {
		if err := s.cluster.Stop(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// newDatabase creates a database for t, dropped when t ends, and returns its
// URL: a copy of the migrated template, or an empty one.
func newDatabase(t testing.TB, migrated bool) string {
	t.Helper()
	s := get(t)
	name := newName("test")
	sql := "CREATE DATABASE " + ident(name) + " TEMPLATE template0"
	if migrated {
		sql = "CREATE DATABASE " + ident(name) + " TEMPLATE " + ident(s.template) + s.createSuffix
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := s.admin.Exec(ctx, sql); err != nil {
		t.Fatalf("pgtest: creating database %s: %v", name, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		// FORCE: a test that leaves connections open must not leave its
		// database behind.
		if _, err := s.admin.Exec(ctx, "DROP DATABASE IF EXISTS "+ident(name)+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: dropping database %s: %v", name, err)
		}
	})
	u, err := withDatabase(s.baseURL, name)
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	return u
}

// Database names are tasker_<kind>_<host>_<pid>_<random>: the host and pid
// let a later run on the same machine drop what a crashed test binary left on
// a shared server (see dropStale).
var staleName = regexp.MustCompile(`^tasker_(?:tpl|test)_([0-9a-f]{6})_([0-9]+)_[0-9a-f]+$`)

var hostID = sync.OnceValue(func() string {
	h := fnv.New32a()
	name, _ := os.Hostname()
	h.Write([]byte(name))
	return fmt.Sprintf("%06x", h.Sum32()&0xffffff)
})

func newName(kind string) string {
	b := make([]byte, 5)
	_, _ = rand.Read(b)
	return fmt.Sprintf("tasker_%s_%s_%d_%s", kind, hostID(), os.Getpid(), hex.EncodeToString(b))
}

// dropStale drops the databases that test binaries of this machine created
// and did not drop because they died. Best effort: errors are ignored, as
// another binary may be dropping the same ones.
func dropStale(ctx context.Context, admin *pgxpool.Pool) {
	rows, err := admin.Query(ctx, `SELECT datname FROM pg_database WHERE datname LIKE 'tasker\_t%'`)
	if err != nil {
		return
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return
	}
	for _, name := range names {
		m := staleName.FindStringSubmatch(name)
		if m == nil || m[1] != hostID() {
			continue
		}
		pid, err := strconv.Atoi(m[2])
		if err != nil || pid == os.Getpid() || processAlive(pid) {
			continue
		}
		_, _ = admin.Exec(ctx, "DROP DATABASE IF EXISTS "+ident(name)+" WITH (FORCE)")
	}
}

// processAlive reports whether pid may still be running; when in doubt, yes.
func processAlive(pid int) bool {
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	return !errors.Is(p.Signal(syscall.Signal(0)), os.ErrProcessDone)
}

// withDatabase returns connection string base with its database replaced by
// db. base may be a URL or a keyword/value string.
func withDatabase(base, db string) (string, error) {
	if strings.HasPrefix(base, "postgres://") || strings.HasPrefix(base, "postgresql://") {
		u, err := url.Parse(base)
		if err != nil {
			return "", fmt.Errorf("parsing %s: %w", redact(base), err)
		}
		u.Path, u.RawPath = "/"+db, ""
		q := u.Query()
		if q.Has("dbname") || q.Has("database") {
			q.Del("dbname")
			q.Del("database")
			u.RawQuery = q.Encode()
		}
		return u.String(), nil
	}
	// In keyword/value form the last occurrence of a keyword wins.
	return base + " dbname=" + db, nil
}

// redact hides the password of a connection URL for error messages.
func redact(s string) string {
	if u, err := url.Parse(s); err == nil && u.User != nil {
		return u.Redacted()
	}
	return "the database URL"
}

func ident(name string) string { return pgx.Identifier{name}.Sanitize() }
