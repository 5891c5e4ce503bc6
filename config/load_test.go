package config_test

import (
	"errors"
	"io/fs"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/sethvargo/go-envconfig"

	"github.com/tasker-runner/tasker-runner/config"
)

// noEnv is an empty environment, so tests never read the process's.
func noEnv() envconfig.Lookuper { return envconfig.MapLookuper(nil) }

// problemsOf returns the problems of a *config.Error, failing the test for
// any other error.
func problemsOf(t *testing.T, err error) []config.Problem {
	t.Helper()
	var cfgErr *config.Error
	if !errors.As(err, &cfgErr) {
		t.Fatalf("error = %v (%T), want *config.Error", err, err)
	}
	return cfgErr.Problems
}

func TestDefaultIsValid(t *testing.T) {
	t.Parallel()
	if err := config.Default().Validate(); err != nil {
		t.Fatalf("Default().Validate() = %v", err)
	}
}

func TestLoadNoFileNoEnvIsDefault(t *testing.T) {
	t.Parallel()
	cfg, err := config.Load("", noEnv())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg, config.Default()) {
		t.Fatalf("Load(\"\") = %+v, want Default()", cfg)
	}
}

// The keys the seed configuration uses, which follow the Tasker worker's.
func TestLoadSeedKeys(t *testing.T) {
	t.Parallel()
	path := writeFile(t, `
[worker.web]
enabled = true
host = "127.0.0.1"
port = 8081
[worker.event_systems.worker]
deployment_mode = "hybrid"
[worker.event_systems.worker.metadata.push_consumer]
enabled = true
max_concurrent_steps = 10
[worker.event_systems.worker.metadata.fallback_poller]
enabled = true
poll_interval_seconds = 1
`)
	cfg, err := config.Load(path, noEnv())
	if err != nil {
		t.Fatal(err)
	}
	want := config.Default()
	want.Worker.Web.Enabled = true
	want.Worker.Web.Host = "127.0.0.1"
	want.Worker.Web.Port = 8081
	want.Worker.EventSystems.Worker.DeploymentMode = config.DeploymentModeHybrid
	want.Worker.EventSystems.Worker.Metadata.PushConsumer = config.PushConsumer{Enabled: true, MaxConcurrentSteps: 10}
	want.Worker.EventSystems.Worker.Metadata.FallbackPoller = config.FallbackPoller{Enabled: true, PollIntervalSeconds: 1}
	if !reflect.DeepEqual(cfg, want) {
		t.Fatalf("got  %+v\nwant %+v", cfg, want)
	}
	if got := cfg.Worker.EventSystems.Worker.Metadata.FallbackPoller.Interval().String(); got != "1s" {
		t.Errorf("Interval() = %s, want 1s", got)
	}
	if got := cfg.Worker.Web.Addr(); got != "127.0.0.1:8081" {
		t.Errorf("Addr() = %s", got)
	}
}

func TestLoadFileValues(t *testing.T) {
	t.Parallel()
	path := writeFile(t, `
[database]
url = "postgres://u:p@db:5432/tasker"
max_conns = 40
[worker]
namespaces = ["payments", "shipping"]
[worker.web.auth]
enabled = true
[[worker.web.auth.api_keys]]
name = "ci"
hash = "sha256:`+strings.Repeat("ab", 32)+`"
scope = "admin"
[worker.event_systems.worker.metadata.fallback_poller]
poll_interval_seconds = 0.25
[[worker.handlers]]
pattern = "payments.*"
url = "http://payments:8000/steps/{callable}"
headers = { X-Team = "payments" }
[[worker.handlers]]
pattern = "inproc"
protocol = "go"
batch_max = 10
`)
	cfg, err := config.Load(path, noEnv())
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Database.URL != "postgres://u:p@db:5432/tasker" || cfg.Database.MaxConns != 40 {
		t.Errorf("database = %+v", cfg.Database)
	}
	if !reflect.DeepEqual(cfg.Worker.Namespaces, []string{"payments", "shipping"}) {
		t.Errorf("namespaces = %q", cfg.Worker.Namespaces)
	}
	if got := cfg.Worker.Web.Auth.APIKeys; len(got) != 1 || got[0].Scope != config.ScopeAdmin {
		t.Errorf("api keys = %+v", got)
	}
	if got := cfg.Worker.EventSystems.Worker.Metadata.FallbackPoller.Interval().String(); got != "250ms" {
		t.Errorf("Interval() = %s", got)
	}
	// Entries start from DefaultEndpoint, so omitted keys keep its values.
	want := config.Endpoints{
		{Pattern: "payments.*", URL: "http://payments:8000/steps/{callable}", Protocol: config.ProtocolHTTP,
			BatchMax: 1, BatchWindowMS: 2, Headers: map[string]string{"X-Team": "payments"}},
		{Pattern: "inproc", Protocol: config.ProtocolGo, BatchMax: 10, BatchWindowMS: 2},
	}
	if !reflect.DeepEqual(cfg.Worker.Handlers, want) {
		t.Errorf("handlers:\n got %+v\nwant %+v", cfg.Worker.Handlers, want)
	}
}

func TestLoadProblems(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		file string
		want []config.Problem
	}{
		{
			name: "unknown keys in nested tables and array tables",
			file: `
[database]
urll = "x"
[worker.web]
prot = 9000
[worker.event_systems.worker.metadata.fallback_poller]
poll_interval_secs = 2
[worker.bogus]
x = 1
[[worker.handlers]]
pattern = "a"
url = "http://a"
[[worker.handlers]]
pattern = "b"
url = "http://b"
protocl = "http"
[[worker.web.auth.api_keys]]
name = "k"
hash = "sha256:` + strings.Repeat("0", 64) + `"
scope = "read"
role = "admin"
`,
			want: []config.Problem{
				{Key: "database.urll", Message: `unknown key (did you mean "url"?)`},
				{Key: "worker.web.auth.api_keys[0].role", Message: "unknown key"},
				{Key: "worker.web.prot", Message: `unknown key (did you mean "port"?)`},
				{Key: "worker.event_systems.worker.metadata.fallback_poller.poll_interval_secs", Message: `unknown key (did you mean "poll_interval_seconds"?)`},
				{Key: "worker.handlers[1].protocl", Message: `unknown key (did you mean "protocol"?)`},
				{Key: "worker.bogus", Message: "unknown key"},
			},
		},
		{
			name: "type mismatches",
			file: `
[database]
max_conns = 2.0
migrate_on_start = "yes"
[worker]
namespaces = "payments"
[worker.web]
enabled = [true]
host = false
port = "abc"
[worker.grpc]
port = 1979-05-27T07:32:00Z
[worker.event_systems.worker.metadata.fallback_poller]
poll_interval_seconds = "1s"
[worker.leases]
visibility_timeout_seconds = 2.5
[[worker.handlers]]
pattern = "a"
url = "http://a"
headers = { X-A = 1 }
`,
			want: []config.Problem{
				{Key: "database.max_conns", Message: "expected integer, got float 2.0"},
				{Key: "database.migrate_on_start", Message: `expected boolean, got string "yes"`},
				{Key: "worker.namespaces", Message: `expected array of strings, got string "payments"`},
				{Key: "worker.web.enabled", Message: "expected boolean, got array"},
				{Key: "worker.web.host", Message: "expected string, got boolean false"},
				{Key: "worker.web.port", Message: `expected integer, got string "abc"`},
				{Key: "worker.grpc.port", Message: "expected integer, got datetime"},
				{Key: "worker.event_systems.worker.metadata.fallback_poller.poll_interval_seconds", Message: `expected number, got string "1s"`},
				{Key: "worker.leases.visibility_timeout_seconds", Message: "expected integer, got float 2.5"},
				{Key: "worker.handlers[0].headers.X-A", Message: "expected string, got integer 1"},
			},
		},
		{
			name: "table where a value belongs and the reverse",
			file: `
[worker]
web = 5
[worker.grpc.port]
x = 1
`,
			want: []config.Problem{
				{Key: "worker.web", Message: "expected table, got integer 5"},
				{Key: "worker.grpc.port", Message: "expected integer, got table"},
			},
		},
		{
			name: "bad values",
			file: `
[worker.event_systems.worker]
deployment_mode = "fast"
[[worker.handlers]]
pattern = "a"
url = "http://a"
protocol = "smtp"
`,
			want: []config.Problem{
				{Key: "worker.event_systems.worker.deployment_mode", Message: `"fast" is not one of polling_only, event_driven_only, hybrid`},
				{Key: "worker.handlers[0].protocol", Message: `"smtp" is not one of http, connect, grpc, go`},
			},
		},
		{
			// A value of the wrong type keeps its default, which would fail
			// validation as well; it is reported once.
			name: "one problem per key",
			file: `
[[worker.handlers]]
pattern = 5
url = "http://a"
`,
			want: []config.Problem{
				{Key: "worker.handlers[0].pattern", Message: "expected string, got integer 5"},
			},
		},
		{
			name: "decode and validation problems together",
			file: `
[worker.web]
prot = 1
port = 0
[worker.event_systems.worker]
deployment_mode = "fast"
[[worker.handlers]]
pattern = "a"
url = "http://a"
[[worker.handlers]]
pattern = "b"
timeout_ms = "soon"
`,
			want: []config.Problem{
				{Key: "worker.web.prot", Message: `unknown key (did you mean "port"?)`},
				{Key: "worker.handlers[1].timeout_ms", Message: `expected integer, got string "soon"`},
				{Key: "worker.web.port", Message: "must be between 1 and 65535, got 0"},
				{Key: "worker.event_systems.worker.deployment_mode", Message: `"fast" is not one of polling_only, event_driven_only, hybrid`},
				{Key: "worker.handlers[1].url", Message: `required for protocol "http"`},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := writeFile(t, tt.file)
			_, err := config.Load(path, noEnv())
			got := problemsOf(t, err)
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("problems:\n%s\nwant:\n%s", fmtProblems(got), fmtProblems(tt.want))
			}
			// The message names the file, then one line per problem, each
			// starting with its key.
			msg := err.Error()
			if !strings.HasPrefix(msg, path+": ") {
				t.Errorf("error does not start with the file path:\n%s", msg)
			}
			if len(tt.want) > 1 {
				lines := strings.Split(msg, "\n")[1:]
				if len(lines) != len(tt.want) {
					t.Fatalf("%d problem lines, want %d:\n%s", len(lines), len(tt.want), msg)
				}
				for i, line := range lines {
					if !strings.HasPrefix(line, tt.want[i].Key+": ") {
						t.Errorf("line %d = %q, want it to start with %q", i+1, line, tt.want[i].Key)
					}
				}
			}
		})
	}
}

// The headline case: a file with four different kinds of problem yields
// exactly four lines, one per problem.
func TestLoadReportsEveryProblemAtOnce(t *testing.T) {
	t.Parallel()
	path := writeFile(t, `
[worker.web]
prot = 1
[worker.grpc]
port = "x"
[worker.event_systems.worker]
deployment_mode = "fast"
[worker.leases]
visibility_timeout_seconds = 0
`)
	_, err := config.Load(path, noEnv())
	if err == nil {
		t.Fatal("Load succeeded")
	}
	want := path + `: 4 configuration problems:
worker.web.prot: unknown key (did you mean "port"?)
worker.grpc.port: expected integer, got string "x"
worker.event_systems.worker.deployment_mode: "fast" is not one of polling_only, event_driven_only, hybrid
worker.leases.visibility_timeout_seconds: must be at least 1, got 0`
	if err.Error() != want {
		t.Fatalf("error:\n%s\nwant:\n%s", err, want)
	}
}

func TestLoadSyntaxErrorNamesLine(t *testing.T) {
	t.Parallel()
	path := writeFile(t, `[worker.web]
port = 8081
host = "0.0.0.0
`)
	_, err := config.Load(path, noEnv())
	ps := problemsOf(t, err)
	if len(ps) != 1 {
		t.Fatalf("problems = %v", ps)
	}
	if !strings.HasPrefix(err.Error(), path+": TOML syntax error at line 3, column ") {
		t.Fatalf("error = %q, want it to name the file and line 3", err)
	}
}

func TestLoadMissingFileNamesPath(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "nope.toml")
	_, err := config.Load(path, noEnv())
	if err == nil || !strings.Contains(err.Error(), path) {
		t.Fatalf("error = %v, want it to name %s", err, path)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("errors.Is(err, fs.ErrNotExist) = false for %v", err)
	}
}

func TestLoadInlineArrayOfTables(t *testing.T) {
	t.Parallel()
	path := writeFile(t, `
[worker]
handlers = [{ pattern = "a", url = "https://a.example/{callable}" }]
`)
	cfg, err := config.Load(path, noEnv())
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Worker.Handlers) != 1 || cfg.Worker.Handlers[0].Protocol != config.ProtocolHTTP {
		t.Fatalf("handlers = %+v", cfg.Worker.Handlers)
	}
}

func TestResolvePath(t *testing.T) {
	t.Parallel()
	env := envconfig.MapLookuper(map[string]string{"TASKER_CONFIG_PATH": "/env/worker.toml"})
	tests := []struct {
		name, flag string
		lookup     envconfig.Lookuper
		want       string
	}{
		{"flag wins", "/flag/worker.toml", env, "/flag/worker.toml"},
		{"env when no flag", "", env, "/env/worker.toml"},
		{"neither", "", noEnv(), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := config.ResolvePath(tt.flag, tt.lookup); got != tt.want {
				t.Errorf("ResolvePath(%q) = %q, want %q", tt.flag, got, tt.want)
			}
		})
	}
}

func fmtProblems(ps []config.Problem) string {
	var b strings.Builder
	for _, p := range ps {
		b.WriteString("  " + p.String() + "\n")
	}
	return b.String()
}
