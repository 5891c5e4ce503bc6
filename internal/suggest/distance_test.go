package suggest_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/tasker-runner/tasker-runner/internal/suggest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestDistance(t *testing.T) {
	t.Parallel()
	tests := []struct {
		a, b string
		want int
	}{
		{"", "", 0},
		{"", "port", 4},
		{"port", "", 4},
		{"port", "port", 0},
		{"prot", "port", 1},  // adjacent transposition
		{"potr", "port", 1},  // at the end too
		{"pot", "port", 1},   // deletion
		{"poert", "port", 1}, // insertion
		{"pert", "port", 1},  // substitution
		{"dependancies", "dependencies", 1},
		{"timeout", "timeout_ms", 3},
		{"ca", "abc", 3},       // optimal string alignment, not Damerau: no edit of a transposed pair
		{"größe", "grösse", 2}, // runes, not bytes
		{"kitten", "sitting", 3},
	}
	for _, tt := range tests {
		if got := suggest.Distance(tt.a, tt.b); got != tt.want {
			t.Errorf("Distance(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
		if got := suggest.Distance(tt.b, tt.a); got != tt.want {
			t.Errorf("Distance(%q, %q) = %d, want %d (symmetric)", tt.b, tt.a, got, tt.want)
		}
	}
}
