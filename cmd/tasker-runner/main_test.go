package main

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
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sethvargo/go-envconfig"

	"github.com/tasker-runner/tasker-runner/runner/store/pgtest"
)

// beMainEnv, when set to 1, makes the test binary run main() instead of the
// tests: the subprocess tests start the test binary itself as the real
// command. That needs no separate `go build` (which, under -race, would
// compile every dependency a second time without instrumentation) and runs
// the child under the race detector too. The name must not start with
// TASKER_, which is the configuration's prefix.
const beMainEnv = "GO_TEST_TASKER_RUNNER_BE_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(beMainEnv) == "1" {
		main()
		return // main exits; not reached
	}
	// The bench's runner processes (bench-worker) are this test binary
	// too: it must run main for them, without the race detector's pause at
	// exit.
	benchWorkerEnv = []string{beMainEnv + "=1", "GORACE=" + strings.TrimSpace(os.Getenv("GORACE")+" atexit_sleep_ms=0")}
	pgtest.Main(m)
}

// lockedBuffer is a bytes.Buffer safe for concurrent writes and reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// cliResult is what one in-process run of the command produced.
type cliResult struct {
	code           int
	stdout, stderr string
}

func (r cliResult) String() string {
	return fmt.Sprintf("exit %d\n--- stdout:\n%s--- stderr:\n%s", r.code, r.stdout, r.stderr)
}

// runCLI runs the command in-process, as main would, with vars as the whole
// environment (the process environment is never read or changed). Logs go
// to stderr, as in main.
func runCLI(t *testing.T, vars map[string]string, args ...string) cliResult {
	t.Helper()
	return runCLIWithin(t, 30*time.Second, vars, args...)
}

// runCLIWithin is runCLI with a deadline of d instead of 30s.
func runCLIWithin(t *testing.T, d time.Duration, vars map[string]string, args ...string) cliResult {
	t.Helper()
	return runCLIFull(t, d, vars, "", args...)
}

// runCLIInput is runCLI with stdin as the standard input.
func runCLIInput(t *testing.T, vars map[string]string, stdin string, args ...string) cliResult {
	t.Helper()
	return runCLIFull(t, 30*time.Second, vars, stdin, args...)
}

// runCLIFull is runCLI with a deadline of d and stdin as the standard input.
func runCLIFull(t *testing.T, d time.Duration, vars map[string]string, stdin string, args ...string) cliResult {
	t.Helper()
	if vars == nil {
		vars = map[string]string{}
	}
	var stdout, stderr lockedBuffer
	env := &environment{
		stdin:  strings.NewReader(stdin),
		stdout: &stdout,
		stderr: &stderr,
		lookup: envconfig.MapLookuper(vars),
		environ: func() []string {
			var kv []string
			for k, v := range vars {
				kv = append(kv, k+"="+v)
			}
			return kv
		},
		logger: slog.New(slog.NewTextHandler(&stderr, nil)),
	}
	ctx, cancel := context.WithTimeout(t.Context(), d)
	defer cancel()
	code := run(ctx, env, args)
	return cliResult{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// writeConfig writes a TOML configuration file and returns its path.
func writeConfig(t *testing.T, toml string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "worker.toml")
	if err := os.WriteFile(p, []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int {
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

// cliChild is the command running as a subprocess (see beMainEnv).
type cliChild struct {
	t      *testing.T
	cmd    *exec.Cmd
	stdout *lockedBuffer
	stderr *lockedBuffer
	done   chan struct{} // closed when the process has exited and its output is read
	err    error         // from cmd.Wait, once done is closed
}

// startCLI starts `tasker-runner args...` with the test's environment
// stripped of everything that configures tasker-runner or PostgreSQL, plus
// vars. The child is killed when the test ends, and its output logged if
// the test failed.
func startCLI(t *testing.T, vars map[string]string, args ...string) *cliChild {
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
	c := &cliChild{t: t, stdout: &lockedBuffer{}, stderr: &lockedBuffer{}, done: make(chan struct{})}
	c.cmd = exec.Command(exe, args...)
	c.cmd.Env = env
	c.cmd.Stdout = c.stdout
	c.cmd.Stderr = c.stderr
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("starting %v: %v", args, err)
	}
	go func() {
		c.err = c.cmd.Wait()
		close(c.done)
	}()
	t.Cleanup(func() {
		select {
		case <-c.done:
		default:
			_ = c.cmd.Process.Kill()
			<-c.done
		}
		if t.Failed() {
			t.Logf("tasker-runner %s: %v\n--- stdout:\n%s--- stderr:\n%s", strings.Join(args, " "), c.err, c.stdout, c.stderr)
		}
	})
	return c
}

func (c *cliChild) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// exitCode returns the exit code once the child has exited, or -1 when it
// died of a signal.
func (c *cliChild) exitCode() int {
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
func (c *cliChild) wait(d time.Duration) int {
	c.t.Helper()
	select {
	case <-c.done:
		return c.exitCode()
	case <-time.After(d):
		c.t.Fatalf("the child did not exit within %v", d)
		return -1
	}
}

// stop sends sig and checks that the child exits 0 within a few seconds.
func (c *cliChild) stop(sig os.Signal) {
	c.t.Helper()
	if err := c.cmd.Process.Signal(sig); err != nil {
		c.t.Fatalf("sending %v: %v", sig, err)
	}
	start := time.Now()
	if code := c.wait(10 * time.Second); code != 0 {
		c.t.Fatalf("after %v: exit code %d, want 0", sig, code)
	}
	c.t.Logf("stopped by %v in %v", sig, time.Since(start).Round(time.Millisecond))
}

// healthBody is the part of GET /health the tests look at.
type healthBody struct {
	Status string `json:"status"`
	Checks map[string]struct {
		Status string `json:"status"`
	} `json:"checks"`
}

// noKeepAlive leaves no idle connection (and goroutine) behind for goleak.
var noKeepAlive = &http.Client{
	Transport: &http.Transport{DisableKeepAlives: true},
	Timeout:   5 * time.Second,
}

// waitHealthy polls http://addr/health until it answers 200 with a healthy
// status and a healthy database check, the child exits, or time runs out.
func (c *cliChild) waitHealthy(addr string, timeout time.Duration) healthBody {
	c.t.Helper()
	url := "http://" + addr + "/health"
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	var last string
	for {
		if c.exited() {
			c.t.Fatalf("the child exited (code %d) before %s answered; last: %s", c.exitCode(), url, last)
		}
		body, err := getHealth(url)
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
func (c *cliChild) waitOutput(s string, timeout time.Duration) string {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()
	for {
		out := c.stdout.String()
		if strings.Contains(out, s) {
			return out
		}
		if c.exited() {
			c.t.Fatalf("the child exited (code %d) before printing %q", c.exitCode(), s)
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

func getHealth(url string) (healthBody, error) {
	var body healthBody
	resp, err := noKeepAlive.Get(url)
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

// webVars returns the variables that put the API on a free local port.
func webVars(t *testing.T) (vars map[string]string, addr string) {
	port := freePort(t)
	return map[string]string{
			"TASKER_WORKER_WEB_HOST":  "127.0.0.1",
			"TASKER_WORKER_WEB_PORT":  strconv.Itoa(port),
			"TASKER_WORKER_GRPC_HOST": "127.0.0.1",
			"TASKER_WORKER_GRPC_PORT": strconv.Itoa(freePort(t)),
		},
		net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
}
