package workflow

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// FuzzTemplateDecode feeds YAML and JSON documents to Parse. Properties:
//
//   - it never panics;
//   - it fails with ErrTemplateTooLarge or a *ValidationError listing at
//     least one problem, each with a message (and valid UTF-8, since the API
//     echoes it in a JSON problem document);
//   - a template it accepts validates again, can be planned, and survives a
//     round trip: its JSON encoding parses to the same template.
//
// The seed corpus is every template under testdata plus the tricky inputs
// below; `make fuzz` runs it for longer.
func FuzzTemplateDecode(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.*"))
	if err != nil {
		f.Fatal(err)
	}
	tasker, err := filepath.Glob(filepath.Join("testdata", "tasker", "*"))
	if err != nil {
		f.Fatal(err)
	}
	files = append(files, tasker...)
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		"",
		"{}",
		"[]",
		"null",
		"~",
		"\ufeff{}",
		"name: x\nnamespace_name: y\nversion: 1\nsteps:\n  - name: a\n    handler: {callable: h}\n",
		`{"name":"x","namespace_name":"y","version":"1.0.0","steps":[{"name":"a","handler":{"callable":"h"}}]}`,
		`{"name":"x","namespace_name":"y","version":"1.0.0","steps":[{"name":"a","handler":{"callable":"h\/i"}}]}`,
		`{"name":"x","steps":[{"name":"a","handler":{"callable":"h"}}],"name":"dup"}`,
		`{"name":"\u0000","namespace_name":"\ud800","version":"1","steps":[]}`,
		"name: \xff\xfe\nsteps: []\n",
		"a: &a [*a, *a]\n",
		"a: &a {b: 1}\nsteps:\n  - <<: *a\n    name: s\n",
		"x: &x [1,1,1,1,1,1,1,1,1]\ny: &y [*x,*x,*x,*x,*x,*x,*x,*x,*x]\nz: &z [*y,*y,*y,*y,*y,*y,*y,*y,*y]\nsteps: [*z,*z,*z,*z,*z,*z,*z,*z,*z]\n",
		strings.Repeat("[", 300) + strings.Repeat("]", 300),
		strings.Repeat("{\"a\":", 300) + "1" + strings.Repeat("}", 300),
		"--- \nname: a\n---\nname: b\n",
		"name: x\nnamespace_name: y\nversion: 1\nsteps:\n  - name: a\n    handler: {callable: h}\n    retry: {max_attempts: 99999999999999999999}\n",
		"name: x\nnamespace_name: y\nversion: 1\nsteps:\n  - name: a\n    handler: {callable: h}\n    timeout_seconds: -1e308\n",
		"name: x\nnamespace_name: y\nversion: 1\ninput_schema: {type: object, properties: {a: {$ref: '#/properties/a'}}}\nsteps:\n  - name: a\n    handler: {callable: h}\n",
		"name: x\nnamespace_name: y\nversion: 1\ninput_schema: {$ref: 'http://example.com/schema'}\nsteps:\n  - name: a\n    handler: {callable: h}\n",
		"name: x\nnamespace_name: y\nversion: 1\nsteps:\n  - name: b\n    type: batchable\n    handler: {callable: h}\n    batch_config: {worker_template: w, batch_size: 0}\n  - name: w\n    type: batch_worker\n    dependencies: [b]\n    handler: {callable: h}\n",
		"name: x\nnamespace_name: y\nversion: 1\nsteps:\n  - name: d\n    type: decision\n    handler: {callable: h}\n  - name: e\n    type: deferred_convergence\n    dependencies: [d, e]\n    handler: {callable: h}\n",
		"? [a, b]\n: c\n",
		"!!binary aGVsbG8=\n",
		"name: !!float 1\n",
		"steps:\n  - 1\n  - null\n  - [a]\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, doc []byte) {
		defer watchdog(10 * time.Second)()
		tpl, err := Parse(doc)
		if err != nil {
			if tpl != nil {
				t.Fatalf("Parse returned a template and an error: %v", err)
			}
			checkParseError(t, doc, err)
			return
		}
		if tpl == nil {
			t.Fatal("Parse returned neither a template nor an error")
		}
		checkProblems(t, "warning", tpl.Warnings())
		if err := tpl.Validate(); err != nil {
			t.Fatalf("an accepted template does not validate again: %v", err)
		}
		if _, err := tpl.Plan(RetryDefaults{}); err != nil {
			t.Fatalf("an accepted template cannot be planned: %v", err)
		}
		js, err := json.Marshal(tpl)
		if err != nil {
			t.Fatalf("an accepted template cannot be encoded as JSON: %v", err)
		}
		again, err := Parse(js)
		if err != nil {
			t.Fatalf("the JSON encoding of an accepted template is refused: %v\n%s", err, js)
		}
		js2, err := json.Marshal(again)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(js, js2) {
			t.Fatalf("the template changed in a JSON round trip:\n%s\n%s", js, js2)
		}
	})
}

func checkParseError(t *testing.T, doc []byte, err error) {
	t.Helper()
	if errors.Is(err, ErrTemplateTooLarge) {
		if len(doc) <= MaxTemplateBytes {
			t.Fatalf("a document of %d bytes is too large: %v", len(doc), err)
		}
		return
	}
	var ve *ValidationError
	if !errors.As(err, &ve) {
		t.Fatalf("Parse failed with a %T, not a *ValidationError: %v", err, err)
	}
	if len(ve.Problems) == 0 {
		t.Fatalf("a validation error without problems: %v", err)
	}
	checkProblems(t, "problem", ve.Problems)
	checkProblems(t, "warning", ve.Warnings)
	if err.Error() == "" {
		t.Fatal("empty error message")
	}
}

// checkProblems checks what the API echoes: a message, a line that is not
// negative, valid UTF-8.
func checkProblems(t *testing.T, what string, ps []Problem) {
	t.Helper()
	for _, p := range ps {
		if strings.TrimSpace(p.Message) == "" {
			t.Fatalf("a %s without a message at %q", what, p.Path)
		}
		if p.Line < 0 {
			t.Fatalf("%s %v has a negative line", what, p)
		}
		if !utf8.ValidString(p.Path) || !utf8.ValidString(p.Message) {
			t.Fatalf("%s %q: %q is not valid UTF-8", what, p.Path, p.Message)
		}
	}
}

// watchdog crashes the process when an input takes longer than d, so that
// the fuzzer records it as a failing input (it reports no hangs itself).
// Call the function it returns when the input is done.
func watchdog(d time.Duration) func() {
	timer := time.AfterFunc(d, func() {
		debug.SetTraceback("all")
		panic("fuzz: one input took longer than " + d.String())
	})
	return func() { timer.Stop() }
}
