package main

import (
	"flag"
	"os"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/tasker-runner/tasker-runner/cmd/tasker-runner/internal/cli"
	"github.com/tasker-runner/tasker-runner/cmd/tasker-runner/internal/clitest"
)

// commandNames returns every subcommand; those of issue 2 must be there.
func commandNames(t *testing.T) []string {
	var names []string
	for _, c := range commands().Commands {
		names = append(names, c.Name)
	}
	for _, want := range []string{"serve", "migrate", "dev", "version"} {
		if !slices.Contains(names, want) {
			t.Errorf("no %s command", want)
		}
	}
	return names
}

func TestHelp(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"help"}, {"--help"}, {"-help"}, {"-h"}} {
		r := clitest.Run(t, nil, args...)
		if r.Code != 0 || r.Stderr != "" {
			t.Errorf("%v: want exit 0 and nothing on stderr, got %v", args, r)
			continue
		}
		if !strings.Contains(r.Stdout, "Usage:\n  tasker-runner <command>") {
			t.Errorf("%v: no usage line in\n%s", args, r.Stdout)
		}
		for _, name := range commandNames(t) {
			if !regexp.MustCompile(`(?m)^  ` + name + ` +\S`).MatchString(r.Stdout) {
				t.Errorf("%v: command %s is not listed in\n%s", args, name, r.Stdout)
			}
		}
	}
}

func TestNoArgumentsPrintsUsageToStderr(t *testing.T) {
	t.Parallel()
	r := clitest.Run(t, nil)
	if r.Code != 2 || r.Stdout != "" || !strings.Contains(r.Stderr, "Usage:") {
		t.Errorf("want exit 2 with the usage on stderr, got %v", r)
	}
}

func TestCommandHelp(t *testing.T) {
	t.Parallel()
	flags := map[string][]string{
		"serve":   {"-config", "-migrate"},
		"migrate": {"-config", "up|status"},
		"dev":     {"-config"},
	}
	for _, name := range commandNames(t) {
		for _, args := range [][]string{{name, "--help"}, {name, "-h"}, {"help", name}} {
			r := clitest.Run(t, nil, args...)
			if r.Code != 0 || r.Stderr != "" {
				t.Errorf("%v: want exit 0 and nothing on stderr, got %v", args, r)
				continue
			}
			usage := "Usage: tasker-runner " + name
			if !strings.HasPrefix(r.Stdout, usage) {
				t.Errorf("%v: stdout does not start with %q:\n%s", args, usage, r.Stdout)
			}
			// The flag package calls Usage itself on -h: once is enough.
			if n := strings.Count(r.Stdout, "Usage:"); n != 1 {
				t.Errorf("%v: usage printed %d times:\n%s", args, n, r.Stdout)
			}
			for _, f := range flags[name] {
				if !strings.Contains(r.Stdout, f) {
					t.Errorf("%v: %q not documented in\n%s", args, f, r.Stdout)
				}
			}
			// Every flag the usage line shows must exist.
			line, _, _ := strings.Cut(r.Stdout, "\n")
			for _, m := range regexp.MustCompile(`--([a-z-]+)`).FindAllStringSubmatch(line, -1) {
				if !strings.Contains(r.Stdout, "  -"+m[1]) {
					t.Errorf("%v: the usage line shows --%s, which is not a flag:\n%s", args, m[1], r.Stdout)
				}
			}
			if strings.HasSuffix(line, " ") {
				t.Errorf("%v: trailing space in %q", args, line)
			}
			// And every flag must be in the usage line, which README.md
			// shows (bench, with dozens of tuning flags, says "[flags]").
			if strings.Contains(line, "[flags]") {
				if name != "bench" {
					t.Errorf("%v: only bench may abbreviate its flags as [flags]: %q", args, line)
				}
				continue
			}
			for _, m := range regexp.MustCompile(`(?m)^  -([a-z-]+)`).FindAllStringSubmatch(r.Stdout, -1) {
				if !regexp.MustCompile(`--` + regexp.QuoteMeta(m[1]) + `\b([^-]|$)`).MatchString(line) {
					t.Errorf("%v: flag -%s is not in the usage line %q", args, m[1], line)
				}
			}
		}
	}
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		want []string // in stderr
	}{
		{[]string{"bogus"}, []string{`unknown command "bogus"`, "Usage:"}},
		{[]string{"help", "bogus"}, []string{`unknown command "bogus"`}},
		{[]string{"serve", "--bogus"}, []string{"tasker-runner serve:", "-bogus", "tasker-runner serve --help"}},
		{[]string{"serve", "extra"}, []string{"tasker-runner serve:", `unexpected argument "extra"`}},
		{[]string{"serve", "--migrate=maybe"}, []string{"tasker-runner serve:", "maybe", "-migrate"}},
		{[]string{"serve", "--config"}, []string{"tasker-runner serve:", "flag needs an argument", "-config"}},
		{[]string{"migrate"}, []string{"tasker-runner migrate:", "up, status"}},
		{[]string{"migrate", "sideways"}, []string{"tasker-runner migrate:", "up, status"}},
		{[]string{"migrate", "up", "status"}, []string{"tasker-runner migrate:", "up, status"}},
		{[]string{"migrate", "--bogus", "up"}, []string{"tasker-runner migrate:", "-bogus"}},
		{[]string{"dev", "--nope"}, []string{"tasker-runner dev:", "-nope"}},
		{[]string{"dev", "extra"}, []string{"tasker-runner dev:", `unexpected argument "extra"`}},
		{[]string{"version", "--short"}, []string{"tasker-runner version:", "-short"}},
		{[]string{"version", "extra"}, []string{"tasker-runner version:", `unexpected argument "extra"`}},
	}
	for _, tt := range tests {
		r := clitest.Run(t, nil, tt.args...)
		if r.Code != 2 {
			t.Errorf("%v: want exit 2, got %v", tt.args, r)
			continue
		}
		if r.Stdout != "" {
			t.Errorf("%v: want nothing on stdout, got %v", tt.args, r)
		}
		for _, w := range tt.want {
			if !strings.Contains(r.Stderr, w) {
				t.Errorf("%v: stderr lacks %q:\n%s", tt.args, w, r.Stderr)
			}
		}
	}
}

func TestVersion(t *testing.T) {
	t.Parallel()
	r := clitest.Run(t, nil, "version")
	want := regexp.MustCompile(`^tasker-runner \S+ \(` + regexp.QuoteMeta(runtime.Version()+", "+runtime.GOOS+"/"+runtime.GOARCH) + `\)\n$`)
	if r.Code != 0 || r.Stderr != "" || !want.MatchString(r.Stdout) {
		t.Errorf("want exit 0 and a line matching %s, got %v", want, r)
	}
}

// TestVersionFromLinker checks the variable that `make build` sets with
// -ldflags "-X main.version=...", which init hands to cli.Version. Not
// parallel: it changes a global.
func TestVersionFromLinker(t *testing.T) {
	if cli.Version != version {
		t.Fatalf("cli.Version %q, want main.version %q", cli.Version, version)
	}
	old := cli.Version
	cli.Version = "v1.2.3-test"
	t.Cleanup(func() { cli.Version = old })
	r := clitest.Run(t, nil, "version")
	if r.Code != 0 || !strings.HasPrefix(r.Stdout, "tasker-runner v1.2.3-test (") {
		t.Errorf("want the linker's version, got %v", r)
	}
}

// TestConfigProblems: configuration problems are found before anything
// starts, exit 1, and name the key or variable.
func TestConfigProblems(t *testing.T) {
	t.Parallel()
	unknownKey := clitest.WriteConfig(t, "[worker.web]\nprot = 9000\n")
	badValue := clitest.WriteConfig(t, "[worker.event_systems.worker]\ndeployment_mode = \"sometimes\"\n")
	badSyntax := clitest.WriteConfig(t, "[worker.web\nport = 1\n")
	dbURL := map[string]string{"DATABASE_URL": "postgres://nobody@127.0.0.1:1/nothing"}
	for _, cmd := range [][]string{{"serve"}, {"migrate", "status"}, {"dev"}} {
		tests := []struct {
			name string
			vars map[string]string
			args []string
			want []string
		}{
			{"unknown key", dbURL, []string{"--config", unknownKey}, []string{unknownKey, "worker.web.prot"}},
			{"bad value", dbURL, []string{"--config", badValue}, []string{"worker.event_systems.worker.deployment_mode", "sometimes", "polling_only"}},
			{"bad syntax", dbURL, []string{"--config", badSyntax}, []string{badSyntax, "line"}},
			{"missing file", dbURL, []string{"--config", "/nonexistent/worker.toml"}, []string{"/nonexistent/worker.toml"}},
			{"missing file from TASKER_CONFIG_PATH",
				map[string]string{"DATABASE_URL": dbURL["DATABASE_URL"], "TASKER_CONFIG_PATH": "/nonexistent/tasker.toml"},
				nil, []string{"/nonexistent/tasker.toml"}},
			{"bad env value",
				map[string]string{"DATABASE_URL": dbURL["DATABASE_URL"], "TASKER_WORKER_WEB_PORT": "lots"},
				nil, []string{"TASKER_WORKER_WEB_PORT", "worker.web.port"}},
			{"misspelt variable (a warning, besides the file's problem)",
				map[string]string{"DATABASE_URL": dbURL["DATABASE_URL"], "TASKER_WORKER_WEB_PROT": "9000"},
				[]string{"--config", unknownKey}, []string{"warning: TASKER_WORKER_WEB_PROT overrides no configuration key and is ignored; did you mean TASKER_WORKER_WEB_PORT?"}},
			{"all problems at once",
				map[string]string{"DATABASE_URL": dbURL["DATABASE_URL"], "TASKER_WORKER_WEB_PORT": "lots"},
				[]string{"--config", unknownKey}, []string{"worker.web.prot", "TASKER_WORKER_WEB_PORT"}},
		}
		for _, tt := range tests {
			var args []string
			args = append(args, cmd[0])
			args = append(args, tt.args...)
			args = append(args, cmd[1:]...)
			r := clitest.Run(t, tt.vars, args...)
			if r.Code != 1 {
				t.Errorf("%s: %v: want exit 1, got %v", tt.name, args, r)
				continue
			}
			if !strings.Contains(r.Stderr, "tasker-runner "+cmd[0]+": ") {
				t.Errorf("%s: %v: stderr does not name the command:\n%s", tt.name, args, r.Stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(r.Stderr, w) {
					t.Errorf("%s: %v: stderr lacks %q:\n%s", tt.name, args, w, r.Stderr)
				}
			}
		}
	}
}

var updateREADME = flag.Bool("update-readme", false, "TestREADMECommands: rewrite README.md's list of commands instead of comparing it")

// readmeCommandsMarker precedes the generated code block in README.md.
const readmeCommandsMarker = "<!-- commands: generated from each command's usage line (cli.Reference of the command table in cmd/tasker-runner/main.go); `make generate` rewrites it -->"

// TestREADMECommands: README.md's list of commands is exactly what the
// commands' --help prints (their usage lines and summaries), so a flag
// added, renamed or removed shows in the README or fails here.
func TestREADMECommands(t *testing.T) {
	const path = "../../README.md"
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	before, after, ok := strings.Cut(readme, readmeCommandsMarker+"\n```\n")
	if !ok {
		t.Fatalf("README.md has no %q followed by a code block", readmeCommandsMarker)
	}
	block, rest, ok := strings.Cut(after, "```\n")
	if !ok {
		t.Fatal("README.md: the commands' code block does not end")
	}
	want := cli.Reference(commands())
	if *updateREADME {
		if block != want {
			if err := os.WriteFile(path, []byte(before+readmeCommandsMarker+"\n```\n"+want+"```\n"+rest), 0o644); err != nil {
				t.Fatal(err)
			}
			t.Log("rewrote README.md's list of commands")
		}
		return
	}
	if block != want {
		t.Errorf("README.md's list of commands differs from the commands' usage lines; run `make generate` "+
			"(or go test ./cmd/tasker-runner -run TestREADMECommands -args -update-readme).\n--- README.md:\n%s--- want:\n%s", block, want)
	}
	// Each entry is what --help prints: the usage line and the summary.
	for _, c := range commands().Commands {
		r := clitest.Run(t, nil, c.Name, "--help")
		usage, _, _ := strings.Cut(strings.TrimPrefix(r.Stdout, "Usage: "), "\n")
		if !strings.Contains(strings.Join(strings.Fields(block), " "), usage) {
			t.Errorf("README.md does not show %q as --help prints it", usage)
		}
	}
}
