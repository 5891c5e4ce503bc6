package apiclient

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/tasker-runner/tasker-runner/cmd/tasker-runner/internal/clitest"
	"github.com/tasker-runner/tasker-runner/contracts"
	"github.com/tasker-runner/tasker-runner/openapi"
	"github.com/tasker-runner/tasker-runner/openapi/client"
	"github.com/tasker-runner/tasker-runner/runner"
	"github.com/tasker-runner/tasker-runner/runner/store/pgtest"
	"github.com/tasker-runner/tasker-runner/runner/workflow"
)

// cliTaskerTemplate is a template as Tasker writes it, with two keys the
// runner warns about.
const cliTaskerTemplate = `name: cli_order
namespace_name: cli
version: "1.10"
description: |
  An order, as Tasker
  writes it
loaded_from: config/tasks/cli/cli_order.yaml
steps:
  - name: validate
    handler:
      callable: Cli::Validate
      initialization: {strict: "yes", limit: 10, ratio: 0.5, empty: "", none: null, list: [1, "2"]}
  - name: charge
    depends_on: [validate]
    handler: {callable: cli.charge}
    retry: {retryable: true, max_attempts: 5, backoff: linear, initial_delay: 100}
    timeout_seconds: 30
`

// templatesAPI serves the management API over loopback HTTP on a private
// database; with apiKey, behind authentication requiring it (admin).
func templatesAPI(t *testing.T, apiKey string) string {
	t.Helper()
	var h = openapi.New(openapi.Config{Client: runner.NewClient(pgtest.Pool(t), runner.ClientConfig{}), Logger: slog.New(slog.DiscardHandler)}).Handler()
	if apiKey != "" {
		sum := sha256.Sum256([]byte(apiKey))
		auth, err := openapi.NewAuthenticator(openapi.AuthConfig{Enabled: true, APIKeys: []openapi.APIKey{{Name: "ci", Hash: "sha256:" + hex.EncodeToString(sum[:]), Scope: openapi.ScopeAdmin}}})
		if err != nil {
			t.Fatal(err)
		}
		h = auth.Middleware(h)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}

func writeTemplate(t *testing.T, doc string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "template.yaml")
	if err := os.WriteFile(p, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// check fails the test unless r exited with code and its stdout and
// stderr match the regular expressions.
func check(t *testing.T, what string, r clitest.Result, code int, stdout, stderr string) {
	t.Helper()
	if r.Code != code || !regexp.MustCompile(stdout).MatchString(r.Stdout) || !regexp.MustCompile(stderr).MatchString(r.Stderr) {
		t.Errorf("%s: want exit %d, stdout matching %q and stderr matching %q; got %v", what, code, stdout, stderr, r)
	}
}

func TestTemplatesCommands(t *testing.T) {
	t.Parallel()
	vars := map[string]string{"TASKER_API_URL": templatesAPI(t, "")}
	file := writeTemplate(t, cliTaskerTemplate)
	warnings := `(?s)^warning: loaded_from: ignored, as Tasker ignores it .*\(line 7\)\nwarning: steps\[1\]\.retry\.initial_delay: ignored, as Tasker ignores it.*\(line 16\)\n$`

	broken := writeTemplate(t, strings.Replace(strings.Replace(cliTaskerTemplate, "depends_on: [validate]", "depends_on: [valdate]", 1), "callable: cli.charge", "callabel: cli.charge", 1))
	checkTemplatesValidate(t, vars, file, broken, warnings)
	checkTemplatesRegister(t, vars, file, broken, warnings)
	checkTemplatesList(t, vars)
	checkTemplatesGet(t, vars)
}

func checkTemplatesValidate(t *testing.T, vars map[string]string, file, broken, warnings string) {
	t.Helper()
	// validate, from a file and from stdin: the warnings go to stderr.
	check(t, "validate FILE", clitest.Run(t, vars, "templates", "validate", file), 0,
		`^valid: cli/cli_order@1\.10 \(2 steps\), not registered yet\n$`, warnings)
	check(t, "validate -", clitest.RunInput(t, vars, cliTaskerTemplate, "templates", "validate", "-"), 0, `^valid: `, warnings)

	// An invalid template: every problem with its path and line, exit 1.
	check(t, "validate an invalid template", clitest.Run(t, vars, "templates", "validate", broken), 1,
		`^invalid: 3 problem\(s\)\n  steps\[1\]\.depends_on\[0\]: unknown step "valdate" \(line 14\)\n  steps\[1\]\.handler\.callabel: unknown field; did you mean "callable"\? \(line 15\)\n  steps\[1\]\.handler\.callable: required \(line 15\)\n$`,
		`(?s)^warning: loaded_from: .*the template is not valid\n$`)
	r := clitest.Run(t, vars, "templates", "validate", "--json", broken)
	var v client.TemplateValidation
	if r.Code != 1 || json.Unmarshal([]byte(r.Stdout), &v) != nil || v.Valid || len(v.Problems) != 3 || len(v.Warnings) != 2 {
		t.Errorf("validate --json of an invalid template: %v", r)
	}

}

func checkTemplatesRegister(t *testing.T, vars map[string]string, file, broken, warnings string) {
	t.Helper()
	// register: created, then identical; from stdin too.
	check(t, "register FILE", clitest.Run(t, vars, "templates", "register", file), 0,
		`^registered template cli/cli_order@1\.10 \(2 steps\)\n$`, warnings)
	check(t, "register - again", clitest.RunInput(t, vars, cliTaskerTemplate, "templates", "register", "-"), 0,
		`^already registered, identical: template cli/cli_order@1\.10 \(2 steps\)\n$`, warnings)
	check(t, "validate once registered", clitest.Run(t, vars, "templates", "validate", file), 0, `registered with this same definition`, warnings)
	var reg client.TemplateRegistration
	r := clitest.Run(t, vars, "templates", "register", file, "--json")
	if r.Code != 0 || json.Unmarshal([]byte(r.Stdout), &reg) != nil || reg.Name != "cli_order" || len(reg.Warnings) != 2 || r.Stderr != "" {
		t.Errorf("register --json: %v", r)
	}
	// Another definition under the same version: refused.
	changed := writeTemplate(t, strings.Replace(cliTaskerTemplate, "max_attempts: 5", "max_attempts: 6", 1))
	check(t, "validate a conflicting version", clitest.Run(t, vars, "templates", "validate", changed), 0, `registering it would fail \(409\)`, ``)
	check(t, "register a conflicting version", clitest.Run(t, vars, "templates", "register", changed), 1, `^$`, `409 Conflict`)
	// A problem of a template registered: at its place in the body.
	check(t, "register an invalid template", clitest.Run(t, vars, "templates", "register", broken), 1, `^$`,
		`422 Unprocessable Entity\n.*\n  - body\.steps\[1\]\.depends_on\[0\]: unknown step "valdate" \(line 14\)`)

}

func checkTemplatesList(t *testing.T, vars map[string]string) {
	t.Helper()
	// list: a table, filters, --json.
	if r := clitest.RunInput(t, vars, strings.Replace(orderYAML, "version: 1.0.0", "version: 2.0.0", 1), "templates", "register", "-"); r.Code != 0 {
		t.Fatalf("register: %v", r)
	}
	if r := clitest.RunInput(t, vars, orderYAML, "templates", "register", "-"); r.Code != 0 {
		t.Fatalf("register: %v", r)
	}
	check(t, "list", clitest.Run(t, vars, "templates", "list"), 0,
		`(?s)^NAMESPACE +NAME +VERSION +STEPS +REGISTERED +DESCRIPTION\nshop +order +1\.0\.0 +1 .*\nshop +order +2\.0\.0 +1 .*\ncli +cli_order +1\.10 +2 +\S+ \S+ +An order, as Tasker writes it\n$`, `^$`)
	check(t, "list --namespace", clitest.Run(t, vars, "templates", "list", "--namespace", "cli"), 0, `(?s)^NAMESPACE.*\ncli +cli_order .*\n$`, `^$`)
	check(t, "list --limit", clitest.Run(t, vars, "templates", "list", "--limit", "1", "--name", "order"), 0, `(?s)^NAMESPACE.*\nshop +order +1\.0\.0 .*\n\nmore: --cursor \S+\n$`, `^$`)
	var list client.TemplateList
	r := clitest.Run(t, vars, "templates", "list", "--json")
	if r.Code != 0 || json.Unmarshal([]byte(r.Stdout), &list) != nil || len(list.Items) != 3 {
		t.Errorf("list --json: %v", r)
	}

}

func checkTemplatesGet(t *testing.T, vars map[string]string) {
	t.Helper()
	// get prints YAML that registers back as the same version, and parses
	// to the stored definition.
	r := clitest.Run(t, vars, "templates", "get", "cli", "cli_order", "1.10")
	if r.Code != 0 || !strings.HasPrefix(r.Stdout, "name: cli_order\nnamespace_name: cli\nversion: \"1.10\"\ndescription: |\n  An order, as Tasker\n  writes it\nsteps:\n") {
		t.Fatalf("get: %v", r)
	}
	for _, want := range []string{"strict: \"yes\"", "ratio: 0.5", "empty: \"\"", "none: null", "- \"2\"", "dependencies:\n      - validate"} {
		if !strings.Contains(r.Stdout, want) {
			t.Errorf("get: no %q in\n%s", want, r.Stdout)
		}
	}
	if strings.Contains(r.Stdout, "loaded_from") {
		t.Errorf("get shows a key that is not stored:\n%s", r.Stdout)
	}
	printed := r.Stdout
	check(t, "register what get printed", clitest.RunInput(t, vars, printed, "templates", "register", "-"), 0, `^already registered, identical: template cli/cli_order@1\.10`, `^$`)
	fromFile, err := workflow.Parse([]byte(cliTaskerTemplate))
	if err != nil {
		t.Fatal(err)
	}
	fromGet, err := workflow.Parse([]byte(printed))
	if err != nil {
		t.Fatal(err)
	}
	a, _ := json.Marshal(fromFile)
	b, _ := json.Marshal(fromGet)
	if string(a) != string(b) {
		t.Errorf("get printed another template:\n%s\n%s", a, b)
	}
	// Without a version: the latest registered.
	check(t, "get the latest", clitest.Run(t, vars, "templates", "get", "shop", "order"), 0, `(?s)^name: order\nnamespace_name: shop\nversion: 1\.0\.0\n`, `^$`)
	r = clitest.Run(t, vars, "templates", "get", "cli", "cli_order", "1.10", "--json")
	var got client.Template
	if r.Code != 0 || json.Unmarshal([]byte(r.Stdout), &got) != nil || got.Version != "1.10" || got.Definition == nil {
		t.Errorf("get --json: %v", r)
	}
	check(t, "get an unknown template", clitest.Run(t, vars, "templates", "get", "cli", "nope", "1"), 1, `^$`, `404 Not Found`)
}

const orderYAML = `name: order
namespace_name: shop
version: 1.0.0
steps:
  - name: charge
    handler: {callable: shop.charge}
`

func TestTemplatesCommandsAuth(t *testing.T) {
	t.Parallel()
	vars := map[string]string{"TASKER_API_URL": templatesAPI(t, "s3cret")}
	check(t, "without a key", clitest.RunInput(t, vars, orderYAML, "templates", "register", "-"), 1, `^$`, `401`)
	check(t, "with --api-key", clitest.RunInput(t, vars, orderYAML, "templates", "register", "-", "--api-key", "s3cret"), 0, `^registered template shop/order@1\.0\.0`, `^$`)
	vars["TASKER_API_KEY"] = "s3cret"
	check(t, "with TASKER_API_KEY", clitest.Run(t, vars, "templates", "list"), 0, `shop +order`, `^$`)
}

func TestTemplatesCommandsUsage(t *testing.T) {
	t.Parallel()
	// Nothing listens there: usage errors are found before any call.
	vars := map[string]string{"TASKER_API_URL": "http://127.0.0.1:1"}
	for _, args := range [][]string{
		{"templates"},
		{"templates", "frob"},
		{"templates", "register"},
		{"templates", "register", "a.yaml", "b.yaml"},
		{"templates", "validate"},
		{"templates", "list", "extra"},
		{"templates", "get", "ns"},
		{"templates", "get", "ns", "name", "1", "extra"},
		{"templates", "register", "--limit", "3", "a.yaml"},
	} {
		if r := clitest.Run(t, vars, args...); r.Code != 2 || r.Stdout != "" {
			t.Errorf("%q: want exit 2, got %v", args, r)
		}
	}
	check(t, "a missing file", clitest.Run(t, vars, "templates", "register", "/nonexistent/t.yaml"), 1, `^$`, `/nonexistent/t\.yaml`)
	big := writeTemplate(t, orderYAML+"# "+strings.Repeat("x", contracts.MaxTemplateBytes)+"\n")
	check(t, "a file too large", clitest.Run(t, vars, "templates", "validate", big), 1, `^$`, `larger than 1048576 bytes`)
	check(t, "stdin too large", clitest.RunInput(t, vars, orderYAML+"# "+strings.Repeat("x", contracts.MaxTemplateBytes), "templates", "validate", "-"), 1, `^$`, `the standard input is larger than 1048576 bytes`)
	check(t, "no server", clitest.Run(t, vars, "templates", "validate", writeTemplate(t, orderYAML)), 1, `^$`, `calling the API`)
}

// jsonToYAML keeps key order and scalar types.
func TestJSONToYAML(t *testing.T) {
	t.Parallel()
	in := `{"z":1,"a":"1.10","m":{"t":"true","n":null,"e":[],"o":{},"f":1.5,"big":1e300,"huge":123456789012345678901234,"s":"two\nlines","q":"a: b"},"l":[false,"null","~","yes","Off","y","1:30","yesterday"]}`
	out, err := jsonToYAML([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := "z: 1\na: \"1.10\"\nm:\n  t: \"true\"\n  \"n\": null\n  e: []\n  o: {}\n  f: 1.5\n  big: 1e300\n  huge: 123456789012345678901234\n  s: |-\n    two\n    lines\n  q: 'a: b'\nl:\n  - false\n  - \"null\"\n  - \"~\"\n  - \"yes\"\n  - \"Off\"\n  - \"y\"\n  - \"1:30\"\n  - yesterday\n"
	if string(out) != want {
		t.Errorf("jsonToYAML:\n%s\nwant\n%s", out, want)
	}
	for _, bad := range []string{`{"a":`, `[1,2`, `{"a" 1}`} {
		if _, err := jsonToYAML([]byte(bad)); err == nil {
			t.Errorf("jsonToYAML(%q): no error", bad)
		}
	}
}
