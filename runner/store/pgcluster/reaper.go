package pgcluster

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"sync"
)

// reaperScript waits until its standard input reaches end of file, then stops
// the server and removes the cluster directory. The write end of that pipe is
// held only by the owning process (Go opens every descriptor close-on-exec),
// so the kernel closes it when the owner dies in any way, SIGKILL included.
// Unlike polling the owner's pid this reacts at once, cannot be fooled by pid
// reuse, and needs no permission to signal the owner. Terminal signals are
// ignored: the reaper has its own session, but a stray SIGHUP or SIGINT must
// not make it skip the cleanup either.
const reaperScript = `trap '' HUP INT
read -r _
"$1" stop -D "$2" -m immediate -w -s -t 30 >/dev/null 2>&1
rm -rf "$3"
`

// reaper is the watchdog process of one cluster.
type reaper struct {
	cmd *exec.Cmd
	w   *os.File // write end of the reaper's stdin
}

// live keeps every running reaper's pipe reachable: if the *os.File were
// garbage collected its finalizer would close the pipe and the reaper would
// remove a cluster that is still in use.
var (
	liveMu sync.Mutex
	live   = map[*reaper]struct{}{}
)

func startReaper(c *Cluster) (*reaper, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("pgcluster: starting the reaper: %w", err)
	}
	cmd := c.as.command(context.Background(), "/", "/bin/sh", "-c", reaperScript, "tasker-pg-reaper",
		c.bin("pg_ctl"), c.dataDir(), c.dir)
	cmd.Stdin = r
	err = cmd.Start()
	_ = r.Close() // the child has its copy
	if err != nil {
		_ = w.Close()
		return nil, fmt.Errorf("pgcluster: starting the reaper: %w", err)
	}
	rp := &reaper{cmd: cmd, w: w}
	liveMu.Lock()
	live[rp] = struct{}{}
	liveMu.Unlock()
	return rp, nil
}

// stop ends the reaper without letting it clean up: it is killed before its
// pipe is closed, and waited for so that it leaves no zombie.
func (r *reaper) stop() {
	_ = r.cmd.Process.Kill()
	_ = r.cmd.Wait()
	_ = r.w.Close()
	liveMu.Lock()
	delete(live, r)
	liveMu.Unlock()
}
