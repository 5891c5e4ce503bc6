package taskerrunner_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// docExts are the files whose text (doc comments, markdown, comments in
// configuration and scripts) is checked for citations.
var docExts = map[string]bool{".go": true, ".md": true, ".toml": true, ".yaml": true, ".yml": true, ".ts": true, ".py": true, ".rb": true, ".sql": true, ".sh": true, ".proto": true}

var (
	designRef  = regexp.MustCompile(`\bDESIGN(\.md)?\b`)
	sectionRef = regexp.MustCompile(`(\S*)\s*§`)
	rfcNumber  = regexp.MustCompile(`RFC\s*\d+$`)
)

// badCitations returns the citations in text of a document that does not
// exist: DESIGN or DESIGN.md when no such file exists, and "X §N" when X is
// not a file that exists (exists says, for a path relative to the repository
// root or to the citing file's directory) nor an RFC.
func badCitations(text string, exists func(string) bool) []string {
	var bad []string
	for _, m := range designRef.FindAllStringIndex(text, -1) {
		if !exists("DESIGN.md") {
			bad = append(bad, context(text, m[0], m[1]))
		}
	}
	for _, m := range sectionRef.FindAllStringSubmatchIndex(text, -1) {
		cited := strings.Trim(text[m[2]:m[3]], "`'\"([")
		before := strings.TrimRight(text[:m[2]], " \t")
		switch {
		case rfcNumber.MatchString(before + " " + cited):
			continue // RFC 9457 §3
		case cited != "" && strings.ContainsAny(cited, "./") && exists(cited):
			continue // README.md §2, contracts/README.md §Signing
		}
		bad = append(bad, context(text, m[0], m[1]))
	}
	return bad
}

func context(text string, start, end int) string {
	line := strings.Count(text[:start], "\n") + 1
	from := max(strings.LastIndex(text[:start], "\n")+1, start-40)
	to := end + strings.IndexByte(text[end:]+"\n", '\n')
	to = min(to, end+40)
	return "line " + strconv.Itoa(line) + ": " + strings.TrimSpace(text[from:to])
}

func TestBadCitations(t *testing.T) {
	exists := func(p string) bool { return p == "README.md" || p == "contracts/README.md" }
	for _, c := range []struct {
		text string
		bad  int
	}{
		{"see DESIGN " + "§11 for the target", 2}, // split, so that this line is not a citation itself
		{"the schema of DESIGN.md", 1},
		{"as DESIGN's state machine has it", 1},
		{"README.md §2 describes it", 0},
		{"(contracts/README.md §Signing)", 0},
		{"problem details (RFC 9457 §3)", 0},
		{"RFC 9110 §15.5", 0},
		{"NOTES.md §4", 1},
		{"§3 says", 1},
		{"a design decision, DESIGNED well", 0},
		{"nothing cited here", 0},
	} {
		if got := badCitations(c.text, exists); len(got) != c.bad {
			t.Errorf("badCitations(%q) = %q, want %d", c.text, got, c.bad)
		}
	}
}

// TestDocsCiteExistingFiles: doc comments, markdown and the other text of
// the repository cite no document that is not in it (such as the team's
// DESIGN.md, which users never see, or "X §N" of a missing X). The
// architecture is described in README.md's "Architecture" section.
func TestDocsCiteExistingFiles(t *testing.T) {
	root, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	checked := 0
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			switch d.Name() {
			case ".git", "node_modules", "bin", "tmp":
				return filepath.SkipDir
			}
			return nil
		}
		inCI := strings.HasPrefix(rel, ".ci/")
		if !d.Type().IsRegular() || rel == "docrefs_test.go" ||
			!(docExts[filepath.Ext(rel)] || inCI || rel == "Makefile") {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		checked++
		exists := func(cited string) bool {
			for _, base := range []string{root, filepath.Dir(p)} {
				if _, err := os.Stat(filepath.Join(base, filepath.FromSlash(cited))); err == nil {
					return true
				}
			}
			return false
		}
		for _, c := range badCitations(string(b), exists) {
			t.Errorf("%s cites a document that is not in the repository (point at README.md's Architecture section or the file that says it): %s", rel, c)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if checked < 100 {
		t.Fatalf("checked only %d files: is the walk broken?", checked)
	}
}
