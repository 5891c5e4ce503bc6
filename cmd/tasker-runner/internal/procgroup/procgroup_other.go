//go:build !linux

package procgroup

import (
	"context"
	"os"
	"os/exec"
)

// Set: process groups are only used on Linux; elsewhere the
// handler services are stopped as single processes.
func Set(*exec.Cmd) {}

// Term asks p to stop (os.Interrupt where the platform has it).
func Term(p *os.Process) error {
	if p == nil {
		return nil
	}
	if err := p.Signal(os.Interrupt); err != nil {
		return p.Kill()
	}
	return nil
}

// Kill kills p.
func Kill(p *os.Process) error {
	if p == nil {
		return nil
	}
	return p.Kill()
}

// LockDir does nothing here: concurrent installs are only guarded on Linux.
func LockDir(context.Context, string) (shared, unlock func(), err error) {
	return func() {}, func() {}, nil
}
