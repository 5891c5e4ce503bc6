package workflow

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// readmeSection returns the section of the repository's README under the
// heading "## title", up to the next "## " heading.
func readmeSection(t *testing.T, title string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, sec, ok := strings.Cut(string(b), "\n## "+title+"\n")
	if !ok {
		t.Fatalf("README.md has no section %q", title)
	}
	if i := strings.Index(sec, "\n## "); i >= 0 {
		sec = sec[:i]
	}
	return sec
}

// README's template reference: its example loads without a problem or a
// warning, every key the decoder accepts is documented, and the defaults
// it states are the decoder's.
func TestREADMETemplateReference(t *testing.T) {
	sec := readmeSection(t, "Template reference")
	blocks := regexp.MustCompile("(?s)```yaml\n(.*?)```").FindAllStringSubmatch(sec, -1)
	if len(blocks) == 0 {
		t.Fatal("no YAML example in README's template reference")
	}
	for _, b := range blocks {
		tpl, err := Parse([]byte(b[1]))
		if err != nil {
			t.Fatalf("README's example: %v", err)
		}
		if w := tpl.Warnings(); len(w) > 0 {
			t.Errorf("README's example has warnings: %v", w)
		}
		if _, err := tpl.Plan(RetryDefaults{}); err != nil {
			t.Errorf("README's example cannot be planned: %v", err)
		}
	}

	documented := func(key string) bool { return strings.Contains(sec, "`"+key+"`") }
	for _, level := range []struct {
		prefix string
		keys   []string
	}{
		{"", templateKeys}, {"", stepKeys}, {"handler.", handlerKeys}, {"retry.", retryKeys}, {"batch_config.", batchKeys},
	} {
		for _, k := range level.keys {
			if !documented(level.prefix + k) {
				t.Errorf("README's template reference does not document `%s`", level.prefix+k)
			}
		}
	}
	for _, v := range stepTypes {
		if !documented(string(v)) {
			t.Errorf("README's template reference does not name step type %s", v)
		}
	}
	for _, v := range backoffStrategies {
		if !documented(string(v)) {
			t.Errorf("README's template reference does not name backoff %s", v)
		}
	}
	for _, v := range failureStrategies {
		if !documented(string(v)) {
			t.Errorf("README's template reference does not name failure strategy %s", v)
		}
	}

	// The default column of a key's row.
	defaults := map[string]string{
		"type":                                   "`" + string(StepStandard) + "`",
		"handler.method":                         "`call`",
		"retry.retryable":                        "`true`",
		"retry.max_attempts":                     "(" + strconv.Itoa(MaxAttemptsDefault) + ")",
		"retry.backoff":                          "`" + string(BackoffExponential) + "`",
		"retry.backoff_base_ms":                  "(" + strconv.Itoa(BackoffBaseMsDefault) + ")",
		"retry.max_backoff_ms":                   "(" + strconv.Itoa(MaxBackoffMsDefault) + ")",
		"batch_config.batch_size":                "`" + strconv.Itoa(defaultBatchSize) + "`",
		"batch_config.parallelism":               "`" + strconv.Itoa(defaultParallelism) + "`",
		"batch_config.cursor_field":              "`" + defaultCursorField + "`",
		"batch_config.failure_strategy":          "`" + string(ContinueOnFailure) + "`",
		"dependencies":                           "`[]`",
		"handler.initialization":                 "`{}`",
		"publishes_events":                       "`[]`",
		"batch_config.worker_template":           "required",
		"handler.callable":                       "required",
		"name":                                   "required",
		"namespace_name":                         "required",
		"version":                                "required",
		"steps":                                  "required",
		"composition":                            "none",
		"loaded_from`, `task_handler":            "none",
		"retry.initial_delay`, `retry.max_delay": "none",
	}
	for key, want := range defaults {
		row := regexp.MustCompile("(?m)^\\| `" + regexp.QuoteMeta(key) + "`[^|]*\\| ([^|]*) \\|").FindStringSubmatch(sec)
		if row == nil {
			t.Errorf("README's template reference has no row for `%s`", key)
			continue
		}
		if !strings.Contains(row[1], want) {
			t.Errorf("README's template reference gives `%s` the default %q, want %q in it", key, row[1], want)
		}
	}
}

// The example templates (examples/templates, which `make run` registers)
// load without a warning.
func TestExampleTemplatesHaveNoWarnings(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("..", "..", "examples", "templates", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no example templates: %v", err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		tpl := mustParse(t, b)
		if w := tpl.Warnings(); len(w) > 0 {
			t.Errorf("%s: warnings %v", f, w)
		}
	}
}
