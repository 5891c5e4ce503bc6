package workflow

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/tasker-runner/tasker-runner/contracts"
)

// allPairs is a template of n steps, each depending on every earlier one:
// n(n-1)/2 dependencies.
func allPairs(n int) []byte {
	var b strings.Builder
	b.WriteString("name: pairs\nnamespace_name: ns\nversion: 1\nsteps:\n")
	for i := range n {
		fmt.Fprintf(&b, "  - name: s%d\n    handler: {callable: c}\n    dependencies: [", i)
		for j := range i {
			if j > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "s%d", j)
		}
		b.WriteString("]\n")
	}
	return []byte(b.String())
}

// A template expanding to more dependency edges than MaxEdges per task is
// refused (a 300-step all-pairs template has 44,850).
func TestEdgeLimit(t *testing.T) {
	t.Parallel()
	// 141 steps: 9,870 edges, under the limit.
	mustParse(t, allPairs(141))
	got := problemsOf(t, string(allPairs(300)))
	want := fmt.Sprintf("steps: 44850 dependencies in all; at most %d are allowed (each one is stored with every task of the template)", MaxEdges)
	if !slices.Equal(got, []string{want}) {
		t.Fatalf("problems = %q, want %q", got, want)
	}
}

// Namespaces follow the database's rule: at most 56 characters, lowercase.
func TestNamespaceLimits(t *testing.T) {
	t.Parallel()
	doc := func(ns string) string {
		return "name: t\nnamespace_name: " + ns + "\nversion: 1\nsteps:\n  - {name: a, handler: {callable: c}}\n"
	}
	mustParse(t, []byte(doc(strings.Repeat("n", contracts.MaxNamespaceLen))))
	for _, n := range []int{contracts.MaxNamespaceLen + 1, 128} {
		got := problemsOf(t, doc(strings.Repeat("n", n)))
		want := fmt.Sprintf("namespace_name: %d characters; at most %d are allowed", n, contracts.MaxNamespaceLen)
		if !slices.Equal(got, []string{want}) {
			t.Errorf("namespace of %d characters: problems = %q, want %q", n, got, want)
		}
	}
	if got := problemsOf(t, doc("Shop")); len(got) != 1 || !strings.HasPrefix(got[0], "namespace_name: invalid namespace") {
		t.Errorf("uppercase namespace: problems = %q", got)
	}
}

// Strings the database cannot store (NUL, invalid UTF-8) are refused at
// their path, wherever they are.
func TestUnstorableText(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ doc, path string }{
		{"name: t\nnamespace_name: ns\nversion: 1\ndescription: \"a\\0b\"\nsteps:\n  - {name: a, handler: {callable: c}}\n", "description"},
		{"name: t\nnamespace_name: ns\nversion: 1\nsteps:\n  - {name: a, handler: {callable: c, initialization: {k: [\"x\\0\"]}}}\n", "steps[0].handler.initialization.k[0]"},
		{`{"name":"t","namespace_name":"ns","version":"1","steps":[{"name":"a","handler":{"callable":"c","method":"m\u0000"}}]}`, "steps[0].handler.method"},
		{"name: t\nnamespace_name: ns\nversion: 1\nmetadata: {\"k\\0\": 1}\nsteps:\n  - {name: a, handler: {callable: c}}\n", "metadata"},
	} {
		got := problemsOf(t, tc.doc)
		if len(got) == 0 || !strings.HasPrefix(got[0], tc.path+": ") || !strings.Contains(got[0], "NUL") {
			t.Errorf("%s: problems = %q, want a NUL problem at %s", tc.doc, got, tc.path)
		}
	}
}

func TestCheckDefinitionSize(t *testing.T) {
	t.Parallel()
	if err := CheckDefinitionSize(MaxDefinitionBytes); err != nil {
		t.Fatal(err)
	}
	var tl *DefinitionTooLargeError
	if err := CheckDefinitionSize(MaxDefinitionBytes + 1); !errors.As(err, &tl) || tl.Size != MaxDefinitionBytes+1 {
		t.Fatalf("err = %v", err)
	}
}
