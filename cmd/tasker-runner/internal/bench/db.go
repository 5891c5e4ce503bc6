package bench

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tasker-runner/tasker-runner/cmd/tasker-runner/internal/cli"
	"github.com/tasker-runner/tasker-runner/runner"
	"github.com/tasker-runner/tasker-runner/runner/store/pgcluster"
)

// benchServer is the PostgreSQL server the scenarios run against: a
// throwaway cluster with fsync on, or the server of DATABASE_URL. Each
// scenario gets a fresh database on it; when the role may not create
// databases, scenarios share the given database and are kept apart by
// namespace instead (and cleaned up afterwards).
type benchServer struct {
	cluster *pgcluster.Cluster
	url     string          // the given (or the cluster's postgres) database's URL
	base    *pgxpool.Config // the given (or the cluster's postgres) database
	admin   *pgxpool.Pool
	info    postgresInfo
	// shared is true when scenarios run in the given database.
	shared bool
	// postmaster is the local server's process id when its CPU time can be
	// read (a throwaway cluster on Linux), else 0.
	postmaster int
}

type postgresInfo struct {
	Version           string `json:"version"`
	Source            string `json:"source"`    // "throwaway cluster" or "DATABASE_URL"
	Isolation         string `json:"isolation"` // "fresh database per scenario" or "namespace per scenario"
	Fsync             string `json:"fsync"`
	SynchronousCommit string `json:"synchronous_commit"`
	FullPageWrites    string `json:"full_page_writes"`
	SharedBuffers     string `json:"shared_buffers"`
}

func openBenchServer(ctx context.Context, env *cli.Env, o benchOptions) (_ *benchServer, err error) {
	s := &benchServer{}
	url := o.databaseURL
	if url == "" {
		fmt.Fprintf(o.progress, "bench: no DATABASE_URL given: starting a throwaway PostgreSQL cluster (fsync on)\n")
		s.cluster, err = pgcluster.Start(ctx, pgcluster.Config{Fsync: true})
		if err != nil {
			return nil, err
		}
		url = s.cluster.URL("postgres")
		s.info.Source = "throwaway cluster"
	} else {
		s.info.Source = "DATABASE_URL"
	}
	defer func() {
		if err != nil {
			s.close(env)
		}
	}()
	s.url = url
	s.base, err = pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("parsing the database URL %s: %w", runner.RedactURL(url), err)
	}
	s.base.MaxConns = 2
	s.base.ConnConfig.RuntimeParams["application_name"] = "tasker-runner-bench"
	s.admin, err = pgxpool.NewWithConfig(ctx, s.base)
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", runner.RedactURL(url), err)
	}
	if err := s.admin.Ping(ctx); err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", runner.RedactURL(url), err)
	}
	for _, q := range []struct {
		name string
		dst  *string
	}{
		{"server_version", &s.info.Version}, {"fsync", &s.info.Fsync}, {"synchronous_commit", &s.info.SynchronousCommit},
		{"full_page_writes", &s.info.FullPageWrites}, {"shared_buffers", &s.info.SharedBuffers},
	} {
		if err := s.admin.QueryRow(ctx, "SELECT current_setting($1)", q.name).Scan(q.dst); err != nil {
			return nil, fmt.Errorf("reading %s: %w", q.name, err)
		}
	}
	if s.cluster != nil {
		var backend int
		if err := s.admin.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&backend); err == nil {
			if pm := parentPID(backend); pm > 1 {
				if comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pm)); err == nil && strings.HasPrefix(string(comm), "postgres") {
					s.postmaster = pm
				}
			}
		}
	}
	// Can we create databases? Try once with a throwaway one.
	probe, err := s.createDatabase(ctx, "probe")
	if err == nil {
		s.dropDatabase(ctx, env, probe)
		s.info.Isolation = "fresh database per scenario"
	} else {
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "42501" { // insufficient_privilege
			return nil, err
		}
		s.shared = true
		s.info.Isolation = "namespace per scenario (the role may not create databases)"
		fmt.Fprintf(o.progress, "bench: the role may not create databases: scenarios share the given database, one namespace each\n")
	}
	return s, nil
}

func (s *benchServer) close(env *cli.Env) {
	if s.admin != nil {
		s.admin.Close()
	}
	if s.cluster != nil {
		if err := s.cluster.Stop(); err != nil {
			env.Logger.Error("removing the throwaway cluster", "dir", s.cluster.Dir(), "err", err)
		}
	}
}

func randomSuffix() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (s *benchServer) createDatabase(ctx context.Context, label string) (string, error) {
	return s.cloneDatabase(ctx, label, "")
}

// cloneDatabase creates a database that starts as a copy of template (an
// empty one when template is ""). The template must have no sessions.
func (s *benchServer) cloneDatabase(ctx context.Context, label, template string) (string, error) {
	name := "tasker_bench_" + label + "_" + randomSuffix()
	q := "CREATE DATABASE " + pgx.Identifier{name}.Sanitize()
	if template != "" {
		q += " TEMPLATE " + pgx.Identifier{template}.Sanitize()
		// WAL_LOG, the default since PostgreSQL 15, writes every block of a
		// large template to the WAL; FILE_COPY copies the files.
		var version int
		if err := s.admin.QueryRow(ctx, "SELECT current_setting('server_version_num')::int").Scan(&version); err == nil && version >= 150000 {
			q += " STRATEGY FILE_COPY"
		}
	}
	if _, err := s.admin.Exec(ctx, q); err != nil {
		if template != "" {
			return "", fmt.Errorf("creating database %s from template %s: %w", name, template, err)
		}
		return "", fmt.Errorf("creating database %s: %w", name, err)
	}
	return name, nil
}

// databaseURL is the URL of database db on the bench's server ("" for the
// given database itself).
func (s *benchServer) databaseURL(db string) (string, error) {
	if db == "" {
		return s.url, nil
	}
	return withDatabase(s.url, db)
}

// withDatabase returns connection string base with its database replaced by
// db. base may be a URL or a keyword/value string.
func withDatabase(base, db string) (string, error) {
	if strings.HasPrefix(base, "postgres://") || strings.HasPrefix(base, "postgresql://") {
		u, err := url.Parse(base)
		if err != nil {
			return "", fmt.Errorf("parsing %s: %w", runner.RedactURL(base), err)
		}
		u.Path, u.RawPath = "/"+db, ""
		if q := u.Query(); q.Has("dbname") || q.Has("database") {
			q.Del("dbname")
			q.Del("database")
			u.RawQuery = q.Encode()
		}
		return u.String(), nil
	}
	// In keyword/value form the last occurrence of a keyword wins.
	return base + " dbname='" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(db) + "'", nil
}

func (s *benchServer) dropDatabase(ctx context.Context, env *cli.Env, name string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if _, err := s.admin.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
		env.Logger.Warn("dropping a bench database", "database", name, "err", err)
	}
}

// scenarioDB is where one scenario runs.
type scenarioDB struct {
	pool      *pgxpool.Pool
	namespace string
	// database is the scenario's own database, "" when it shares the given one.
	database string
	cleanup  func()
}

// scenarioFrom says where a scenario's database comes from: a fresh empty
// one (the zero value), or a copy of template whose tasks are in namespace
// (the history scenario's clones).
type scenarioFrom struct {
	template  string
	namespace string
}

// scenario prepares a migrated, clean place for one scenario: a fresh
// database, or a fresh namespace in the shared one. poolSize bounds the
// scenario's pool, which the runner and the submitting client share.
func (s *benchServer) scenario(ctx context.Context, env *cli.Env, label string, poolSize int) (*scenarioDB, error) {
	return s.scenarioWith(ctx, env, label, poolSize, scenarioFrom{})
}

// scenarioWith is scenario in a database that starts as from says.
func (s *benchServer) scenarioWith(ctx context.Context, env *cli.Env, label string, poolSize int, from scenarioFrom) (_ *scenarioDB, err error) {
	cfg := s.base.Copy()
	cfg.MaxConns = int32(poolSize)
	cfg.MinConns = int32(poolSize) // connections are warm when the clock starts
	sc := &scenarioDB{namespace: cmp.Or(from.namespace, "bench_"+label+"_"+randomSuffix())}
	if from.template != "" && s.shared {
		return nil, fmt.Errorf("preparing the %s scenario's database: copying a template database needs a role that may create databases", label)
	}
	var dbName string
	if !s.shared {
		if dbName, err = s.cloneDatabase(ctx, label, from.template); err != nil {
			return nil, err
		}
		cfg.ConnConfig.Database = dbName
		sc.database = dbName
	}
	sc.pool, err = pgxpool.NewWithConfig(ctx, cfg)
	if err == nil {
		err = sc.pool.Ping(ctx)
	}
	if err == nil {
		_, err = runner.Migrate(ctx, sc.pool)
	}
	sc.cleanup = func() {
		if s.shared && sc.pool != nil {
			cleanupNamespace(ctx, env, sc.pool, sc.namespace)
		}
		if sc.pool != nil {
			sc.pool.Close()
		}
		if dbName != "" {
			s.dropDatabase(ctx, env, dbName)
		}
	}
	if err != nil {
		sc.cleanup()
		return nil, fmt.Errorf("preparing the %s scenario's database: %w", label, err)
	}
	return sc, nil
}

// cleanupNamespace removes what a scenario left in a shared database.
func cleanupNamespace(ctx context.Context, env *cli.Env, pool *pgxpool.Pool, ns string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
	defer cancel()
	for _, q := range []string{
		`DELETE FROM tasker.tasks WHERE namespace = $1`,
		`DELETE FROM tasker.templates WHERE namespace = $1`,
		`DELETE FROM tasker.namespaces WHERE name = $1`,
		`DELETE FROM tasker.workers WHERE worker_id LIKE 'bench-' || $1 || '%'`,
	} {
		if _, err := pool.Exec(ctx, q, ns); err != nil {
			env.Logger.Warn("removing the bench's rows", "namespace", ns, "err", err)
			return
		}
	}
}
