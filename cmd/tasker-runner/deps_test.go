package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestServerLinksNoExamples: the server binary does not link demo code; dev
// runs the Go example handler service as a child process instead.
func TestServerLinksNoExamples(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-deps", ".").Output()
	if err != nil {
		t.Fatalf("go list -deps: %v", err)
	}
	const examples = "github.com/tasker-runner/tasker-runner/examples/"
	for _, pkg := range strings.Fields(string(out)) {
		if strings.HasPrefix(pkg, examples) {
			t.Errorf("tasker-runner links %s", pkg)
		}
	}
}
