package pgcluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// Environment of the re-executed test binary (see TestHelperProcess).
const (
	helperEnv     = "TASKER_PGCLUSTER_HELPER" // mode: "owner" or "start-stop"
	helperBaseEnv = "TASKER_PGCLUSTER_HELPER_BASE"
)

// TestHelperProcess is not a test: other tests re-execute the test binary to
// run it in a child process.
//
//   - owner: start a cluster, print its directory, URL and postmaster pid,
//     then block until stdin is closed (the parent SIGKILLs us instead).
//   - start-stop: start a cluster, query it, stop it, print "HELPER OK".
func TestHelperProcess(t *testing.T) {
	mode := os.Getenv(helperEnv)
	if mode == "" {
		t.Skip("helper process for other tests")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := Start(ctx, Config{BaseDir: os.Getenv(helperBaseEnv)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	switch mode {
	case "owner":
		fmt.Printf("DIR=%s\nURL=%s\nPID=%d\n", c.Dir(), c.URL("postgres"), postmasterPID(t, c))
		_, _ = io.Copy(io.Discard, os.Stdin)
	case "start-stop":
		var user string
		if err := queryRow(ctx, c.URL("postgres"), "SELECT current_user", &user); err != nil {
			t.Fatal(err)
		}
		if err := c.Stop(); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(c.Dir()); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("cluster directory still there after Stop: %v", err)
		}
		fmt.Printf("HELPER OK uid=%d db_user=%s dir=%s\n", os.Geteuid(), user, c.Dir())
	default:
		t.Fatalf("unknown helper mode %q", mode)
	}
}

func TestStartStop(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	began := time.Now()
	c, err := Start(ctx, Config{Settings: map[string]string{"max_connections": "50"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("cluster started in %v (PostgreSQL %d, %s)", time.Since(began).Round(time.Millisecond), c.Version(), c.Dir())
	t.Cleanup(func() { _ = c.Stop() })

	if c.Version() < MinVersion {
		t.Errorf("Version() = %d", c.Version())
	}
	if b, err := os.ReadFile(filepath.Join(c.Dir(), "data", "PG_VERSION")); err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(c.Version()) {
		t.Errorf("PG_VERSION = %q, %v; Version() = %d", b, err, c.Version())
	}
	var fsync, maxConn, user string
	var versionNum int
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		t.Fatal(err)
	}
	err = conn.QueryRow(ctx, `SELECT current_setting('fsync'), current_setting('max_connections'), current_user,
		current_setting('server_version_num')::int`).Scan(&fsync, &maxConn, &user, &versionNum)
	_ = conn.Close(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if fsync != "off" || maxConn != "50" || user != "postgres" || versionNum/10000 != c.Version() {
		t.Errorf("fsync=%s max_connections=%s user=%s version=%d; want off, 50 (from Settings), postgres, %d",
			fsync, maxConn, user, versionNum, c.Version())
	}

	pid := postmasterPID(t, c)
	began = time.Now()
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	t.Logf("cluster stopped in %v", time.Since(began).Round(time.Millisecond))
	if _, err := os.Stat(c.Dir()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("cluster directory still there after Stop: %v", err)
	}
	if processAlive(pid) {
		t.Errorf("postmaster %d still running after Stop", pid)
	}
	if err := c.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

func TestReaperCleansUpAfterOwnerIsKilled(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)

	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperProcess$")
	cmd.Env = append(os.Environ(), helperEnv+"=owner")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer stdin.Close()
	lines := startWithLines(t, cmd)
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()

	info := map[string]string{}
	for len(info) < 3 {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("helper exited before reporting its cluster (got %v)", info)
			}
			if k, v, found := strings.Cut(line, "="); found {
				info[k] = v
			} else {
				t.Logf("helper: %s", line)
			}
		case <-ctx.Done():
			t.Fatalf("helper did not report its cluster: %v", ctx.Err())
		}
	}
	dir, url := info["DIR"], info["URL"]
	pid, _ := strconv.Atoi(info["PID"])
	var one int
	if err := queryRow(ctx, url, "SELECT 1", &one); err != nil {
		t.Fatalf("the helper's cluster does not answer: %v", err)
	}

	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	killed := time.Now()
	waitFor(ctx, t, "the reaper to stop the server and remove "+dir, func() bool {
		_, err := os.Stat(dir)
		return errors.Is(err, os.ErrNotExist) && !processAlive(pid)
	})
	t.Logf("reaper cleaned up %v after the owner was killed", time.Since(killed).Round(time.Millisecond))
	if err := queryRow(ctx, url, "SELECT 1", &one); err == nil {
		t.Error("the server still answers after the reaper ran")
	}
}

func TestStartRemovesStaleDirectories(t *testing.T) {
	t.Parallel()
	ctx := testContext(t)
	base := sharedTempDir(t)

	// A cluster whose owner and reaper both died: kill the reaper, then
	// record an owner pid that no longer exists.
	stale, err := Start(ctx, Config{BaseDir: base, Fsync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = stale.Stop() })
	var fsync string
	if err := queryRow(ctx, stale.URL("postgres"), "SHOW fsync", &fsync); err != nil || fsync != "on" {
		t.Errorf("with Fsync: SHOW fsync = %q, %v; want on", fsync, err)
	}
	stalePID := postmasterPID(t, stale)
	stale.reaper.stop()
	stale.reaper = nil
	writeOwner(t, stale.Dir(), deadPID(t))

	// A directory whose owner is alive (us) must be left alone.
	liveDir := filepath.Join(base, dirPrefix+"live")
	if err := os.Mkdir(liveDir, 0o700); err != nil {
		t.Fatal(err)
	}
	writeOwner(t, liveDir, os.Getpid())

	c, err := Start(ctx, Config{BaseDir: base})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	if _, err := os.Stat(stale.Dir()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale cluster directory not removed: %v", err)
	}
	if processAlive(stalePID) {
		t.Errorf("stale postmaster %d still running", stalePID)
	}
	if _, err := os.Stat(liveDir); err != nil {
		t.Errorf("directory of a live owner was touched: %v", err)
	}
	if err := stale.Stop(); err != nil {
		t.Errorf("Stop of a cluster already cleaned up: %v", err)
	}
	if err := c.Stop(); err != nil {
		t.Error(err)
	}
}

func TestRunsAsNonRootUser(t *testing.T) {
	t.Parallel()
	if os.Geteuid() != 0 {
		t.Skip("not root: the other tests already run PostgreSQL as the current, non-root user")
	}
	ctx := testContext(t)
	nobody, err := user.Lookup("nobody")
	if err != nil {
		missingUser(t, "no nobody user to run PostgreSQL as: %v", err)
	}
	uid, _ := strconv.Atoi(nobody.Uid)
	gid, _ := strconv.Atoi(nobody.Gid)

	// The test binary usually sits in a directory only root can enter.
	dir := sharedTempDir(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "pgcluster.test")
	copyFile(t, exe, bin, 0o755)
	home, base := filepath.Join(dir, "home"), filepath.Join(dir, "base")
	for _, d := range []string{home, base} {
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(d, uid, gid); err != nil {
			t.Fatal(err)
		}
	}

	var out []byte
	// A parallel test forking while the copy was open for writing can make
	// exec fail with ETXTBSY until that child execs; try again briefly.
	for range 50 {
		cmd := exec.CommandContext(ctx, bin, "-test.run=^TestHelperProcess$", "-test.v")
		cmd.Dir = home
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "TMPDIR=" + base,
			helperEnv + "=start-stop", helperBaseEnv + "=" + base}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
		out, err = cmd.CombinedOutput()
		if !errors.Is(err, syscall.ETXTBSY) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil || !strings.Contains(string(out), "HELPER OK uid="+strconv.Itoa(uid)) {
		t.Fatalf("as nobody: %v\n%s", err, out)
	}
	entries, _ := os.ReadDir(base)
	if len(entries) > 0 {
		t.Errorf("left behind in %s: %v", base, entries)
	}
}

func TestFailedStartCleansUp(t *testing.T) {
	t.Parallel()
	base := sharedTempDir(t)
	var log strings.Builder
	_, err := Start(testContext(t), Config{BaseDir: base, Log: &log, Settings: map[string]string{"shared_buffers": "lots"}})
	if err == nil {
		t.Fatal("Start with an invalid setting succeeded")
	}
	t.Logf("Start: %v", err)
	if msg := err.Error(); !strings.HasPrefix(msg, "pgcluster: starting the server: ") || !strings.Contains(msg, `"shared_buffers"`) {
		t.Errorf("error lacks the server log tail: %v", err)
	}
	if !strings.Contains(log.String(), `"shared_buffers"`) {
		t.Errorf("server log not written to Config.Log: %q", log.String())
	}
	if entries, _ := os.ReadDir(base); len(entries) > 0 {
		t.Errorf("left behind in %s: %v", base, entries)
	}
}

func TestMissingBinaries(t *testing.T) {
	t.Parallel()
	_, err := Start(context.Background(), Config{BinDir: t.TempDir()})
	if !errors.Is(err, ErrNoBinaries) || !strings.Contains(err.Error(), "apt-get install postgresql") || !strings.Contains(err.Error(), "lacks initdb, pg_ctl, postgres") {
		t.Errorf("Start with an empty bin dir: %v", err)
	}
	t.Logf("Start: %v", err)
	if d := highestVersionDir([]string{filepath.Join(t.TempDir(), "*", "bin")}); d != "" {
		t.Errorf("highestVersionDir of nothing = %q", d)
	}
}

func TestHighestVersionDir(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	for _, v := range []string{"9", "14", "16", "17"} {
		d := filepath.Join(root, v, "bin")
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		progs := programs
		if v == "17" {
			progs = programs[:2] // incomplete: no postgres
		}
		for _, p := range progs {
			if err := os.WriteFile(filepath.Join(d, p), nil, 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	if got, want := highestVersionDir([]string{filepath.Join(root, "*", "bin")}), filepath.Join(root, "16", "bin"); got != want {
		t.Errorf("highestVersionDir = %q, want %q", got, want)
	}
}

func TestParseVersion(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]int{
		"postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)\n": 15,
		"postgres (PostgreSQL) 9.6.24":                           9,
		"postgres (PostgreSQL) 18beta1":                          18,
		"postgres (PostgreSQL) 17devel":                          17,
	} {
		if got, err := parseVersion(in); err != nil || got != want {
			t.Errorf("parseVersion(%q) = %d, %v; want %d", in, got, err, want)
		}
	}
	if _, err := parseVersion("something else"); err == nil {
		t.Error("parseVersion accepted garbage")
	}
}

func TestServerSettings(t *testing.T) {
	t.Parallel()
	settings, port, err := serverSettings(Config{Fsync: true, Settings: map[string]string{"Port": "6543", "search_path": "a, 'b'"}})
	if err != nil {
		t.Fatal(err)
	}
	conf := renderConf(settings)
	for _, want := range []string{"port = '6543'\n", "search_path = 'a, ''b'''\n", "listen_addresses = ''\n", "max_connections = '300'\n"} {
		if !strings.Contains(conf, want) {
			t.Errorf("conf lacks %q:\n%s", want, conf)
		}
	}
	if port != 6543 || strings.Contains(conf, "fsync") {
		t.Errorf("port = %d (want 6543), fsync in conf with Fsync set:\n%s", port, conf)
	}
	for _, bad := range []map[string]string{{"a\nb": "1"}, {"work_mem": "1\nfsync = on"}, {"port": "x"}} {
		if _, _, err := serverSettings(Config{Settings: bad}); err == nil {
			t.Errorf("serverSettings accepted %q", bad)
		}
	}
}

func TestURL(t *testing.T) {
	t.Parallel()
	c := &Cluster{dir: "/tmp/tasker-pg-42", port: defaultPort}
	if got, want := c.URL("my db"), "postgres://postgres@/my%20db?host=/tmp/tasker-pg-42/sock&port="+strconv.Itoa(defaultPort)+"&sslmode=disable"; got != want {
		t.Errorf("URL = %q, want %q", got, want)
	}
	c.port = 6543
	cfg, err := pgx.ParseConfig(c.URL("tasker"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Host != "/tmp/tasker-pg-42/sock" || cfg.Port != 6543 || cfg.Database != "tasker" || cfg.User != "postgres" {
		t.Errorf("parsed URL: host=%q port=%d database=%q user=%q", cfg.Host, cfg.Port, cfg.Database, cfg.User)
	}
}

// TestURLIgnoresPGEnvironment: a developer's PGPORT or PGUSER must not
// send the tests or the bench to another server's socket or role.
func TestURLIgnoresPGEnvironment(t *testing.T) {
	t.Setenv("PGPORT", "5499")
	t.Setenv("PGUSER", "someone")
	t.Setenv("PGHOST", "/elsewhere")
	t.Setenv("PGDATABASE", "other")
	c := &Cluster{dir: "/tmp/tasker-pg-42", port: defaultPort}
	cfg, err := pgx.ParseConfig(c.URL("tasker"))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Host != "/tmp/tasker-pg-42/sock" || cfg.Port != defaultPort || cfg.Database != "tasker" || cfg.User != "postgres" {
		t.Errorf("parsed URL with PG* set: host=%q port=%d database=%q user=%q", cfg.Host, cfg.Port, cfg.Database, cfg.User)
	}
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func queryRow(ctx context.Context, url, sql string, dest ...any) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	return conn.QueryRow(ctx, sql).Scan(dest...)
}

func postmasterPID(t testing.TB, c *Cluster) int {
	t.Helper()
	pid := readPostmasterPID(filepath.Join(c.Dir(), "data", "postmaster.pid"))
	if pid == 0 || !processAlive(pid) {
		t.Fatalf("no running postmaster in %s (pid %d)", c.Dir(), pid)
	}
	return pid
}

// waitFor polls cond until it holds, failing the test at ctx's deadline.
func waitFor(ctx context.Context, t *testing.T, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("timed out waiting for %s", what)
		case <-tick.C:
		}
	}
}

// startWithLines starts cmd and returns its stdout, line by line; the channel
// is closed when the process and everything it passed stdout to are gone.
func startWithLines(t *testing.T, cmd *exec.Cmd) <-chan string {
	t.Helper()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = w
	cmd.Stderr = w
	err = cmd.Start()
	_ = w.Close()
	if err != nil {
		_ = r.Close()
		t.Fatal(err)
	}
	lines := make(chan string, 1000)
	go func() {
		defer close(lines)
		defer r.Close()
		s := bufio.NewScanner(r)
		for s.Scan() {
			select {
			case lines <- s.Text():
			default: // nobody is listening any more
			}
		}
	}()
	return lines
}

// sharedTempDir returns a new directory under /tmp that other users can
// enter (and, like /tmp, create in), removed at the end of the test. It must
// be short, to keep socket paths short, and reachable by the postgres user.
func sharedTempDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("/tmp", "pgcluster-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o1777); err != nil {
		t.Fatal(err)
	}
	return dir
}

func writeOwner(t *testing.T, dir string, pid int) {
	t.Helper()
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// deadPID returns the pid of a process that has exited and been reaped.
func deadPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("/bin/true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	src, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_EXCL, mode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	if err := dst.Close(); err != nil {
		t.Fatal(err)
	}
}

// missingUser reports a missing user account a test needs: a skip on a
// developer's machine, a failure under CI (CI=true in the environment),
// where the machine is expected to have it.
func missingUser(t testing.TB, format string, args ...any) {
	t.Helper()
	if ci, _ := strconv.ParseBool(os.Getenv("CI")); ci {
		t.Fatalf("FAILING (CI=true: a test prerequisite must not be missing): "+format, args...)
	}
	t.Skipf(format, args...)
}
