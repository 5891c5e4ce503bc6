// Package procgroup runs child processes in process groups of their own, so
// that stopping one reaches whatever it starts, and locks directories
// shared with other processes (npm installs).
package procgroup

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// Set puts the child in a process group of its own, so that
// stopping it reaches whatever it starts (a shim, a runtime's workers), and
// so that a terminal's Ctrl-C reaches dev alone: dev stops its handler
// services after the runner has finished its in-flight steps. Should dev
// die without cleaning up, the kernel kills the child (Pdeathsig).
func Set(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// Term sends SIGTERM to the process group led by p.
func Term(p *os.Process) error { return signalGroup(p, syscall.SIGTERM) }

// Kill sends SIGKILL to the process group led by p.
func Kill(p *os.Process) error { return signalGroup(p, syscall.SIGKILL) }

func signalGroup(p *os.Process, sig syscall.Signal) error {
	if p == nil {
		return nil
	}
	if err := syscall.Kill(-p.Pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	return nil
}

// LockDir takes an exclusive flock(2) on dir, for npm ci: two installs into
// one node_modules at once (two dev processes, or dev and the polyglot
// tests) break each other. shared turns it into a shared lock, for
// readers of what was installed; unlock releases it. It waits for the lock
// until ctx ends (dev stopping while another process holds it).
func LockDir(ctx context.Context, dir string) (shared, unlock func(), err error) {
	f, err := os.Open(dir)
	if err != nil {
		return nil, nil, err
	}
	fd := int(f.Fd())
	if err := lockExclusive(ctx, fd); err != nil {
		_ = f.Close()
		return nil, nil, err
	}
	shared = func() { _ = syscall.Flock(fd, syscall.LOCK_SH) }
	unlock = func() {
		_ = syscall.Flock(fd, syscall.LOCK_UN)
		_ = f.Close()
	}
	return shared, unlock, nil
}

// lockExclusive takes an exclusive flock on fd, trying again every 50 ms
// while another process holds it, until ctx ends.
func lockExclusive(ctx context.Context, fd int) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		err := syscall.Flock(fd, syscall.LOCK_EX|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			return err // nil: locked
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}
