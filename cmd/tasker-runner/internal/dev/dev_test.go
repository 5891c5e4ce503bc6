package dev

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/sethvargo/go-envconfig"

	"github.com/tasker-runner/tasker-runner/cmd/tasker-runner/internal/cli"
	"github.com/tasker-runner/tasker-runner/cmd/tasker-runner/internal/clitest"
	"github.com/tasker-runner/tasker-runner/runner/store/pgtest"
)

// devDemoTimeout bounds how long dev may take to print "Press Ctrl-C to
// stop." after the first order: the handler services build first (the
// TypeScript compiler comes from npm ci when node_modules is stale).
const devDemoTimeout = 4 * time.Minute

// TestDevThrowawayCluster is the `make run` path: without DATABASE_URL, dev
// starts its own PostgreSQL and the example handler services, runs an order,
// an approval and a batch ETL across the languages (naming which ran each
// step) and says where the API is; Ctrl-C (SIGINT) stops it all and leaves no process or directory.
func TestDevThrowawayCluster(t *testing.T) {
	t.Parallel()
	vars, addr := clitest.WebVars(t)
	c := clitest.Start(t, vars, "dev")
	c.WaitHealthy(addr, clitest.StartupTimeout)
	out := c.WaitOutput("Press Ctrl-C to stop.", devDemoTimeout)

	m := regexp.MustCompile(`throwaway cluster in (\S+?), removed on exit`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("dev does not print its cluster directory:\n%s", out)
	}
	dir := m[1]
	if !filepath.IsAbs(dir) || !strings.Contains(filepath.Base(dir), "tasker-pg-") {
		t.Fatalf("unexpected cluster directory %q", dir)
	}
	pid := postmasterPID(t, filepath.Join(dir, "data", "postmaster.pid"))
	if !pgAlive(pid) {
		t.Fatalf("postmaster %d of %s is not running", pid, dir)
	}
	if procs := processesMentioning(dir); len(procs) == 0 {
		t.Fatalf("no process mentions %s: the check below would prove nothing", dir)
	}

	services, tmp := checkDevDemo(t, out, "")
	checkDevDynamic(t, out, addr)
	checkTryCommand(t, out, addr)
	if dirs := ownedDirs(c.Cmd.Process.Pid, "tasker-dev-"); len(dirs) != 1 || dirs[0] != tmp {
		t.Errorf("dev's own directories %v, want [%s]", dirs, tmp)
	}
	for _, want := range []string{"http://" + addr + "/docs", "http://" + addr + "/metrics", "http://" + addr + "/v1/status", "gRPC      " + vars["TASKER_WORKER_GRPC_HOST"] + ":" + vars["TASKER_WORKER_GRPC_PORT"]} {
		if !strings.Contains(out, want) {
			t.Errorf("dev does not say where %s is:\n%s", want, out)
		}
	}

	c.Stop(syscall.SIGINT)
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the cluster directory %s is still there after exit (stat: %v)", dir, err)
	}
	if pgAlive(pid) {
		t.Errorf("postmaster %d of %s is still running after exit", pid, dir)
	}
	if procs := processesMentioning(dir); len(procs) > 0 {
		t.Errorf("processes of %s remain after exit: %v", dir, procs)
	}
	if dirs := clusterDirsOf(c.Cmd.Process.Pid); len(dirs) > 0 {
		t.Errorf("cluster directories of the child remain: %v", dirs)
	}
	if !strings.Contains(c.Stderr.String(), "removed") {
		t.Errorf("the log does not say the cluster was removed:\n%s", c.Stderr)
	}
	checkDevServicesGone(t, services, tmp)
}

// devChild is an example handler service as dev reports it.
type devChild struct {
	label string
	pid   int
	url   string
}

// checkDevDemo checks the first order's output: every language whose
// runtime this machine has ran its step in its own service, the others fell
// back to the Go service, loudly. It returns the services (alive and
// answering, except the one named killed) and dev's temporary directory.
func checkDevDemo(t *testing.T, out, killed string) (map[string]devChild, string) {
	t.Helper()
	m := regexp.MustCompile(`their files are in (\S+), removed on exit`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("dev does not print its temporary directory:\n%s", out)
	}
	tmp := m[1]
	if _, err := os.Stat(tmp); err != nil {
		t.Fatalf("dev's temporary directory: %v", err)
	}
	services := map[string]devChild{}
	for _, m := range regexp.MustCompile(`(?m)^  (\w+)\s+pid (\d+)\s+(http://127\.0\.0\.1:\d+)`).FindAllStringSubmatch(out, -1) {
		pid, _ := strconv.Atoi(m[2])
		services[m[1]] = devChild{label: m[1], pid: pid, url: m[3]}
	}
	for _, l := range devLanguages {
		s, running := services[l.label]
		who := l.label
		switch {
		case running && l.label == killed:
		case running:
			if !pgAlive(s.pid) {
				t.Errorf("the %s service (pid %d) is not running", l.label, s.pid)
			}
			resp, err := clitest.NoKeepAlive.Get(s.url + "/health")
			if err != nil {
				t.Errorf("the %s service does not answer: %v", l.label, err)
			} else {
				_ = resp.Body.Close()
			}
		case l.key == "go":
			t.Errorf("the Go service is not running, though the tests run with Go:\n%s", out)
		default:
			probe := exec.Command(l.probe[0], l.probe[1:]...)
			if probe.Run() == nil {
				t.Errorf("the %s service is not running, though its runtime is here (%s):\n%s", l.label, strings.Join(l.probe, " "), out)
			}
			report := t.Logf
			if underCI() {
				report = t.Errorf // CI=true: .ci/ensure-runtimes must have installed it
			}
			report("\n%s\n## The %s runtime is missing here (%s fails): its step %s ran in the Go service.\n## Install it (%s) to run it in %s.\n%s",
				strings.Repeat("#", 90), l.label, strings.Join(l.probe, " "), l.step, l.install, l.label, strings.Repeat("#", 90))
			if !strings.Contains(out, "FALL BACK") || !regexp.MustCompile(`(?m)^  `+l.label+`\s+NOT RUNNING`).MatchString(out) {
				t.Errorf("the %s fallback is not reported loudly:\n%s", l.label, out)
			}
			who = `Go\*`
		}
		line := regexp.MustCompile(`(?m)^  ✓ ORD-1001 ` + l.step + `\s+` + who + `\s+attempt \d+`)
		if !line.MatchString(out) {
			t.Errorf("no progress line says %s ran %s:\n%s", who, l.step, out)
		}
	}
	if !regexp.MustCompile(`(?m)^  ↻ ORD-1001 reserve_stock\s+\S+\s+attempt 1 of \d+ failed, retrying later: warehouse_busy`).MatchString(out) {
		t.Errorf("the retry of reserve_stock (503 on the first attempt) is not shown:\n%s", out)
	}
	if !regexp.MustCompile(`(?m)^task \S+ ORD-1001 COMPLETE`).MatchString(out) {
		t.Errorf("the order did not complete:\n%s", out)
	}
	return services, tmp
}

// checkDevServicesGone: after dev exits, no handler service, nothing in
// their process groups and no process using dev's directory remains, and
// the directory is gone.
func checkDevServicesGone(t *testing.T, services map[string]devChild, tmp string) {
	t.Helper()
	for _, s := range services {
		if pgAlive(s.pid) {
			t.Errorf("the %s service (pid %d) still runs after dev exited", s.label, s.pid)
		}
		if err := syscall.Kill(-s.pid, 0); !errors.Is(err, syscall.ESRCH) {
			t.Errorf("the process group of the %s service (%d) still has members after dev exited (kill: %v)", s.label, s.pid, err)
		}
	}
	if procs := processesMentioning(tmp); len(procs) > 0 {
		t.Errorf("processes using %s remain after exit: %v", tmp, procs)
	}
	if _, err := os.Stat(tmp); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("dev's directory %s is still there after exit (stat: %v)", tmp, err)
	}
}

// TestDevKillHandlerWithDatabaseURL is the kill-a-handler demo (dev
// --chaos), against DATABASE_URL: dev uses that database (no cluster of its
// own), kills the Go service while orders run; the runner retries the
// failed calls, the endpoint's breaker opens (in the output and in
// /metrics) and holds the steps back without using their attempts, and
// every order completes once the service is back. On exit dev removes its
// endpoint rows from the database it does not own.
func TestDevKillHandlerWithDatabaseURL(t *testing.T) {
	t.Parallel()
	vars, addr := clitest.WebVars(t)
	url := pgtest.EmptyURL(t)
	vars["DATABASE_URL"] = url
	c := clitest.Start(t, vars, "dev", "--chaos", "go", "--restart-after", "2s")
	out := c.WaitOutput("chaos: killing the Go handler service", devDemoTimeout)
	if strings.Contains(out, "throwaway") || strings.Contains(c.Stderr.String(), "throwaway") {
		t.Errorf("dev started a cluster of its own despite DATABASE_URL:\n%s", out)
	}
	services, tmp := checkDevDemo(t, out, "Go")
	killed := services["Go"].pid

	// The breaker opens while the service is down, as /metrics shows.
	const charge = `endpoint="examples/order_fulfillment.charge"`
	deadline := time.Now().Add(30 * time.Second)
	for clitest.MetricValue(t, addr, "tasker_breaker_state", charge) != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("tasker_breaker_state{%s} did not become 2 (open) within 30s:\n%s", charge, c.Stdout)
		}
		select {
		case <-time.After(20 * time.Millisecond): // polling /metrics; nothing to wait on
		case <-c.Done():
			t.Fatalf("dev exited (code %d) during the chaos round", c.ExitCode())
		}
	}

	out = c.WaitOutput("Press Ctrl-C to stop.", 2*time.Minute)
	for name, re := range map[string]string{
		"a failed call retried":          `(?m)^  ↻ ORD-100[2-4] charge_payment\s+Go\s+attempt \d+ of \d+ failed, retrying later: .*connection refused`,
		"the breaker opening":            `(?m)^  ⚡ breaker of order_fulfillment\.charge \(Go, .*\): closed -> OPEN`,
		"a step held back, attempt kept": `(?m)^  ⏸ ORD-100[2-4] charge_payment\s+Go\s+not called, breaker open: back in the queue, attempt \d+ not used`,
		"the service restarted":          `(?m)^  ✓ the Go handler service is back: pid \d+`,
		"the breaker closing":            `(?m)^  ⚡ breaker of order_fulfillment\.charge \(Go, .*\): \S+ -> CLOSED`,
		"the summary":                    `(?m)^chaos: 3 of 3 orders COMPLETE`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("the output does not show %s (%s):\n%s", name, re, out)
		}
	}
	for _, id := range []string{"ORD-1002", "ORD-1003", "ORD-1004"} {
		if !regexp.MustCompile(`(?m)^  ✓ ` + id + ` charge_payment\s+Go\s+attempt \d+`).MatchString(out) {
			t.Errorf("%s was not charged by the Go service:\n%s", id, out)
		}
		if !regexp.MustCompile(`(?m)^task \S+ ` + id + ` COMPLETE`).MatchString(out) {
			t.Errorf("%s did not complete:\n%s", id, out)
		}
	}
	if pgAlive(killed) {
		t.Errorf("the killed Go service (pid %d) still runs", killed)
	}
	m := regexp.MustCompile(`the Go handler service is back: pid (\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatal("no restarted Go service")
	}
	restarted, _ := strconv.Atoi(m[1])
	services["Go (restarted)"] = devChild{label: "Go (restarted)", pid: restarted}

	for _, want := range []struct{ name, labels string }{
		{"tasker_steps_retried_total", `handler="order_fulfillment.charge"`},
		{"tasker_steps_released_total", `handler="order_fulfillment.charge"`},
		{"tasker_callout_rejected_total", charge},
	} {
		if v := clitest.MetricValue(t, addr, want.name, want.labels); v < 1 {
			t.Errorf("%s{%s} = %v, want at least 1", want.name, want.labels, v)
		}
	}
	if v := clitest.MetricValue(t, addr, "tasker_breaker_state", charge); v != 0 {
		t.Errorf("tasker_breaker_state{%s} = %v after the orders completed, want 0 (closed)", charge, v)
	}

	c.Stop(syscall.SIGINT)
	checkDevServicesGone(t, services, tmp)
	clitest.CheckMigrateStatus(t, clitest.Run(t, map[string]string{"DATABASE_URL": url}, "migrate", "status"), "applied")
	if n := countRows(t, url, "tasker.handler_endpoints"); n != 0 {
		t.Errorf("%d endpoint rows remain in the database after dev exited, want 0", n)
	}
}

// TestDevFallsBackWhenARuntimeIsMissing: with no working Python, Ruby or
// Node (stand-ins that fail come first on PATH), dev says so loudly and runs
// their steps in the Go service; which still runs its own too, and the
// order, the approval and the batch ETL complete with the right results.
func TestDevFallsBackWhenARuntimeIsMissing(t *testing.T) {
	t.Parallel()
	bin := t.TempDir()
	for _, name := range []string{"python3", "ruby", "node"} {
		if err := os.WriteFile(filepath.Join(bin, name), []byte("#!/bin/sh\necho 'no "+name+" here' >&2\nexit 1\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	vars, addr := clitest.WebVars(t)
	vars["DATABASE_URL"] = pgtest.EmptyURL(t)
	vars["PATH"] = bin + string(os.PathListSeparator) + os.Getenv("PATH")
	c := clitest.Start(t, vars, "dev")
	out := c.WaitOutput("Press Ctrl-C to stop.", devDemoTimeout)
	res := []string{
		`(?m)^  ↻ ORD-1001 reserve_stock\s+Go\*\s+attempt 1 of \d+ failed, retrying later: warehouse_busy`,
		`(?m)^  ✓ ORD-1001 charge_payment\s+Go\s+attempt 1`,
		`(?m)^task \S+ ORD-1001 COMPLETE`,
	}
	for _, l := range devLanguages {
		if l.key == "go" {
			continue
		}
		res = append(res,
			`(?m)^  `+l.label+`\s+NOT RUNNING: `+regexp.QuoteMeta(l.steps())+` run by the Go service`,
			`(?m)^## The `+l.label+` handler service is not running: its runtime is missing \(.*no \S+ here.*\)`,
			`(?m)^## Its steps `+regexp.QuoteMeta(l.steps())+` \(`+regexp.QuoteMeta(l.callable)+`, .*\) FALL BACK to the Go handler service`,
			`(?m)^  ✓ ORD-1001 `+l.step+`\s+Go\*\s+attempt \d+`)
	}
	for _, re := range res {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("the output does not match %s:\n%s", re, out)
		}
	}
	if !strings.Contains(c.Stderr.String(), "FALL BACK") {
		t.Errorf("the log does not warn about the fallback:\n%s", c.Stderr)
	}
	checkDevDynamic(t, out, addr)
	c.Stop(syscall.SIGINT)
}

// countRows counts the rows of table in the database at url.
func countRows(t *testing.T, url, table string) int {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(t.Context(), "SELECT count(*) FROM "+table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestDevInterruptedWhileStarting: Ctrl-C while the throwaway cluster is
// still being created is a clean stop too, and leaves nothing behind.
func TestDevInterruptedWhileStarting(t *testing.T) {
	t.Parallel()
	vars, _ := clitest.WebVars(t)
	c := clitest.Start(t, vars, "dev")
	// The cluster directory appears (with the owner's pid in it) before
	// initdb runs, and main handles SIGINT before dev starts: a signal now
	// lands while the cluster starts, or soon after.
	deadline := time.Now().Add(clitest.StartupTimeout)
	var dirs []string
	for len(dirs) == 0 {
		if c.Exited() {
			t.Fatalf("dev exited (code %d) before creating its cluster", c.ExitCode())
		}
		if time.Now().After(deadline) {
			t.Fatalf("dev created no cluster directory within %v", clitest.StartupTimeout)
		}
		time.Sleep(5 * time.Millisecond) // polling the file system; nothing to wait on
		dirs = clusterDirsOf(c.Cmd.Process.Pid)
	}
	devDirs := ownedDirs(c.Cmd.Process.Pid, "tasker-dev-")
	c.Stop(syscall.SIGINT)
	for _, dir := range append(dirs, devDirs...) {
		if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("the cluster directory %s is still there after exit (stat: %v)", dir, err)
		}
		if procs := processesMentioning(dir); len(procs) > 0 {
			t.Errorf("processes of %s remain after exit: %v", dir, procs)
		}
	}
	if log := c.Stderr.String(); strings.Contains(log, "initdb") || !strings.Contains(log, "stopped while starting") {
		t.Errorf("want the start-up reported as interrupted, not as an error:\n%s", log)
	}
}

// clusterDirsOf returns the throwaway cluster directories that process pid
// owns (pgcluster records the owner's pid in each, and creates them under
// /tmp when running as root, else under the temporary directory).
func clusterDirsOf(pid int) []string {
	base := os.TempDir()
	if os.Geteuid() == 0 {
		base = "/tmp"
	}
	return ownedDirs(pid, filepath.Join(base, "tasker-pg-"))
}

// ownedDirs returns the directories named prefix* whose owner.pid holds pid
// (pgcluster's, and dev's for its handler services, which are in the
// temporary directory unless prefix is a path).
func ownedDirs(pid int, prefix string) []string {
	if !filepath.IsAbs(prefix) {
		prefix = filepath.Join(os.TempDir(), prefix)
	}
	matches, _ := filepath.Glob(prefix + "*")
	var dirs []string
	for _, dir := range matches {
		b, err := os.ReadFile(filepath.Join(dir, "owner.pid"))
		if err == nil && strings.TrimSpace(string(b)) == strconv.Itoa(pid) {
			dirs = append(dirs, dir)
		}
	}
	return dirs
}

func postmasterPID(t *testing.T, file string) int {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || pid <= 0 {
		t.Fatalf("%s: no pid on its first line: %q", file, b)
	}
	return pid
}

// pgAlive reports whether pid is a live (not zombie) process. EPERM means
// it exists but belongs to someone else.
func pgAlive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		// No /proc (not Linux): trust kill(2).
		return !errors.Is(err, fs.ErrNotExist) || !procMounted()
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || i+2 >= len(s) || (s[i+2] != 'Z' && s[i+2] != 'X')
}

func procMounted() bool {
	_, err := os.Stat("/proc/self/cmdline")
	return err == nil
}

// processesMentioning returns the pids of the processes whose command line
// mentions dir (the postmaster runs with -D dir/data, the reaper with dir as
// an argument). Empty without /proc.
func processesMentioning(dir string) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && bytes.Contains(b, []byte(dir)) && pgAlive(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// underCI reports whether the tests run under CI (CI set to a true value, as
// CI services and .ci/run set it): a missing example runtime is then a
// failure, not a note.
func underCI() bool {
	ci, _ := strconv.ParseBool(os.Getenv("CI"))
	return ci
}

// checkTryCommand runs the first command dev prints under "Try:" as a user
// pasting it into another terminal would: without TASKER_API_URL, against
// this dev's API on a port that is not the client's default. It must reach
// it (dev adds --api) and follow the task to the end.
func checkTryCommand(t *testing.T, out, addr string) {
	t.Helper()
	m := regexp.MustCompile(`(?m)^Try:\n  bin/tasker-runner (.+)$`).FindStringSubmatch(out)
	if m == nil {
		t.Errorf("dev prints no Try: command:\n%s", out)
		return
	}
	args := shellWords(t, m[1])
	if i := slices.Index(args, "--api"); i < 0 || i+1 >= len(args) || args[i+1] != "http://"+addr {
		t.Errorf("the printed command does not name the API at http://%s (not the default address): %q", addr, m[1])
	}
	r := clitest.Run(t, nil, args...)
	if r.Code != 0 || !regexp.MustCompile(`(?m)^state +complete`).MatchString(r.Stdout) {
		t.Errorf("the printed command %q does not work as printed: %v", m[1], r)
	}
}

// shellWords splits a command line as sh would, for the quoting dev prints:
// words separated by spaces, single quotes keeping everything up to the
// next single quote.
func shellWords(t *testing.T, line string) []string {
	t.Helper()
	var words []string
	var w strings.Builder
	inWord, quoted := false, false
	for _, r := range line {
		switch {
		case quoted && r == '\'':
			quoted = false
		case quoted:
			w.WriteRune(r)
		case r == '\'':
			quoted, inWord = true, true
		case r == ' ':
			if inWord {
				words = append(words, w.String())
				w.Reset()
				inWord = false
			}
		default:
			w.WriteRune(r)
			inWord = true
		}
	}
	if quoted {
		t.Fatalf("unterminated quote in %q", line)
	}
	if inWord {
		words = append(words, w.String())
	}
	return words
}

func TestDevClientFlags(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		addr   string
		tls    bool
		envURL string
		want   string
	}{
		{addr: "127.0.0.1:8081", want: ""},
		{addr: "[::1]:8081", want: ""},
		{addr: "0.0.0.0:8081", want: ""}, // shown as localhost:8081
		{addr: "127.0.0.1:9000", want: " --api http://127.0.0.1:9000"},
		{addr: "10.1.2.3:8081", want: " --api http://10.1.2.3:8081"},
		{addr: "127.0.0.1:8081", tls: true, want: " --api https://127.0.0.1:8081"},
		// TASKER_API_URL would send the client elsewhere.
		{addr: "127.0.0.1:8081", envURL: "http://api.example:8081", want: " --api http://127.0.0.1:8081"},
		{addr: "127.0.0.1:9000", envURL: "http://127.0.0.1:9000", want: ""},
	} {
		d := &devDemo{apiAddr: tc.addr, env: &cli.Env{Lookup: envconfig.MapLookuper(nil)}}
		if tc.envURL != "" {
			d.env.Lookup = envconfig.MapLookuper(map[string]string{"TASKER_API_URL": tc.envURL})
		}
		if tc.tls {
			d.cfg.Worker.Web.TLS.CertFile, d.cfg.Worker.Web.TLS.KeyFile = "/c.pem", "/k.pem"
		}
		if got := d.clientFlags(); got != tc.want {
			t.Errorf("API at %s (tls %v, TASKER_API_URL %q): %q, want %q", tc.addr, tc.tls, tc.envURL, got, tc.want)
		}
	}
}
