package suggest_test

import (
	"testing"

	"github.com/tasker-runner/tasker-runner/internal/suggest"
)

func TestClosest(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		candidates []string
		want       string
		dist       int
	}{
		{"prot", []string{"host", "port"}, "port", 1},
		{"x", nil, "", -1},
		{"ab", []string{"ac", "ad"}, "ac", 1}, // a tie: the first
		{"port", []string{"url", "port"}, "port", 0},
	}
	for _, tt := range tests {
		if got, dist := suggest.Closest(tt.name, tt.candidates); got != tt.want || dist != tt.dist {
			t.Errorf("Closest(%q, %q) = %q, %d; want %q, %d", tt.name, tt.candidates, got, dist, tt.want, tt.dist)
		}
	}
}
