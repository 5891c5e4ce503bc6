//go:build !linux

package main

import (
	"os"
	"os/exec"
)

// setProcessGroup: process groups are only used on Linux; elsewhere the
// handler services are stopped as single processes.
func setProcessGroup(*exec.Cmd) {}

// termGroup asks p to stop (os.Interrupt where the platform has it).
func termGroup(p *os.Process) error {
	if p == nil {
		return nil
	}
	if err := p.Signal(os.Interrupt); err != nil {
		return p.Kill()
	}
	return nil
}

// killGroup kills p.
func killGroup(p *os.Process) error {
	if p == nil {
		return nil
	}
	return p.Kill()
}

// lockDir does nothing here: concurrent installs are only guarded on Linux.
func lockDir(string) (shared, unlock func(), err error) {
	return func() {}, func() {}, nil
}
