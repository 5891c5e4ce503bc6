package openapi_test

import (
	"context"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The order_fulfillment template of README.md's TypeScript client example,
// reduced to one in-process step.
const readmeOrderTemplate = `
name: order_fulfillment
namespace_name: shop
version: 1
steps:
  - name: validate
    handler: {callable: echo}
`

// TestTypeScriptClientREADME installs openapi/client-ts as README.md's
// "TypeScript client" says, from a copy of the checkout without
// node_modules (as a fresh clone has it), into a new npm project, and runs
// the README's example with Node against a live API and runner: the first
// run creates the task and waits for it to complete, the second finds it
// under its idempotency key. Without Node.js and npm it skips, saying so;
// under CI (CI=true) it fails instead.
func TestTypeScriptClientREADME(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: not running the TypeScript client's README example")
	}
	for _, tool := range []string{"node", "npm"} {
		if _, err := exec.LookPath(tool); err != nil {
			if ci, _ := strconv.ParseBool(os.Getenv("CI")); ci {
				t.Fatalf("FAILING (CI=true: a runtime must not be missing): %s is not installed, the TypeScript client's README example cannot run (install Node.js 18+ with npm; .ci/ensure-runtimes does)", tool)
			}
			t.Skipf("SKIPPED: %s is not installed, the TypeScript client's README example is not run (install Node.js 18+ with npm)", tool)
		}
	}
	t.Parallel()
	readme, err := os.ReadFile(filepath.Join("..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "\n### TypeScript client\n")
	if !ok {
		t.Fatal(`README.md has no "### TypeScript client" section`)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	block := func(fence string) string {
		m := regexp.MustCompile("(?s)```" + fence + "\n(.*?)```\n").FindStringSubmatch(section)
		if m == nil {
			t.Fatalf("README.md's TypeScript client section has no ```%s block", fence)
		}
		return m[1]
	}
	install, example := block("sh"), block("js")
	if !strings.Contains(install, "npm i --install-links ../tasker-runner/openapi/client-ts") {
		t.Fatalf("README.md's install lines changed: update this test\n%s", install)
	}

	// A fresh clone's openapi/client-ts: the committed files, no
	// node_modules, at ../tasker-runner from the project.
	tmp := t.TempDir()
	src, err := filepath.Abs("client-ts")
	if err != nil {
		t.Fatal(err)
	}
	checkout := filepath.Join(tmp, "tasker-runner", "openapi", "client-ts")
	copyTree(t, src, checkout, "node_modules")
	project := filepath.Join(tmp, "project")
	if err := os.Mkdir(project, 0o755); err != nil {
		t.Fatal(err)
	}
	env := append(os.Environ(), "NO_COLOR=1", "NODE_DISABLE_COLORS=1", "npm_config_update_notifier=false", "npm_config_fund=false", "npm_config_audit=false")
	run := func(timeout time.Duration, extraEnv []string, args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(t.Context(), timeout)
		defer cancel()
		cmd := exec.CommandContext(ctx, args[0], args[1:]...)
		cmd.Dir = project
		cmd.Env = append(env, extraEnv...)
		cmd.WaitDelay = 5 * time.Second
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	for line := range strings.SplitSeq(install, "\n") {
		line, _, _ = strings.Cut(line, " #")
		if line = strings.TrimSpace(line); line != "" {
			run(4*time.Minute, nil, "bash", "-euo", "pipefail", "-c", line)
		}
	}

	e := newAPIEnv(t, envOptions{runner: true})
	e.funcs.Register("echo", echo)
	e.do(http.MethodPost, "/v1/templates", map[string]string{"template": readmeOrderTemplate}, http.StatusCreated, nil)
	if err := os.WriteFile(filepath.Join(project, "submit.mjs"), []byte(example), 0o644); err != nil {
		t.Fatal(err)
	}
	apiEnv := []string{"TASKER_API=" + e.srv.URL, "TASKER_API_KEY="}
	lines := regexp.MustCompile(`^(created|already submitted) ([0-9a-f-]{36})\ncomplete 1/1 steps\n$`)
	first := lines.FindStringSubmatch(run(2*time.Minute, apiEnv, "node", "submit.mjs"))
	if first == nil || first[1] != "created" {
		t.Fatalf("first run of the README example: %q, want created <uuid> then complete 1/1 steps", first)
	}
	out := run(2*time.Minute, apiEnv, "node", "submit.mjs")
	second := lines.FindStringSubmatch(out)
	if second == nil || second[1] != "already submitted" || second[2] != first[2] {
		t.Fatalf("second run of the README example: %q, want already submitted %s then complete 1/1 steps", out, first[2])
	}
	task := e.task(first[2], "")
	if task.State != "complete" || task.Namespace != "shop" || task.Name != "order_fulfillment" ||
		task.IdempotencyKey != "order-42" || string(task.Context) != `{"order_id":42}` {
		t.Fatalf("the task as the API shows it: %+v", task)
	}
}

// copyTree copies the regular files under src to dst, leaving out the
// directories named skip.
func copyTree(t *testing.T, src, dst, skip string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		switch {
		case d.IsDir() && d.Name() == skip:
			return filepath.SkipDir
		case d.IsDir():
			return os.MkdirAll(target, 0o755)
		case !d.Type().IsRegular():
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}
