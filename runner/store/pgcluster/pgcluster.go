// Package pgcluster starts and owns a throwaway PostgreSQL cluster built from
// the PostgreSQL binaries installed on the machine. The test harness, the
// `tasker-runner dev` command and the benchmark use it when no database URL
// is given.
//
// A cluster lives in one temporary directory (data, Unix socket, server log)
// and listens on a Unix socket only, with trust authentication for the
// `postgres` role. [Cluster.Stop] stops the server and removes the directory.
// When the owning process dies without calling Stop (a panic, os.Exit,
// SIGKILL), a small reaper process notices and does the same; a later
// [Start] also removes directories left behind by dead owners.
//
// initdb and the server refuse to run as root. When the current user is root,
// pgcluster runs them as the `postgres` OS user (created by the distribution
// packages), so the temporary directory must be reachable by that user.
package pgcluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// MinVersion is the oldest PostgreSQL major version tasker-runner supports.
const MinVersion = 14

// Config says how to build a cluster. The zero value is ready to use.
type Config struct {
	// BinDir is the directory holding initdb, pg_ctl and postgres. By default
	// it is the directory the three resolve to on PATH (following symlinks,
	// so they come from one installation), else the highest
	// /usr/lib/postgresql/*/bin.
	BinDir string
	// BaseDir is where the cluster's temporary directory is created. It
	// defaults to os.TempDir(), or /tmp when running as root: the postgres
	// user must be able to enter it, and to write in it for the reaper to
	// remove the cluster directory. Like /tmp, a tmpfs such as /dev/shm
	// qualifies. The socket path must stay under about 100 bytes.
	BaseDir string
	// Fsync keeps PostgreSQL's durability settings. By default (false) fsync,
	// synchronous_commit and full_page_writes are off, which is what tests
	// want; benchmarks set it for honest figures.
	Fsync bool
	// Settings are extra postgresql.conf settings. They override ours.
	Settings map[string]string
	// Log receives the output of initdb and the server log when starting
	// fails. By default it is discarded; errors carry a tail of it anyway.
	Log io.Writer
}

// Cluster is a running throwaway PostgreSQL server. Its methods are safe for
// concurrent use.
type Cluster struct {
	dir     string
	binDir  string
	version int
	port    int
	as      *osUser
	log     io.Writer

	reaper *reaper

	stopOnce sync.Once
	stopErr  error
}

// Layout of the cluster directory. Names are short on purpose: the socket
// path must fit in sockaddr_un.
const (
	dirPrefix    = "tasker-pg-"
	ownerFile    = "owner.pid"  // pid of the owning process, for stale-directory cleanup
	dataSubdir   = "data"       // PGDATA
	sockSubdir   = "sock"       // unix_socket_directories
	serverLog    = "server.log" // pg_ctl -l
	defaultPort  = 5432
	maxSocketLen = 103 // sun_path is 104 bytes on macOS and BSDs, 108 on Linux; keep room for the NUL
)

// Start creates, configures and starts a new cluster. The caller must call
// [Cluster.Stop] when done; if the process dies first, the cluster is removed
// by its reaper. ctx bounds the whole start-up.
func Start(ctx context.Context, cfg Config) (*Cluster, error) {
	logw := cfg.Log
	if logw == nil {
		logw = io.Discard
	}
	binDir, err := findBinDir(cfg.BinDir)
	if err != nil {
		return nil, err
	}
	as, err := runAs()
	if err != nil {
		return nil, err
	}
	version, err := serverVersion(ctx, binDir)
	if err != nil {
		return nil, err
	}
	if version < MinVersion {
		return nil, fmt.Errorf("pgcluster: PostgreSQL %d in %s is too old: tasker-runner needs %d or newer (install a newer postgresql package or set the bin dir)",
			version, binDir, MinVersion)
	}
	settings, port, err := serverSettings(cfg)
	if err != nil {
		return nil, err
	}

	base := cfg.BaseDir
	if base == "" {
		base = os.TempDir()
		if as != nil {
			base = "/tmp"
		}
	}
	removeStale(ctx, base, binDir, logw)

	dir, err := os.MkdirTemp(base, dirPrefix+"*")
	if err != nil {
		return nil, fmt.Errorf("pgcluster: creating the cluster directory: %w", err)
	}
	// Record the owner at once: if we die before the reaper runs, a later
	// Start removes the directory (one without this file is never touched).
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		_ = os.RemoveAll(dir)
		return nil, fmt.Errorf("pgcluster: %w", err)
	}
	c := &Cluster{dir: dir, binDir: binDir, version: version, port: port, as: as, log: logw}
	if err := c.start(ctx, settings); err != nil {
		c.cleanupAfterFailedStart()
		return nil, err
	}
	return c, nil
}

func (c *Cluster) start(ctx context.Context, settings map[string]string) error {
	sock := c.socketDir()
	if n := len(filepath.Join(sock, ".s.PGSQL."+strconv.Itoa(c.port))); n > maxSocketLen {
		return fmt.Errorf("pgcluster: the Unix socket path under %s would be %d bytes, over the limit of %d: use a shorter base dir such as /tmp",
			c.dir, n, maxSocketLen)
	}
	if err := os.Mkdir(sock, 0o700); err != nil {
		return fmt.Errorf("pgcluster: %w", err)
	}
	if c.as != nil {
		for _, p := range []string{c.dir, sock} {
			if err := os.Chown(p, c.as.uid, c.as.gid); err != nil {
				return fmt.Errorf("pgcluster: handing %s to the %s user: %w", p, c.as.name, err)
			}
		}
	}

	out, err := c.run(ctx, c.bin("initdb"),
		"-D", c.dataDir(), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C",
		"--no-sync", "--no-instructions")
	if err != nil {
		_, _ = c.log.Write(out)
		hint := ""
		if c.as != nil {
			hint = fmt.Sprintf(" (initdb runs as the %s user, which must be able to reach %s)", c.as.name, c.dir)
		}
		return fmt.Errorf("pgcluster: initdb%s: %w: %s", hint, err, tail(out))
	}

	settings["unix_socket_directories"] = sock
	if err := appendFile(filepath.Join(c.dataDir(), "postgresql.conf"), renderConf(settings)); err != nil {
		return fmt.Errorf("pgcluster: writing postgresql.conf: %w", err)
	}

	timeout := 60 * time.Second
	if d, ok := ctx.Deadline(); ok {
		timeout = max(time.Until(d), time.Second)
	}
	out, err = c.run(ctx, c.bin("pg_ctl"), "start", "-w", "-s",
		"-t", strconv.Itoa(int(timeout.Seconds())),
		"-D", c.dataDir(), "-l", filepath.Join(c.dir, serverLog))
	if err != nil {
		slog, _ := os.ReadFile(filepath.Join(c.dir, serverLog))
		_, _ = c.log.Write(out)
		_, _ = c.log.Write(slog)
		return fmt.Errorf("pgcluster: starting the server: %w: %s%s", err, tail(out), tailSection("server log", slog))
	}

	r, err := startReaper(c)
	if err != nil {
		return err
	}
	c.reaper = r
	return nil
}

// cleanupAfterFailedStart removes what a failed Start created. It uses a fresh
// context: the caller's may be what failed.
func (c *Cluster) cleanupAfterFailedStart() {
	if c.reaper != nil {
		c.reaper.stop()
	}
	if _, err := os.Stat(filepath.Join(c.dataDir(), "postmaster.pid")); err == nil {
		_ = c.stopServer()
	}
	_ = os.RemoveAll(c.dir)
}

// URL returns a pgx-compatible connection URL for the given database, over
// the cluster's Unix socket, as the postgres superuser. The port is always
// given (it names the socket): left out, pgx would take PGPORT from the
// environment of whoever runs the tests or the bench.
func (c *Cluster) URL(database string) string {
	q := "host=" + strings.ReplaceAll(url.QueryEscape(c.socketDir()), "%2F", "/") + "&port=" + strconv.Itoa(c.port)
	return "postgres://postgres@/" + url.PathEscape(database) + "?" + q + "&sslmode=disable"
}

// Dir returns the cluster's temporary directory. It holds the data directory,
// the socket directory and the server log, and is removed by Stop.
func (c *Cluster) Dir() string { return c.dir }

// Version returns the server's major version, such as 15.
func (c *Cluster) Version() int { return c.version }

// Stop stops the server and removes the cluster directory. It is idempotent:
// later calls return the first call's result.
func (c *Cluster) Stop() error {
	c.stopOnce.Do(func() { c.stopErr = c.stop() })
	return c.stopErr
}

func (c *Cluster) stop() error {
	// The reaper goes first so that it never races us for the cleanup.
	if c.reaper != nil {
		c.reaper.stop()
	}
	var errs []error
	if err := c.stopServer(); err != nil {
		errs = append(errs, err)
	}
	if err := os.RemoveAll(c.dir); err != nil {
		errs = append(errs, fmt.Errorf("pgcluster: removing %s: %w", c.dir, err))
	}
	return errors.Join(errs...)
}

// stopServer stops the postmaster: a fast shutdown, then an immediate one,
// then SIGKILL. A server that is not running is not an error.
func (c *Cluster) stopServer() error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	pidFile := filepath.Join(c.dataDir(), "postmaster.pid")
	pid := readPostmasterPID(pidFile)
	if pid == 0 || !processAlive(pid) {
		return nil
	}
	out, err := c.run(ctx, c.bin("pg_ctl"), "stop", "-D", c.dataDir(), "-m", "fast", "-w", "-s", "-t", "30")
	if err == nil {
		return nil
	}
	out2, err2 := c.run(ctx, c.bin("pg_ctl"), "stop", "-D", c.dataDir(), "-m", "immediate", "-w", "-s", "-t", "10")
	if err2 == nil {
		return nil
	}
	if killProcess(pid) == nil && waitGone(ctx, pid) {
		return nil
	}
	return fmt.Errorf("pgcluster: stopping the server (pid %d): %w: %s; immediate: %s", pid, err, tail(out), tail(out2))
}

func waitGone(ctx context.Context, pid int) bool {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for processAlive(pid) {
		select {
		case <-ctx.Done():
			return false
		case <-t.C:
		}
	}
	return true
}

func (c *Cluster) dataDir() string   { return filepath.Join(c.dir, dataSubdir) }
func (c *Cluster) socketDir() string { return filepath.Join(c.dir, sockSubdir) }
func (c *Cluster) bin(name string) string {
	return filepath.Join(c.binDir, name)
}

// run runs a PostgreSQL program as the cluster's OS user, from the cluster
// directory, and returns its combined output.
func (c *Cluster) run(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := c.as.command(ctx, c.dir, name, args...)
	var buf bytes.Buffer
	cmd.Stdout = &buf
	cmd.Stderr = &buf
	err := cmd.Run()
	return buf.Bytes(), err
}

// serverSettings returns the postgresql.conf settings for cfg, and the port
// the server will use (it names the socket file). unix_socket_directories is
// added once the directory exists.
func serverSettings(cfg Config) (settings map[string]string, port int, err error) {
	settings = map[string]string{
		"listen_addresses":        "",
		"port":                    strconv.Itoa(defaultPort),
		"max_connections":         "300",
		"shared_buffers":          "128MB",
		"unix_socket_permissions": "0700",
		"logging_collector":       "off",
		"log_min_messages":        "warning",
	}
	if !cfg.Fsync {
		settings["fsync"] = "off"
		settings["synchronous_commit"] = "off"
		settings["full_page_writes"] = "off"
	}
	for k, v := range cfg.Settings {
		if !settingName.MatchString(k) {
			return nil, 0, fmt.Errorf("pgcluster: invalid setting name %q", k)
		}
		if strings.ContainsAny(v, "\n\r\x00") {
			return nil, 0, fmt.Errorf("pgcluster: setting %s: value must be on one line", k)
		}
		settings[strings.ToLower(k)] = v
	}
	port, err = strconv.Atoi(settings["port"])
	if err != nil || port <= 0 || port > 65535 {
		return nil, 0, fmt.Errorf("pgcluster: setting port: %q is not a port number", settings["port"])
	}
	return settings, port, nil
}

// renderConf renders settings as postgresql.conf lines.
func renderConf(settings map[string]string) string {
	keys := make([]string, 0, len(settings))
	for k := range settings {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	b.WriteString("\n# Added by tasker-runner pgcluster.\n")
	for _, k := range keys {
		// A quoted string is valid for settings of every type.
		fmt.Fprintf(&b, "%s = '%s'\n", k, strings.ReplaceAll(settings[k], "'", "''"))
	}
	return b.String()
}

var settingName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.]*$`)

func appendFile(name, s string) error {
	f, err := os.OpenFile(name, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(s); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}

// readPostmasterPID returns the pid on the first line of postmaster.pid, or 0.
func readPostmasterPID(name string) int {
	b, err := os.ReadFile(name)
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || pid <= 0 {
		return 0
	}
	return pid
}

// tail returns the last lines of a program's output, for error messages.
func tail(b []byte) string {
	const maxLines, maxBytes = 15, 2000
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "(no output)"
	}
	lines := strings.Split(s, "\n")
	if len(lines) > maxLines {
		lines = lines[len(lines)-maxLines:]
	}
	s = strings.Join(lines, "\n")
	if len(s) > maxBytes {
		s = "..." + s[len(s)-maxBytes:]
	}
	return s
}

func tailSection(title string, b []byte) string {
	if len(bytes.TrimSpace(b)) == 0 {
		return ""
	}
	return "\n--- " + title + " (tail) ---\n" + tail(b)
}
