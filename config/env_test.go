package config_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sethvargo/go-envconfig"

	"github.com/tasker-runner/tasker-runner/config"
)

// A file setting the keys the environment overrides below, so each override
// has to beat a value that was set, not merely fill in a default.
const envBaseFile = `
[database]
url = "postgres://file@db/tasker"
max_conns = 40
[worker]
namespaces = ["from-file"]
[worker.web]
port = 8081
[worker.web.auth]
public_health = true
[worker.event_systems.worker]
deployment_mode = "hybrid"
[worker.event_systems.worker.metadata.fallback_poller]
poll_interval_seconds = 2
[worker.retention]
failed_after_days = 12
cancelled_after_days = 3
batch_size = 10
[[worker.handlers]]
pattern = "file.*"
url = "http://file/{callable}"
`

func TestEnvOverridesFile(t *testing.T) {
	t.Parallel()
	path := writeFile(t, envBaseFile)
	env := envconfig.MapLookuper(map[string]string{
		"DATABASE_URL":                                       "postgres://env@db/tasker",
		"TASKER_DATABASE_MAX_CONNS":                          "7",
		"TASKER_WORKER_NAMESPACES":                           "payments, shipping",
		"TASKER_WORKER_WEB_PORT":                             "9000",
		"TASKER_WORKER_WEB_AUTH_PUBLIC_HEALTH":               "false",
		"TASKER_WORKER_EVENT_SYSTEMS_WORKER_DEPLOYMENT_MODE": "polling_only",
		"TASKER_WORKER_EVENT_SYSTEMS_WORKER_METADATA_FALLBACK_POLLER_POLL_INTERVAL_SECONDS": "0.5",
		"TASKER_WORKER_HANDLERS":                       `[{"pattern":"env.*","url":"http://env/{callable}","batch_max":8,"headers":{"X-A":"b"}}]`,
		"TASKER_WORKER_WEB_AUTH_API_KEYS":              `[{"name":"ops","hash":"sha256:` + strings.Repeat("c", 64) + `","scope":"read"}]`,
		"TASKER_WORKER_RETENTION_ENABLED":              "false",
		"TASKER_WORKER_RETENTION_COMPLETE_AFTER_DAYS":  "0.25",
		"TASKER_WORKER_RETENTION_CANCELLED_AFTER_DAYS": "0",
		"TASKER_WORKER_RETENTION_BATCH_SIZE":           "50",
	})
	cfg, err := config.Load(path, env)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"database.url", cfg.Database.URL, "postgres://env@db/tasker"},
		{"database.max_conns", cfg.Database.MaxConns, 7},
		{"worker.namespaces", cfg.Worker.Namespaces, []string{"payments", "shipping"}},
		{"worker.web.port", cfg.Worker.Web.Port, 9000},
		{"worker.web.auth.public_health", cfg.Worker.Web.Auth.PublicHealth, false},
		{"deployment_mode", cfg.Worker.EventSystems.Worker.DeploymentMode, config.DeploymentModePollingOnly},
		{"poll_interval_seconds", cfg.Worker.EventSystems.Worker.Metadata.FallbackPoller.PollIntervalSeconds, 0.5},
		{"worker.handlers", cfg.Worker.Handlers, config.Endpoints{{
			Pattern: "env.*", URL: "http://env/{callable}", Protocol: config.ProtocolHTTP,
			BatchMax: 8, BatchWindowMS: 2, Headers: map[string]string{"X-A": "b"},
		}}},
		{"worker.web.auth.api_keys", cfg.Worker.Web.Auth.APIKeys, config.APIKeys{{
			Name: "ops", Hash: "sha256:" + strings.Repeat("c", 64), Scope: config.ScopeRead,
		}}},
		{"worker.retention.enabled", cfg.Worker.Retention.Enabled, false},
		{"worker.retention.complete_after_days", cfg.Worker.Retention.CompleteAfter(), 6 * time.Hour},
		{"worker.retention.cancelled_after_days", cfg.Worker.Retention.CancelledAfterDays, 0.0},
		{"worker.retention.batch_size", cfg.Worker.Retention.BatchSize, 50},
		// Keys without a variable keep the file's (or the default) value.
		{"worker.grpc.port", cfg.Worker.GRPC.Port, 9191},
		{"worker.retention.failed_after_days", cfg.Worker.Retention.FailedAfterDays, 12.0},
	}
	for _, c := range checks {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s = %#v, want %#v", c.name, c.got, c.want)
		}
	}
}

func TestEnvDatabaseURLPrecedence(t *testing.T) {
	t.Parallel()
	path := writeFile(t, "[database]\nurl = \"postgres://file/db\"\n")
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"file only", nil, "postgres://file/db"},
		{"DATABASE_URL beats the file", map[string]string{"DATABASE_URL": "postgres://plain/db"}, "postgres://plain/db"},
		{"TASKER_DATABASE_URL beats the file", map[string]string{"TASKER_DATABASE_URL": "postgres://tasker/db"}, "postgres://tasker/db"},
		{"TASKER_DATABASE_URL beats DATABASE_URL", map[string]string{
			"DATABASE_URL":        "postgres://plain/db",
			"TASKER_DATABASE_URL": "postgres://tasker/db",
		}, "postgres://tasker/db"},
		{"empty means unset", map[string]string{"DATABASE_URL": "", "TASKER_DATABASE_URL": ""}, "postgres://file/db"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg, err := config.Load(path, envconfig.MapLookuper(tt.env))
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Database.URL != tt.want {
				t.Errorf("database.url = %q, want %q", cfg.Database.URL, tt.want)
			}
		})
	}
}

// An empty variable is treated as unset, for every kind of key.
func TestEnvEmptyIsUnset(t *testing.T) {
	t.Parallel()
	path := writeFile(t, envBaseFile)
	cfg, err := config.Load(path, envconfig.MapLookuper(map[string]string{
		"TASKER_WORKER_WEB_PORT":   "",
		"TASKER_WORKER_NAMESPACES": "",
		"TASKER_WORKER_HANDLERS":   "",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Worker.Web.Port != 8081 || len(cfg.Worker.Namespaces) != 1 || len(cfg.Worker.Handlers) != 1 {
		t.Fatalf("empty variables changed the config: port %d, namespaces %q, handlers %d",
			cfg.Worker.Web.Port, cfg.Worker.Namespaces, len(cfg.Worker.Handlers))
	}
}

// A value that is not UTF-8 is reported by its variable and changes
// nothing (found by FuzzConfigDecode: it reached Config, and so
// PostgreSQL and the logs, as is).
func TestEnvInvalidUTF8(t *testing.T) {
	t.Parallel()
	_, err := config.Load("", envconfig.MapLookuper(map[string]string{
		"TASKER_WORKER_WORKER_ID": "runner-\xff",
		"DATABASE_URL":            "postgres://db/\xfe",
	}))
	var ce *config.Error
	if !errors.As(err, &ce) || len(ce.Problems) != 2 {
		t.Fatalf("Load = %v, want two problems", err)
	}
	for i, want := range []string{"database.url: env DATABASE_URL: not valid UTF-8", "worker.worker_id: env TASKER_WORKER_WORKER_ID: not valid UTF-8"} {
		if got := ce.Problems[i].String(); got != want {
			t.Errorf("problem %d = %q, want %q", i, got, want)
		}
	}
}

func TestEnvProblems(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		env  map[string]string
		want []config.Problem
	}{
		{
			name: "scalars",
			env: map[string]string{
				"TASKER_WORKER_WEB_PORT":           "abc",
				"TASKER_DATABASE_MIGRATE_ON_START": "maybe",
				"TASKER_WORKER_EVENT_SYSTEMS_WORKER_METADATA_FALLBACK_POLLER_POLL_INTERVAL_SECONDS": "fast",
				"TASKER_WORKER_GRPC_PORT": "99999999999999999999",
			},
			want: []config.Problem{
				{Key: "database.migrate_on_start", Message: `env TASKER_DATABASE_MIGRATE_ON_START: expected boolean (true or false), got "maybe"`},
				{Key: "worker.web.port", Message: `env TASKER_WORKER_WEB_PORT: expected integer, got "abc"`},
				{Key: "worker.grpc.port", Message: `env TASKER_WORKER_GRPC_PORT: "99999999999999999999" is out of range`},
				{Key: "worker.event_systems.worker.metadata.fallback_poller.poll_interval_seconds", Message: `env TASKER_WORKER_EVENT_SYSTEMS_WORKER_METADATA_FALLBACK_POLLER_POLL_INTERVAL_SECONDS: expected number, got "fast"`},
			},
		},
		{
			name: "invalid JSON",
			env:  map[string]string{"TASKER_WORKER_HANDLERS": `[{"pattern":`},
			want: []config.Problem{
				{Key: "worker.handlers", Message: "env TASKER_WORKER_HANDLERS: invalid JSON: unexpected EOF"},
			},
		},
		{
			name: "JSON of the wrong shape",
			env: map[string]string{
				"TASKER_WORKER_HANDLERS":          `{"pattern":"a"}`,
				"TASKER_WORKER_WEB_AUTH_API_KEYS": `[{"name":"a","hash":"sha256:00","scope":"read"}] x`,
			},
			want: []config.Problem{
				{Key: "worker.web.auth.api_keys", Message: "env TASKER_WORKER_WEB_AUTH_API_KEYS: invalid JSON: unexpected data after the JSON value"},
				{Key: "worker.handlers", Message: "env TASKER_WORKER_HANDLERS: expected array of tables, got table"},
			},
		},
		{
			name: "unknown and mistyped keys inside JSON",
			env: map[string]string{
				"TASKER_WORKER_HANDLERS": `[{"pattern":"a","url":"http://a"},{"pattern":"b","url":"http://b","prot":"http","batch_max":1.5}]`,
			},
			want: []config.Problem{
				{Key: "worker.handlers[1].batch_max", Message: "env TASKER_WORKER_HANDLERS: expected integer, got float 1.5"},
				{Key: "worker.handlers[1].prot", Message: `env TASKER_WORKER_HANDLERS: unknown key (did you mean "protocol"?)`},
			},
		},
		{
			// Values that decode but are invalid are validation problems,
			// named by key like those from the file.
			name: "invalid values",
			env:  map[string]string{"TASKER_WORKER_EVENT_SYSTEMS_WORKER_DEPLOYMENT_MODE": "fast"},
			want: []config.Problem{
				{Key: "worker.event_systems.worker.deployment_mode", Message: `"fast" is not one of polling_only, event_driven_only, hybrid`},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := config.Load("", envconfig.MapLookuper(tt.env))
			got := problemsOf(t, err)
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("problems:\n%s\nwant:\n%s", fmtProblems(got), fmtProblems(tt.want))
			}
		})
	}
}

// Bad variables do not stop good ones from applying: validation sees the
// good values (here the port) and reports on them.
func TestEnvGoodVariablesApplyDespiteBadOnes(t *testing.T) {
	t.Parallel()
	_, err := config.Load("", envconfig.MapLookuper(map[string]string{
		"TASKER_WORKER_WEB_PORT":  "70000",
		"TASKER_WORKER_GRPC_PORT": "x",
	}))
	got := problemsOf(t, err)
	want := []config.Problem{
		{Key: "worker.grpc.port", Message: `env TASKER_WORKER_GRPC_PORT: expected integer, got "x"`},
		{Key: "worker.web.port", Message: "must be between 1 and 65535, got 70000"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("problems:\n%s\nwant:\n%s", fmtProblems(got), fmtProblems(want))
	}
}

func TestEnvVar(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"worker.web.port":     "TASKER_WORKER_WEB_PORT",
		"database.url":        "TASKER_DATABASE_URL",
		"worker.handlers":     "TASKER_WORKER_HANDLERS",
		"worker.web":          "",
		"worker.web.nope":     "",
		"worker.handlers.url": "",
	}
	for key, want := range tests {
		if got := config.EnvVar(key); got != want {
			t.Errorf("EnvVar(%q) = %q, want %q", key, got, want)
		}
	}
}
