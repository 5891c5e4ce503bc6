//go:build !unix

package pgcluster

import (
	"context"
	"errors"
	"os/exec"
)

type osUser struct {
	name     string
	uid, gid int
}

func runAs() (*osUser, error) {
	return nil, errors.New("pgcluster: throwaway clusters are supported on Unix systems only; set DATABASE_URL instead")
}

func (u *osUser) command(ctx context.Context, dir, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	return cmd
}

func processAlive(pid int) bool { return false }

func killProcess(pid int) error { return errors.ErrUnsupported }

func dataOwner(path string) (u *osUser, ok bool) { return nil, false }
