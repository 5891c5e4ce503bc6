package app

import (
	"runtime/debug"
	"strings"
	"testing"
)

func TestGCDefault(t *testing.T) {
	t.Setenv("GOGC", "") // gcSetting reads the real environment: an outer GOGC must not decide the result
	was := debug.SetGCPercent(100)
	t.Cleanup(func() { debug.SetGCPercent(was) })

	ApplyGCDefault(func(string) (string, bool) { return "", false })
	if p := debug.SetGCPercent(100); p != gcPercentDefault {
		t.Errorf("GOGC unset: GC percent %d, want the runner's default %d", p, gcPercentDefault)
	}
	if s := GCSetting(); s != "GOGC=100" {
		t.Errorf("GCSetting() = %q, want GOGC=100", s)
	}

	debug.SetGCPercent(150) // what Go took from GOGC=150
	ApplyGCDefault(func(k string) (string, bool) { return map[string]string{"GOGC": "150"}[k], k == "GOGC" })
	if p := debug.SetGCPercent(gcPercentDefault); p != 150 {
		t.Errorf("GOGC=150 set: GC percent %d, want it left at 150", p)
	}
	if s := GCSetting(); !strings.HasPrefix(s, "GOGC=300") {
		t.Errorf("GCSetting() = %q, want GOGC=300 ...", s)
	}
}
