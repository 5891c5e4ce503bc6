package bench

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// CPU accounting from /proc (Linux). Every function returns zero values
// where /proc is missing, and the figures built on them are then omitted.

// clockTick is the unit of the CPU times in /proc/<pid>/stat: USER_HZ, 100
// on every Linux architecture Go supports.
const clockTick = 10 * time.Millisecond

// cpuSnapshot is the CPU time used so far by the machine, this process and
// (when known) the local PostgreSQL server.
type cpuSnapshot struct {
	at      time.Time
	busy    time.Duration // all CPUs, all processes: not idle and not waiting for I/O
	self    time.Duration
	server  time.Duration
	hasProc bool
}

func takeCPUSnapshot(postmaster int) cpuSnapshot {
	s := cpuSnapshot{at: time.Now(), self: processCPU()}
	s.busy, s.hasProc = machineBusy()
	if postmaster > 0 {
		s.server = serverCPU(postmaster)
	}
	return s
}

// cpuUsage is how many cores each party kept busy between two snapshots.
type cpuUsage struct {
	MachineCores float64 `json:"machine_busy_cores"`
	RunnerCores  float64 `json:"runner_cores"`
	// ServerCores is PostgreSQL's share (every process of the local server);
	// omitted when the server is not a local throwaway cluster.
	ServerCores float64 `json:"postgres_cores,omitempty"`
	// OtherCores is what the rest of the machine used meanwhile: work that
	// competed with the measurement. Known only with ServerCores.
	OtherCores  float64 `json:"other_processes_cores,omitempty"`
	known       bool
	serverKnown bool
}

func cpuBetween(a, b cpuSnapshot) cpuUsage {
	wall := b.at.Sub(a.at).Seconds()
	if wall <= 0 || !a.hasProc || !b.hasProc {
		return cpuUsage{}
	}
	u := cpuUsage{
		MachineCores: (b.busy - a.busy).Seconds() / wall,
		RunnerCores:  (b.self - a.self).Seconds() / wall,
		known:        true,
	}
	if a.server > 0 && b.server >= a.server {
		u.ServerCores = (b.server - a.server).Seconds() / wall
		u.OtherCores = max(0, u.MachineCores-u.RunnerCores-u.ServerCores)
		u.serverKnown = true
	}
	return u
}

// machineBusy returns the CPU time all CPUs spent neither idle nor waiting
// for I/O since boot (/proc/stat).
func machineBusy() (time.Duration, bool) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, false
	}
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 6 || f[0] != "cpu" {
		return 0, false
	}
	var total, idle int64
	for i, v := range f[1:] {
		n, _ := strconv.ParseInt(v, 10, 64)
		if i >= 8 { // guest time is already counted in user
			break
		}
		total += n
		if i == 3 || i == 4 { // idle, iowait
			idle += n
		}
	}
	return time.Duration(total-idle) * clockTick, true
}

// procTimes returns a process's parent pid, its own CPU time and that of its
// reaped children.
func procTimes(pid string) (ppid int, own, children time.Duration, ok bool) {
	b, err := os.ReadFile(filepath.Join("/proc", pid, "stat"))
	if err != nil {
		return 0, 0, 0, false
	}
	// The command name may hold spaces and parentheses: fields start after the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, 0, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 15 {
		return 0, 0, 0, false
	}
	ppid, _ = strconv.Atoi(f[1])
	n := func(s string) time.Duration { v, _ := strconv.ParseInt(s, 10, 64); return time.Duration(v) * clockTick }
	return ppid, n(f[11]) + n(f[12]), n(f[13]) + n(f[14]), true
}

// serverCPU returns the CPU time used by a PostgreSQL server: the
// postmaster, its live children (backends, background workers) and the
// children it has reaped (backends that have exited).
func serverCPU(postmaster int) time.Duration {
	_, own, reaped, ok := procTimes(strconv.Itoa(postmaster))
	if !ok {
		return 0
	}
	total := own + reaped
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return total
	}
	for _, e := range entries {
		name := e.Name()
		if name[0] < '0' || name[0] > '9' {
			continue
		}
		if ppid, own, _, ok := procTimes(name); ok && ppid == postmaster {
			total += own
		}
	}
	return total
}

// parentPID returns the parent of a local process, 0 when unknown.
func parentPID(pid int) int {
	ppid, _, _, ok := procTimes(strconv.Itoa(pid))
	if !ok {
		return 0
	}
	return ppid
}
