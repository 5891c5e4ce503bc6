package pgcluster

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// removeStale removes the cluster directories in base whose owner died
// without cleaning up and whose reaper did not run either (it was killed too,
// or the machine went down), stopping any server still running in them. A
// directory is only touched when its owner file names a dead process: one
// being created right now, or owned by a live process, is left alone. This is
// best effort: what cannot be removed is reported to logw and skipped.
func removeStale(ctx context.Context, base, binDir string, logw io.Writer) {
	matches, _ := filepath.Glob(filepath.Join(base, dirPrefix+"*"))
	for _, dir := range matches {
		b, err := os.ReadFile(filepath.Join(dir, ownerFile))
		if err != nil {
			continue
		}
		owner, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || owner <= 0 || processAlive(owner) {
			continue
		}
		data := filepath.Join(dir, dataSubdir)
		if pm := readPostmasterPID(filepath.Join(data, "postmaster.pid")); pm != 0 && processAlive(pm) {
			as, ok := dataOwner(data)
			if !ok {
				continue
			}
			stopCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
			out, err := as.command(stopCtx, "/", filepath.Join(binDir, "pg_ctl"),
				"stop", "-D", data, "-m", "immediate", "-w", "-s", "-t", "20").CombinedOutput()
			cancel()
			if err != nil {
				fmt.Fprintf(logw, "pgcluster: stopping the stale server in %s: %v: %s\n", dir, err, tail(out))
				continue
			}
		}
		if err := os.RemoveAll(dir); err != nil {
			fmt.Fprintf(logw, "pgcluster: removing stale cluster directory %s: %v\n", dir, err)
			continue
		}
		fmt.Fprintf(logw, "pgcluster: removed stale cluster directory %s (owner pid %d is gone)\n", dir, owner)
	}
}
