package main

import (
	"bytes"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tasker-runner/tasker-runner/runner/store/pgtest"
)

// TestDevWithDatabaseURL: with DATABASE_URL, dev uses that database (no
// cluster of its own), migrates it and serves.
func TestDevWithDatabaseURL(t *testing.T) {
	t.Parallel()
	vars, addr := webVars(t)
	url := pgtest.EmptyURL(t)
	vars["DATABASE_URL"] = url
	c := startCLI(t, vars, "dev")
	c.waitHealthy(addr, startupTimeout)
	out := c.waitOutput("Press Ctrl-C to stop.", startupTimeout)
	if strings.Contains(out, "throwaway") || strings.Contains(c.stderr.String(), "throwaway") {
		t.Errorf("dev started a cluster of its own despite DATABASE_URL:\n%s", out)
	}
	if !strings.Contains(out, "http://"+addr+"/health") {
		t.Errorf("dev does not show where /health is:\n%s", out)
	}
	c.stop(syscall.SIGINT)
	checkStatus(t, runCLI(t, map[string]string{"DATABASE_URL": url}, "migrate", "status"), "applied")
}

// TestDevThrowawayCluster is the `make run` path: without DATABASE_URL, dev
// starts its own PostgreSQL, migrates and serves; Ctrl-C (SIGINT) stops it
// all and removes the cluster.
func TestDevThrowawayCluster(t *testing.T) {
	t.Parallel()
	vars, addr := webVars(t)
	c := startCLI(t, vars, "dev")
	c.waitHealthy(addr, startupTimeout)
	out := c.waitOutput("Press Ctrl-C to stop.", startupTimeout)

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

	c.stop(syscall.SIGINT)
	if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the cluster directory %s is still there after exit (stat: %v)", dir, err)
	}
	if pgAlive(pid) {
		t.Errorf("postmaster %d of %s is still running after exit", pid, dir)
	}
	if procs := processesMentioning(dir); len(procs) > 0 {
		t.Errorf("processes of %s remain after exit: %v", dir, procs)
	}
	if dirs := clusterDirsOf(c.cmd.Process.Pid); len(dirs) > 0 {
		t.Errorf("cluster directories of the child remain: %v", dirs)
	}
	if !strings.Contains(c.stderr.String(), "removed") {
		t.Errorf("the log does not say the cluster was removed:\n%s", c.stderr)
	}
}

// TestDevInterruptedWhileStarting: Ctrl-C while the throwaway cluster is
// still being created is a clean stop too, and leaves nothing behind.
func TestDevInterruptedWhileStarting(t *testing.T) {
	t.Parallel()
	vars, _ := webVars(t)
	c := startCLI(t, vars, "dev")
	// The cluster directory appears (with the owner's pid in it) before
	// initdb runs, and main handles SIGINT before dev starts: a signal now
	// lands while the cluster starts, or soon after.
	deadline := time.Now().Add(startupTimeout)
	var dirs []string
	for len(dirs) == 0 {
		if c.exited() {
			t.Fatalf("dev exited (code %d) before creating its cluster", c.exitCode())
		}
		if time.Now().After(deadline) {
			t.Fatalf("dev created no cluster directory within %v", startupTimeout)
		}
		time.Sleep(5 * time.Millisecond) // polling the file system; nothing to wait on
		dirs = clusterDirsOf(c.cmd.Process.Pid)
	}
	c.stop(syscall.SIGINT)
	for _, dir := range dirs {
		if _, err := os.Stat(dir); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("the cluster directory %s is still there after exit (stat: %v)", dir, err)
		}
		if procs := processesMentioning(dir); len(procs) > 0 {
			t.Errorf("processes of %s remain after exit: %v", dir, procs)
		}
	}
	if log := c.stderr.String(); strings.Contains(log, "initdb") || !strings.Contains(log, "stopped while starting") {
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
	matches, _ := filepath.Glob(filepath.Join(base, "tasker-pg-*"))
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
