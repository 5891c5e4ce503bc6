// Package clitest runs tasker-runner commands in tests, in process
// ([Run]) or as a child process ([Start]: the test binary itself, which
// [Main] turns into the command).
package clitest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/sethvargo/go-envconfig"

	"github.com/tasker-runner/tasker-runner/cmd/tasker-runner/internal/cli"
	"github.com/tasker-runner/tasker-runner/runner"

	"github.com/tasker-runner/tasker-runner/runner/store/pgtest"
)

// beMainEnv, when set to 1, makes the test binary run the command table
// instead of the tests: the subprocess tests start the test binary itself
// as the real command. That needs no separate `go build` (which, under
// -race, would compile every dependency a second time without
// instrumentation) and runs the child under the race detector too. The name
// must not start with TASKER_, which is the configuration's prefix.
const beMainEnv = "GO_TEST_TASKER_RUNNER_BE_MAIN"

// table is the command table of the test binary, set by [Main].
var table cli.Table

// Main is a test package's TestMain: it runs the commands of t (as the
// command would, after calling childSetup) when the binary was started by
// [Start], else the tests (with pgtest's database and goleak's check).
func Main(m *testing.M, t cli.Table, childSetup ...func()) {
	table = t
	if os.Getenv(beMainEnv) == "1" {
		for _, f := range childSetup {
			f()
		}
		os.Exit(runMain())
	}
	pgtest.Main(m)
}

// ChildEnv is the environment that makes a child started from the test
// binary run the command table, without the race detector's pause at exit
// (for the bench's runner processes).
func ChildEnv() []string {
	return []string{beMainEnv + "=1", "GORACE=" + strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0")}
}

// runMain runs the command of os.Args as the main package does.
func runMain() int {
	env := &cli.Env{Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr, Lookup: envconfig.OsLookuper(), Environ: os.Environ}
	env.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: cli.LogLevel(os.Getenv("TASKER_LOG_LEVEL"))}))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop()
	}()
	defer stop()
	return cli.Main(ctx, env, table, os.Args[1:])
}

// Buffer is a bytes.Buffer safe for concurrent writes and reads.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

// Write appends p.
func (l *Buffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// String returns what was written so far.
func (l *Buffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// Result is what one in-process run of the command produced.
type Result struct {
	Code           int
	Stdout, Stderr string
}

// String shows the exit code and both outputs, for failure messages.
func (r Result) String() string {
	return fmt.Sprintf("exit %d\n--- stdout:\n%s--- stderr:\n%s", r.Code, r.Stdout, r.Stderr)
}

// Run runs the command in-process, as main would, with vars as the whole
// environment (the process environment is never read or changed). Logs go
// to stderr, as in main.
func Run(t *testing.T, vars map[string]string, args ...string) Result {
	t.Helper()
	return RunWithin(t, 30*time.Second, vars, args...)
}

// RunWithin is Run with a deadline of d instead of 30s.
func RunWithin(t *testing.T, d time.Duration, vars map[string]string, args ...string) Result {
	t.Helper()
	return RunFull(t, d, vars, "", args...)
}

// RunInput is Run with stdin as the standard input.
func RunInput(t *testing.T, vars map[string]string, stdin string, args ...string) Result {
	t.Helper()
	return RunFull(t, 30*time.Second, vars, stdin, args...)
}

// RunFull is Run with a deadline of d and stdin as the standard input.
func RunFull(t *testing.T, d time.Duration, vars map[string]string, stdin string, args ...string) Result {
	t.Helper()
	if vars == nil {
		vars = map[string]string{}
	}
	var stdout, stderr Buffer
	env := &cli.Env{
		Stdin:  strings.NewReader(stdin),
		Stdout: &stdout,
		Stderr: &stderr,
		Lookup: envconfig.MapLookuper(vars),
		Environ: func() []string {
			var kv []string
			for k, v := range vars {
				kv = append(kv, k+"="+v)
			}
			return kv
		},
		Logger: slog.New(slog.NewTextHandler(&stderr, nil)),
	}
	ctx, cancel := context.WithTimeout(t.Context(), d)
	defer cancel()
	code := cli.Main(ctx, env, table, args)
	return Result{Code: code, Stdout: stdout.String(), Stderr: stderr.String()}
}

// WriteConfig writes a TOML configuration file and returns its path.
func WriteConfig(t *testing.T, toml string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "worker.toml")
	if err := os.WriteFile(p, []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	if err := ln.Close(); err != nil {
		t.Fatal(err)
	}
	return port
}

// Child is the command running as a subprocess (see beMainEnv).
type Child struct {
	t      *testing.T
	Cmd    *exec.Cmd
	Stdout *Buffer
	Stderr *Buffer
	done   chan struct{} // closed when the process has exited and its output is read
	err    error         // from cmd.Wait, once done is closed
}

// Start starts `tasker-runner args...` with the test's environment
// stripped of everything that configures tasker-runner or PostgreSQL, plus
// vars. The child is killed when the test ends, and its output logged if
// the test failed.
func Start(t *testing.T, vars map[string]string, args ...string) *Child {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "TASKER_") || strings.HasPrefix(k, "PG") ||
			k == "DATABASE_URL" || k == pgtest.EnvURL || k == beMainEnv || k == "GORACE" {
			continue
		}
		env = append(env, kv)
	}
	// Under -race the child would sleep a second at exit (to let racing
	// goroutines report) unless told not to; it is waited for anyway.
	env = append(env, beMainEnv+"=1", "GORACE="+strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	c := &Child{t: t, Stdout: &Buffer{}, Stderr: &Buffer{}, done: make(chan struct{})}
	c.Cmd = exec.Command(exe, args...)
	c.Cmd.Env = env
	c.Cmd.Stdout = c.Stdout
	c.Cmd.Stderr = c.Stderr
	if err := c.Cmd.Start(); err != nil {
		t.Fatalf("starting %v: %v", args, err)
	}
	go func() {
		c.err = c.Cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(func() {
		select {
		case <-c.done:
		default:
			_ = c.Cmd.Process.Kill()
			<-c.done
		}
		if t.Failed() {
			t.Logf("tasker-runner %s: %v\n--- stdout:\n%s--- stderr:\n%s", strings.Join(args, " "), c.err, c.Stdout, c.Stderr)
		}
	})
	return c
}

// Exited says whether the child has exited.
func (c *Child) Exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// exitCode returns the exit code once the child has exited, or -1 when it
// died of a signal.
func (c *Child) ExitCode() int {
	<-c.done
	var ee *exec.ExitError
	if errors.As(c.err, &ee) {
		return ee.ExitCode()
	}
	if c.err != nil {
		c.t.Fatalf("waiting for the child: %v", c.err)
	}
	return 0
}

// wait waits at most d for the child to exit and returns its exit code.
func (c *Child) Wait(d time.Duration) int {
	c.t.Helper()
	select {
	case <-c.done:
		return c.ExitCode()
	case <-time.After(d):
		c.t.Fatalf("the child did not exit within %v", d)
		return -1
	}
}

// stop sends sig and checks that the child exits 0 within a few seconds.
func (c *Child) Stop(sig os.Signal) {
	c.t.Helper()
	if err := c.Cmd.Process.Signal(sig); err != nil {
		c.t.Fatalf("sending %v: %v", sig, err)
	}
	start := time.Now()
	if code := c.Wait(10 * time.Second); code != 0 {
		c.t.Fatalf("after %v: exit code %d, want 0", sig, code)
	}
	c.t.Logf("stopped by %v in %v", sig, time.Since(start).Round(time.Millisecond))
}

// HealthBody is the part of GET /health the tests look at.
type HealthBody struct {
	Status string `json:"status"`
	Checks map[string]struct {
		Status string `json:"status"`
	} `json:"checks"`
}

// NoKeepAlive leaves no idle connection (and goroutine) behind for goleak.
var NoKeepAlive = &http.Client{
	Transport: &http.Transport{DisableKeepAlives: true},
	Timeout:   5 * time.Second,
}

// waitHealthy polls http://addr/health until it answers 200 with a healthy
// status and a healthy database check, the child exits, or time runs out.
func (c *Child) WaitHealthy(addr string, timeout time.Duration) HealthBody {
	c.t.Helper()
	url := "http://" + addr + "/health"
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	var last string
	for {
		if c.Exited() {
			c.t.Fatalf("the child exited (code %d) before %s answered; last: %s", c.ExitCode(), url, last)
		}
		body, err := GetHealth(url)
		if err == nil && body.Status == "healthy" && body.Checks["database"].Status == "healthy" {
			return body
		}
		if err != nil {
			last = err.Error()
		} else {
			last = fmt.Sprintf("%+v", body)
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s did not answer healthy within %v; last: %s", url, timeout, last)
		}
		select {
		case <-tick.C:
		case <-c.done:
		}
	}
}

// waitOutput waits until the child's stdout contains s.
func (c *Child) WaitOutput(s string, timeout time.Duration) string {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for {
		out := c.Stdout.String()
		if strings.Contains(out, s) {
			return out
		}
		if c.Exited() {
			c.t.Fatalf("the child exited (code %d) before printing %q", c.ExitCode(), s)
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("the child did not print %q within %v", s, timeout)
		}
		select {
		case <-tick.C:
		case <-c.done:
		}
	}
}

// GetHealth reads GET url (a /health address); a status other than 200 is
// an error.
func GetHealth(url string) (HealthBody, error) {
	var body HealthBody
	resp, err := NoKeepAlive.Get(url)
	if err != nil {
		return body, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return body, err
	}
	if resp.StatusCode != http.StatusOK {
		return body, fmt.Errorf("%s: %s", resp.Status, b)
	}
	if err := json.Unmarshal(b, &body); err != nil {
		return body, fmt.Errorf("decoding %s: %w", b, err)
	}
	return body, nil
}

// WebVars returns the variables that put the API on a free local port.
func WebVars(t *testing.T) (vars map[string]string, addr string) {
	port := FreePort(t)
	return map[string]string{
			"TASKER_WORKER_WEB_HOST":  "127.0.0.1",
			"TASKER_WORKER_WEB_PORT":  strconv.Itoa(port),
			"TASKER_WORKER_GRPC_HOST": "127.0.0.1",
			"TASKER_WORKER_GRPC_PORT": strconv.Itoa(FreePort(t)),
		},
		net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
}

// StartupTimeout bounds how long a child may take to answer /health. It is
// generous for slow, loaded CI machines; a healthy run takes well under a
// second for serve and a few seconds for dev with its own cluster.
const StartupTimeout = 45 * time.Second

// MetricValue scrapes http://addr/metrics and returns the sum of the samples
// of name whose labels contain labels (-1 when there is none).
func MetricValue(t *testing.T, addr, name, labels string) float64 {
	t.Helper()
	resp, err := NoKeepAlive.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	sum, found := 0.0, false
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, name+"{") || !strings.Contains(line, labels) {
			continue
		}
		v, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		sum, found = sum+v, true
	}
	if !found {
		return -1
	}
	return sum
}

// Done is closed once the child has exited and its output is read.
func (c *Child) Done() <-chan struct{} { return c.done }

// EmbeddedMigrations returns the migrations the binary carries.
func EmbeddedMigrations(t *testing.T) []runner.Migration {
	t.Helper()
	ms, err := runner.EmbeddedMigrations()
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) == 0 {
		t.Fatal("no embedded migrations")
	}
	return ms
}

// CheckMigrateStatus checks the output of `migrate status`: every migration in
// state want ("applied" or "pending"), and the summary line.
func CheckMigrateStatus(t *testing.T, r Result, want string) {
	t.Helper()
	if r.Code != 0 {
		t.Fatalf("migrate status: %v", r)
	}
	ms := EmbeddedMigrations(t)
	lines := strings.Split(strings.TrimSuffix(r.Stdout, "\n"), "\n")
	if len(lines) != len(ms)+2 {
		t.Fatalf("want a header, %d migrations and a summary, got:\n%s", len(ms), r.Stdout)
	}
	if !regexp.MustCompile(`^VERSION\s+NAME\s+STATE\s+APPLIED AT$`).MatchString(lines[0]) {
		t.Errorf("header: %q", lines[0])
	}
	at := `-`
	if want == "applied" {
		at = `\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ`
	}
	for i, m := range ms {
		re := regexp.MustCompile(fmt.Sprintf(`^%04d\s+%s\s+%s\s+%s$`, m.Version, regexp.QuoteMeta(m.Name), want, at))
		if !re.MatchString(lines[i+1]) {
			t.Errorf("migration %04d_%s: line %q does not match %s", m.Version, m.Name, lines[i+1], re)
		}
	}
	summary := fmt.Sprintf("%d applied, 0 pending", len(ms))
	if want == "pending" {
		summary = fmt.Sprintf("0 applied, %d pending", len(ms))
	}
	if got := lines[len(lines)-1]; got != summary {
		t.Errorf("summary: got %q, want %q", got, summary)
	}
}
