package runner

import (
	"fmt"
	"slices"
	"testing"

	"github.com/tasker-runner/tasker-runner/callout"
)

// TestShutdownOrder: claiming stops first (and retention with it), then
// running steps finish or are given back, then outcomes are written, and
// leases are extended until the very end. Only the services a mode needs
// exist.
func TestShutdownOrder(t *testing.T) {
	for _, tc := range []struct {
		cfg  Config
		want []string
	}{
		{Config{}, []string{"claimer", "listener", "poller", "dispatcher", "completer", "maintainer"}},
		{Config{Mode: ModePollingOnly}, []string{"claimer", "poller", "dispatcher", "completer", "maintainer"}},
		{Config{Mode: ModeEventDrivenOnly, Retention: RetentionConfig{Enabled: true, CompleteAfter: 1}, Endpoints: &Endpoints{}},
			[]string{"claimer", "listener", "retainer", "dispatcher", "completer", "maintainer", "endpointWatcher"}},
	} {
		tc.cfg.Handlers = &callout.Funcs{}
		r, err := New(nil, tc.cfg)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, s := range r.services {
			got = append(got, fmt.Sprintf("%T", s)[len("*runner."):])
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("mode %s: shutdown order %v, want %v", tc.cfg.Mode, got, tc.want)
		}
	}
}
