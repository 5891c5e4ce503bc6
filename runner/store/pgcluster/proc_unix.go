//go:build unix

package pgcluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"syscall"
)

// osUser is the account PostgreSQL programs run as when it is not the
// current one. A nil *osUser means the current user.
type osUser struct {
	name     string
	uid, gid int
}

// runAs returns the user to run PostgreSQL as: nil (the current user) unless
// we are root, which initdb and postgres refuse; then the postgres user.
func runAs() (*osUser, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("pgcluster: running as root, and PostgreSQL refuses to run as root, but there is no postgres user to run it as (%v): "+
			"install PostgreSQL from the distribution packages (apt-get install postgresql on Debian/Ubuntu creates the user), "+
			"create the user (useradd --system postgres), or run as a non-root user", err)
	}
	uid, err1 := strconv.Atoi(u.Uid)
	gid, err2 := strconv.Atoi(u.Gid)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("pgcluster: user postgres: %w", err)
	}
	if uid == 0 {
		return nil, errors.New("pgcluster: the postgres user has uid 0; PostgreSQL refuses to run as root")
	}
	return &osUser{name: u.Username, uid: uid, gid: gid}, nil
}

// command builds a command that runs as u, in its own session (so that a
// Ctrl-C at the terminal reaches only us, and we get to clean up), with
// working directory dir and a predictable environment.
func (u *osUser) command(ctx context.Context, dir, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	cmd.Env = u.env(dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if u != nil {
		// Groups left empty drops root's supplementary groups.
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(u.uid), Gid: uint32(u.gid)}
	}
	return cmd
}

// env is the environment for PostgreSQL programs: ours without the PG*
// variables (PGDATA, PGPORT, ... would change what pg_ctl and postgres do)
// and with the C locale, so that messages are stable. Another user gets a
// minimal environment with HOME set to a directory it owns.
func (u *osUser) env(dir string) []string {
	var env []string
	if u != nil {
		env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "USER=" + u.name, "LOGNAME=" + u.name}
		if tz, ok := os.LookupEnv("TZ"); ok {
			env = append(env, "TZ="+tz)
		}
	} else {
		for _, kv := range os.Environ() {
			k, _, _ := strings.Cut(kv, "=")
			if strings.HasPrefix(k, "PG") || strings.HasPrefix(k, "LC_") || k == "LANG" || k == "LANGUAGE" {
				continue
			}
			env = append(env, kv)
		}
	}
	return append(env, "LC_ALL=C", "LANG=C")
}

// processAlive reports whether pid names a live process. A zombie counts as
// gone: an orphaned postmaster becomes one when its new parent does not reap.
func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	if err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	if b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat"); err == nil {
		// pid (comm) S ...: the state follows the last ')'.
		s := string(b)
		if i := strings.LastIndexByte(s, ')'); i >= 0 && i+2 < len(s) && (s[i+2] == 'Z' || s[i+2] == 'X') {
			return false
		}
	}
	return true
}

func killProcess(pid int) error { return syscall.Kill(pid, syscall.SIGKILL) }

// dataOwner returns who to run pg_ctl as for a data directory found on disk:
// its owner. ok is false when that is neither us nor a user we can become.
func dataOwner(path string) (u *osUser, ok bool) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, false
	}
	st, isStat := fi.Sys().(*syscall.Stat_t)
	if !isStat {
		return nil, false
	}
	uid, gid := int(st.Uid), int(st.Gid)
	switch euid := os.Geteuid(); {
	case uid == euid:
		return nil, true
	case euid == 0:
		name := strconv.Itoa(uid)
		if lu, err := user.LookupId(name); err == nil {
			name = lu.Username
		}
		return &osUser{name: name, uid: uid, gid: gid}, true
	default:
		return nil, false
	}
}
