package app

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/tasker-runner/tasker-runner/cmd/tasker-runner/internal/clitest"
	"github.com/tasker-runner/tasker-runner/runner"
	"github.com/tasker-runner/tasker-runner/runner/store/pgtest"
)

func TestServeStopsOnSignal(t *testing.T) {
	t.Parallel()
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			t.Parallel()
			vars, addr := clitest.WebVars(t)
			vars["DATABASE_URL"] = pgtest.URL(t)
			c := clitest.Start(t, vars, "serve")
			c.WaitHealthy(addr, clitest.StartupTimeout)
			c.Stop(sig)
			if !strings.Contains(c.Stderr.String(), "stopped") {
				t.Errorf("no \"stopped\" in the log:\n%s", c.Stderr)
			}
		})
	}
}

// TestServeMigrate: --migrate applies the migrations to an empty database
// before serving.
func TestServeMigrate(t *testing.T) {
	t.Parallel()
	vars, addr := clitest.WebVars(t)
	url := pgtest.EmptyURL(t)
	vars["DATABASE_URL"] = url
	c := clitest.Start(t, vars, "serve", "--migrate")
	c.WaitHealthy(addr, clitest.StartupTimeout)
	c.Stop(syscall.SIGTERM)
	if !strings.Contains(c.Stderr.String(), "applied migration") {
		t.Errorf("no migration logged:\n%s", c.Stderr)
	}
	clitest.CheckMigrateStatus(t, clitest.Run(t, map[string]string{"DATABASE_URL": url}, "migrate", "status"), "applied")
}

// TestServeConfigFile: the file named by --config (or TASKER_CONFIG_PATH)
// is honoured, and the environment beats it.
func TestServeConfigFile(t *testing.T) {
	t.Parallel()
	filePort := clitest.FreePort(t)
	// A free gRPC port too: the default 9191 may be taken (make run).
	file := clitest.WriteConfig(t, fmt.Sprintf("[worker.web]\nhost = \"127.0.0.1\"\nport = %d\n[worker.grpc]\nhost = \"127.0.0.1\"\nport = %d\n", filePort, clitest.FreePort(t)))
	fileAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(filePort))

	t.Run("flag", func(t *testing.T) {
		t.Parallel()
		c := clitest.Start(t, map[string]string{"DATABASE_URL": pgtest.URL(t)}, "serve", "--config", file)
		c.WaitHealthy(fileAddr, clitest.StartupTimeout)
		c.Stop(syscall.SIGTERM)
	})
	t.Run("env override", func(t *testing.T) {
		t.Parallel()
		vars, addr := clitest.WebVars(t)
		delete(vars, "TASKER_WORKER_WEB_HOST") // from the file
		vars["DATABASE_URL"] = pgtest.URL(t)
		vars["TASKER_CONFIG_PATH"] = file
		c := clitest.Start(t, vars, "serve")
		c.WaitHealthy(addr, clitest.StartupTimeout)
		if want := "addr=" + addr; !strings.Contains(c.Stderr.String(), want) {
			t.Errorf("the log does not show %s:\n%s", want, c.Stderr)
		}
		c.Stop(syscall.SIGTERM)
	})
}

// TestServeBadConfig runs the real binary with an unknown key in its file.
func TestServeBadConfig(t *testing.T) {
	t.Parallel()
	file := clitest.WriteConfig(t, "[worker.web]\nport = 9000\nhots = \"127.0.0.1\"\n")
	c := clitest.Start(t, map[string]string{"DATABASE_URL": "postgres://nobody@127.0.0.1:1/nothing"}, "serve", "--config", file)
	if code := c.Wait(clitest.StartupTimeout); code != 1 {
		t.Fatalf("exit code %d, want 1", code)
	}
	if !strings.Contains(c.Stderr.String(), "worker.web.hots") || c.Stdout.String() != "" {
		t.Errorf("want the key worker.web.hots named on stderr and nothing on stdout, got\n--- stdout:\n%s--- stderr:\n%s", c.Stdout, c.Stderr)
	}
}

func TestServeWithoutDatabase(t *testing.T) {
	t.Parallel()
	r := clitest.Run(t, nil, "serve")
	if r.Code != 1 || !strings.Contains(r.Stderr, "DATABASE_URL") || !strings.Contains(r.Stderr, "database.url") {
		t.Errorf("want exit 1 naming database.url and DATABASE_URL, got %v", r)
	}
}

// TestServePortInUse: a port that is taken fails at start, naming the key
// and the address, rather than running without its API.
func TestServePortInUse(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	r := clitest.Run(t, map[string]string{
		"DATABASE_URL":               pgtest.URL(t),
		"TASKER_WORKER_WEB_HOST":     "127.0.0.1",
		"TASKER_WORKER_WEB_PORT":     port,
		"TASKER_WORKER_GRPC_ENABLED": "false",
	}, "serve")
	if r.Code != 1 || !strings.Contains(r.Stderr, "worker.web") || !strings.Contains(r.Stderr, "127.0.0.1:"+port) {
		t.Errorf("want exit 1 naming worker.web and the address, got %v", r)
	}
}

// TestServeChecksTheSchema: without --migrate, serve refuses a database
// that lacks migrations (naming them and the fix) instead of failing later
// on its first statement, and starts, with a warning, on a database that a
// newer release has migrated further.
func TestServeChecksTheSchema(t *testing.T) {
	t.Parallel()
	ms, err := runner.EmbeddedMigrations()
	if err != nil {
		t.Fatal(err)
	}
	last := ms[len(ms)-1]
	lastName := fmt.Sprintf("%04d_%s", last.Version, last.Name)
	exec := func(url, sql string, args ...any) {
		t.Helper()
		conn, err := pgx.Connect(t.Context(), url)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(t.Context())
		if _, err := conn.Exec(t.Context(), sql, args...); err != nil {
			t.Fatal(err)
		}
	}
	refused := func(url string, want ...string) {
		t.Helper()
		vars, _ := clitest.WebVars(t)
		vars["DATABASE_URL"] = url
		c := clitest.Start(t, vars, "serve")
		if code := c.Wait(clitest.StartupTimeout); code != 1 {
			t.Fatalf("exit code %d, want 1\n%s", code, c.Stderr)
		}
		for _, w := range append(want, "tasker-runner migrate up", "--migrate") {
			if !strings.Contains(c.Stderr.String(), w) {
				t.Errorf("stderr does not name %q:\n%s", w, c.Stderr)
			}
		}
	}

	t.Run("empty", func(t *testing.T) {
		t.Parallel()
		refused(pgtest.EmptyURL(t), fmt.Sprintf("lacks %d migration(s)", len(ms)), "0001_initial", lastName)
	})
	t.Run("behind", func(t *testing.T) {
		t.Parallel()
		url := pgtest.URL(t)
		exec(url, `DELETE FROM tasker.schema_migrations WHERE version = $1`, last.Version)
		refused(url, "lacks 1 migration(s) this binary needs ("+lastName+")")
	})
	t.Run("ahead", func(t *testing.T) {
		t.Parallel()
		url := pgtest.URL(t)
		exec(url, `INSERT INTO tasker.schema_migrations (version, name, checksum, duration_ms) VALUES ($1, 'from_the_future', 'x', 0)`, last.Version+1)
		vars, addr := clitest.WebVars(t)
		vars["DATABASE_URL"] = url
		c := clitest.Start(t, vars, "serve")
		c.WaitHealthy(addr, clitest.StartupTimeout)
		c.Stop(syscall.SIGTERM)
		if !strings.Contains(c.Stderr.String(), "newer than this binary") {
			t.Errorf("no warning about the newer schema:\n%s", c.Stderr)
		}
	})
}

// TestServeRefusesHandlerURLs: endpoints in the file are registrations
// too; by default serve refuses internal addresses in them before it
// starts, naming the endpoint and the rule, and allow_loopback lets a
// loopback one through.
func TestServeRefusesHandlerURLs(t *testing.T) {
	t.Parallel()
	handlers := "[[worker.handlers]]\npattern = \"meta.*\"\nurl = \"http://2852039166/latest/{callable}\"\n" +
		"[[worker.handlers]]\npattern = \"local.*\"\nurl = \"http://127.0.0.1:1/{callable}\"\n"
	vars, addr := clitest.WebVars(t)
	vars["DATABASE_URL"] = pgtest.URL(t)
	r := clitest.Run(t, vars, "serve", "--config", clitest.WriteConfig(t, handlers))
	for _, want := range []string{
		"worker.handlers[0].url: 2852039166 (169.254.169.254) is a cloud metadata address, refused by the handler URL policy (worker.callout.url_policy); allow it with allow_cidrs",
		"worker.handlers[1].url: 127.0.0.1 is a loopback address",
	} {
		if r.Code != 1 || !strings.Contains(r.Stderr, want) {
			t.Errorf("want exit 1 and %q, got %v", want, r)
		}
	}

	vars["TASKER_WORKER_CALLOUT_URL_POLICY_ALLOW_LOOPBACK"] = "true"
	c := clitest.Start(t, vars, "serve", "--config", clitest.WriteConfig(t, strings.SplitAfterN(handlers, "\n", 4)[3]))
	c.WaitHealthy(addr, clitest.StartupTimeout)
	c.Stop(syscall.SIGTERM)
}
