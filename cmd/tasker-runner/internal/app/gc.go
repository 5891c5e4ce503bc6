package app

import (
	"fmt"
	"os"
	"runtime/debug"
)

// gcPercentDefault is the GOGC the runner runs with when the environment
// sets none. The runner keeps a small live heap (tens of MB with hundreds
// of steps in flight) but allocates for every step: at Go's default of 100
// the collector ran so often that it took about a quarter of the runner's
// CPU in the backlog and HTTP benches. 300 cut the runner's CPU per step by
// ~30% (48 -> 33 µs in the backlog work-down) for ~15 MB more peak RSS.
// GOGC and GOMEMLIMIT in the environment still apply as Go documents them.
const gcPercentDefault = 300

// applyGCDefault sets [gcPercentDefault] unless GOGC is set.
func ApplyGCDefault(lookup func(string) (string, bool)) {
	if v, ok := lookup("GOGC"); ok && v != "" {
		return
	}
	debug.SetGCPercent(gcPercentDefault)
}

// gcSetting describes the collector setting in force, for reports.
func GCSetting() string {
	p := debug.SetGCPercent(-1) // read back: -1 (off) triggers no collection
	debug.SetGCPercent(p)
	switch v, ok := os.LookupEnv("GOGC"); {
	case p < 0:
		return "GOGC=off"
	case ok && v != "":
		return fmt.Sprintf("GOGC=%d (from the environment)", p)
	case p == gcPercentDefault:
		return fmt.Sprintf("GOGC=%d (the runner's default)", p)
	default:
		return fmt.Sprintf("GOGC=%d", p)
	}
}
