package config_test

import (
	"encoding/base64"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/tasker-runner/tasker-runner/config"
)

var (
	goodHash   = "sha256:" + strings.Repeat("a1", 32)
	goodSecret = "whsec_" + base64.StdEncoding.EncodeToString([]byte(strings.Repeat("k", 32)))
)

func handler(pattern, url string) config.Endpoint {
	e := config.DefaultEndpoint()
	e.Pattern, e.URL = pattern, url
	return e
}

func TestValidate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		mutate func(c *config.Config)
		want   []config.Problem // nil: valid
	}{
		{
			name: "a full valid configuration",
			mutate: func(c *config.Config) {
				c.Database.URL = "postgres://u:p@db/tasker"
				c.Worker.Namespaces = []string{"a", "b"}
				c.Worker.Web.Auth.Enabled = true
				c.Worker.Web.Auth.APIKeys = config.APIKeys{{Name: "ci", Hash: goodHash, Scope: config.ScopeAdmin}}
				c.Worker.Web.Auth.JWT = config.JWT{Enabled: true, Issuer: "i", Audience: "a",
					HS256Secret: strings.Repeat("s", 32), ScopeClaim: "scope"}
				e := handler("payments.*", "https://pay.example/{callable}")
				e.Headers = map[string]string{"Authorization": "Bearer x"}
				e.Secret = goodSecret
				g := handler("inproc", "")
				g.Protocol = config.ProtocolGo
				c.Worker.Handlers = config.Endpoints{e, g, handler("payments.*", "http://other")}
				c.Worker.Handlers[2].Namespace = "eu" // same pattern, other namespace
			},
		},
		{
			name:   "key=value database URL",
			mutate: func(c *config.Config) { c.Database.URL = "host=db user=tasker dbname=tasker" },
		},
		{
			name: "database",
			mutate: func(c *config.Config) {
				c.Database.URL = "mysql://u:secret@db/x"
				c.Database.MaxConns = 2
				c.Database.MinConns = 3
				c.Database.ConnectTimeoutSeconds = 0
			},
			want: []config.Problem{
				{Key: "database.url", Message: `scheme "mysql" is not one of postgres, postgresql`},
				{Key: "database.min_conns", Message: "must not exceed database.max_conns (2), got 3"},
				{Key: "database.connect_timeout_seconds", Message: "must be at least 1, got 0"},
			},
		},
		{
			name: "url policy and secret dirs",
			mutate: func(c *config.Config) {
				c.Worker.Callout.URLPolicy = config.URLPolicy{
					AllowHosts:     []string{"ok.example", "*.svc.cluster.local", "http://x", ""},
					AllowCIDRs:     []string{"10.0.0.0/8", "169.254.169.254", "fd00::/8", "10.0.0.0/33", "nope"},
					AllowedSchemes: []string{"https", "ftp"},
				}
				c.Worker.Callout.SecretDirs = []string{"/run/secrets", "secrets"}
			},
			want: []config.Problem{
				{Key: "worker.callout.url_policy.allow_cidrs[3]", Message: `"10.0.0.0/33" is not a CIDR (like 10.0.0.0/8 or fd00::/8) or an IP address`},
				{Key: "worker.callout.url_policy.allow_cidrs[4]", Message: `"nope" is not a CIDR (like 10.0.0.0/8 or fd00::/8) or an IP address`},
				{Key: "worker.callout.url_policy.allow_hosts[2]", Message: `"http://x" is not a host name (no scheme, port or path; *.example.com allows subdomains)`},
				{Key: "worker.callout.url_policy.allow_hosts[3]", Message: `"" is not a host name (no scheme, port or path; *.example.com allows subdomains)`},
				{Key: "worker.callout.url_policy.allowed_schemes[1]", Message: `"ftp" is not "http" or "https" (handlers are called over HTTP only, Connect and gRPC included)`},
				{Key: "worker.callout.secret_dirs[1]", Message: `must be an absolute directory, got "secrets"`},
			},
		},
		{
			name: "ports",
			mutate: func(c *config.Config) {
				c.Worker.Web.Port = 0
				c.Worker.GRPC.Port = 70000
			},
			want: []config.Problem{
				{Key: "worker.web.port", Message: "must be between 1 and 65535, got 0"},
				{Key: "worker.grpc.port", Message: "must be between 1 and 65535, got 70000"},
			},
		},
		{
			name:   "web and grpc on one port",
			mutate: func(c *config.Config) { c.Worker.GRPC.Port = 8081 },
			want: []config.Problem{
				{Key: "worker.grpc.port", Message: "8081 is also worker.web.port; the two servers need different ports"},
			},
		},
		{
			name:   "web and grpc on one port but grpc disabled",
			mutate: func(c *config.Config) { c.Worker.GRPC.Port = 8081; c.Worker.GRPC.Enabled = false },
		},
		{
			name: "non-loopback listeners without auth",
			mutate: func(c *config.Config) {
				c.Worker.Web.Host = "0.0.0.0"
				c.Worker.GRPC.Host = "10.1.2.3"
			},
			want: []config.Problem{
				{Key: "worker.web.host", Message: openMsg(`"0.0.0.0" (every interface)`)},
				{Key: "worker.grpc.host", Message: openMsg(`"10.1.2.3"`)},
			},
		},
		{
			name:   "empty host means every interface",
			mutate: func(c *config.Config) { c.Worker.GRPC.Host = "" },
			want:   []config.Problem{{Key: "worker.grpc.host", Message: openMsg(`"" (every interface)`)}},
		},
		{
			name:   "a host name other than localhost",
			mutate: func(c *config.Config) { c.Worker.Web.Host = "runner.internal"; c.Worker.GRPC.Host = "::" },
			want: []config.Problem{
				{Key: "worker.web.host", Message: openMsg(`"runner.internal"`)},
				{Key: "worker.grpc.host", Message: openMsg(`"::" (every interface)`)},
			},
		},
		{
			name: "loopback hosts",
			mutate: func(c *config.Config) {
				c.Worker.Web.Host = "localhost"
				c.Worker.GRPC.Host = "::1"
			},
		},
		{
			name: "non-loopback listener disabled",
			mutate: func(c *config.Config) {
				c.Worker.GRPC.Host = "0.0.0.0"
				c.Worker.GRPC.Enabled = false
			},
		},
		{
			name: "non-loopback listeners with auth",
			mutate: func(c *config.Config) {
				c.Worker.Web.Host, c.Worker.GRPC.Host = "0.0.0.0", "::"
				c.Worker.Web.Auth.Enabled = true
				c.Worker.Web.Auth.APIKeys = config.APIKeys{{Name: "ops", Hash: goodHash, Scope: config.ScopeAdmin}}
			},
		},
		{
			name: "non-loopback listeners allowed without auth",
			mutate: func(c *config.Config) {
				c.Worker.Web.Host, c.Worker.GRPC.Host = "0.0.0.0", "0.0.0.0"
				c.Worker.Web.Auth.AllowUnauthenticated = true
			},
		},
		{
			name: "tls pairs",
			mutate: func(c *config.Config) {
				c.Worker.Web.TLS = config.TLS{CertFile: "/etc/tls/tls.crt"}
				c.Worker.GRPC.TLS = config.TLS{CertFile: " ", KeyFile: "/etc/tls/tls.key"}
			},
			want: []config.Problem{
				{Key: "worker.web.tls.key_file", Message: "required when worker.web.tls.cert_file is set"},
				{Key: "worker.grpc.tls.cert_file", Message: "must not be blank"},
			},
		},
		{
			name:   "tls key without cert",
			mutate: func(c *config.Config) { c.Worker.Web.TLS = config.TLS{KeyFile: "k.pem"} },
			want:   []config.Problem{{Key: "worker.web.tls.cert_file", Message: "required when worker.web.tls.key_file is set"}},
		},
		{
			name: "tls on both listeners",
			mutate: func(c *config.Config) {
				c.Worker.Web.TLS = config.TLS{CertFile: "c.pem", KeyFile: "k.pem"}
				c.Worker.GRPC.TLS = config.TLS{CertFile: "c.pem", KeyFile: "k.pem"}
			},
		},
		{
			name:   "namespaces",
			mutate: func(c *config.Config) { c.Worker.Namespaces = []string{"a", "", "a"} },
			want: []config.Problem{
				{Key: "worker.namespaces[1]", Message: "must not be empty"},
				{Key: "worker.namespaces[2]", Message: `"a" duplicates worker.namespaces[0]`},
			},
		},
		{
			name: "api keys",
			mutate: func(c *config.Config) {
				c.Worker.Web.Auth.Enabled = true
				c.Worker.Web.Auth.APIKeys = config.APIKeys{
					{Name: "a", Hash: goodHash, Scope: config.ScopeRead},
					{Name: "a", Hash: "sha256:xyz", Scope: "write"},
					{Hash: strings.ToUpper(goodHash[7:]), Scope: config.ScopeAdmin},
					{Name: "b", Hash: strings.Replace(goodHash, "a1", "A1", 1), Scope: config.ScopeAdmin},
				}
			},
			want: []config.Problem{
				{Key: "worker.web.auth.api_keys[1].name", Message: `"a" duplicates worker.web.auth.api_keys[0]`},
				{Key: "worker.web.auth.api_keys[1].hash", Message: `must be "sha256:" followed by 64 hex digits (the SHA-256 of the key)`},
				{Key: "worker.web.auth.api_keys[1].scope", Message: `"write" is not one of read, admin`},
				{Key: "worker.web.auth.api_keys[2].name", Message: "required"},
				{Key: "worker.web.auth.api_keys[2].hash", Message: `must be "sha256:" followed by 64 hex digits (the SHA-256 of the key)`},
				{Key: "worker.web.auth.api_keys[3].hash", Message: "same key as worker.web.auth.api_keys[0]"},
			},
		},
		{
			name:   "auth with nothing to authenticate with",
			mutate: func(c *config.Config) { c.Worker.Web.Auth.Enabled = true },
			want: []config.Problem{
				{Key: "worker.web.auth.enabled", Message: "no request could authenticate: add api_keys or enable jwt"},
			},
		},
		{
			name: "jwt",
			mutate: func(c *config.Config) {
				c.Worker.Web.Auth.JWT = config.JWT{Enabled: true, HS256Secret: "short", PublicKeyFiles: []string{""}}
			},
			want: []config.Problem{
				{Key: "worker.web.auth.jwt.enabled", Message: "has no effect while worker.web.auth.enabled is false"},
				{Key: "worker.web.auth.jwt.issuer", Message: "required when jwt is enabled"},
				{Key: "worker.web.auth.jwt.audience", Message: "required when jwt is enabled"},
				{Key: "worker.web.auth.jwt.hs256_secret", Message: "must be at least 32 bytes, got 5"},
				{Key: "worker.web.auth.jwt.public_key_files[0]", Message: "must not be empty"},
				{Key: "worker.web.auth.jwt.scope_claim", Message: "must not be empty"},
			},
		},
		{
			name: "jwt without a key",
			mutate: func(c *config.Config) {
				c.Worker.Web.Auth.Enabled = true
				c.Worker.Web.Auth.JWT = config.JWT{Enabled: true, Issuer: "i", Audience: "a", ScopeClaim: "scope"}
			},
			want: []config.Problem{
				{Key: "worker.web.auth.jwt", Message: "enabled but has no key: set hs256_secret or public_key_files"},
			},
		},
		{
			name: "event system",
			mutate: func(c *config.Config) {
				m := &c.Worker.EventSystems.Worker.Metadata
				m.PushConsumer.MaxConcurrentSteps = 0
				m.FallbackPoller.PollIntervalSeconds = math.NaN()
				m.Listener.ReconnectInitialMS = 500
				m.Listener.ReconnectMaxMS = 100
			},
			want: []config.Problem{
				{Key: "worker.event_systems.worker.metadata.push_consumer.max_concurrent_steps", Message: "must be at least 1, got 0"},
				{Key: "worker.event_systems.worker.metadata.fallback_poller.poll_interval_seconds", Message: "must be greater than 0 and at most 86400, got NaN"},
				{Key: "worker.event_systems.worker.metadata.listener.reconnect_max_ms", Message: "must be at least metadata.listener.reconnect_initial_ms (500), got 100"},
			},
		},
		{
			name: "retention: 0 keeps a state, fractions of days are fine",
			mutate: func(c *config.Config) {
				c.Worker.Retention.CompleteAfterDays = 0.5
				c.Worker.Retention.FailedAfterDays = 0
				c.Worker.Retention.CancelledAfterDays = config.MaxRetentionDays
			},
		},
		{
			name: "retention",
			mutate: func(c *config.Config) {
				r := &c.Worker.Retention
				r.CompleteAfterDays = -1
				r.FailedAfterDays = math.NaN()
				r.CancelledAfterDays = math.Inf(1)
				r.IntervalSeconds = 0
				r.BatchSize = 100_001
				r.BatchMaxSteps = 0
				r.MaxBatchesPerRun = -2
			},
			want: []config.Problem{
				{Key: "worker.retention.complete_after_days", Message: "must be 0 (keep forever) or a number of days up to 36500, got -1"},
				{Key: "worker.retention.failed_after_days", Message: "must be 0 (keep forever) or a number of days up to 36500, got NaN"},
				{Key: "worker.retention.cancelled_after_days", Message: "must be 0 (keep forever) or a number of days up to 36500, got +Inf"},
				{Key: "worker.retention.interval_seconds", Message: "must be at least 1, got 0"},
				{Key: "worker.retention.batch_size", Message: "must be between 1 and 100000, got 100001"},
				{Key: "worker.retention.batch_max_steps", Message: "must be at least 1, got 0"},
				{Key: "worker.retention.max_batches_per_run", Message: "must be at least 1, got -2"},
			},
		},
		{
			name: "polling_only without the poller",
			mutate: func(c *config.Config) {
				c.Worker.EventSystems.Worker.DeploymentMode = config.DeploymentModePollingOnly
				c.Worker.EventSystems.Worker.Metadata.FallbackPoller.Enabled = false
			},
			want: []config.Problem{
				{Key: "worker.event_systems.worker.deployment_mode", Message: `"polling_only" needs metadata.fallback_poller.enabled, or no ready step would ever be found`},
			},
		},
		{
			name: "hybrid with only the poller",
			mutate: func(c *config.Config) {
				c.Worker.EventSystems.Worker.Metadata.PushConsumer.Enabled = false
			},
		},
		{
			name: "leases, completion, retry, callout",
			mutate: func(c *config.Config) {
				c.Worker.Leases.HeartbeatIntervalSeconds = 30
				c.Worker.Completion.MaxBatch = 0
				c.Worker.Retry.MaxAttempts = 0
				c.Worker.Retry.MaxBackoffMS = 10
				c.Worker.Callout.MaxIdleConnsPerHost = 0
				c.Worker.Callout.Breaker.OpenTimeoutSeconds = 0
			},
			want: []config.Problem{
				{Key: "worker.leases.heartbeat_interval_seconds", Message: "must be less than worker.leases.visibility_timeout_seconds (30), got 30: leases would expire before they are extended"},
				{Key: "worker.completion.max_batch", Message: "must be at least 1, got 0"},
				{Key: "worker.retry.max_attempts", Message: "must be at least 1, got 0"},
				{Key: "worker.retry.max_backoff_ms", Message: "must be at least worker.retry.backoff_base_ms (1000), got 10"},
				{Key: "worker.callout.max_idle_conns_per_host", Message: "must be at least 1, got 0"},
				{Key: "worker.callout.breaker.open_timeout_seconds", Message: "must be at least 1, got 0"},
			},
		},
		{
			name: "handlers",
			mutate: func(c *config.Config) {
				bad := handler("[", "ftp://h/x")
				bad.Protocol = "smtp"
				bad.BatchMax = 0
				bad.TimeoutMS = -1
				bad.Headers = map[string]string{"Idempotency-Key": "x", "Bad Name": "x", "X-Ok": "a\nb"}
				bad.Secret = "hunter2"
				goURL := handler("g", "http://h")
				goURL.Protocol = config.ProtocolGo
				c.Worker.Handlers = config.Endpoints{
					bad,
					handler("", "relative/path"),
					handler("a", "http://h/{callabel}"),
					handler("a", ""),
					goURL,
					handler("u", "https://user:pw@/x"),
				}
			},
			want: []config.Problem{
				{Key: "worker.handlers[0].pattern", Message: `"[" is not a valid glob: syntax error in pattern`},
				{Key: "worker.handlers[0].protocol", Message: `"smtp" is not one of http, connect, grpc, go`},
				{Key: "worker.handlers[0].url", Message: `must be an absolute http or https URL, got "ftp://h/x"`},
				{Key: "worker.handlers[0].timeout_ms", Message: "must be at least 0, got -1"},
				{Key: "worker.handlers[0].batch_max", Message: "must be at least 1, got 0"},
				{Key: `worker.handlers[0].headers."Bad Name"`, Message: "is not a valid header name"},
				{Key: "worker.handlers[0].headers.Idempotency-Key", Message: "is set by the runner and cannot be overridden"},
				{Key: "worker.handlers[0].headers.X-Ok", Message: "value must not contain CR, LF or NUL"},
				{Key: "worker.handlers[0].secret", Message: `must be "whsec_" followed by the base64 of 24 to 64 random bytes`},
				{Key: "worker.handlers[1].pattern", Message: "required"},
				{Key: "worker.handlers[1].url", Message: `must be an absolute http or https URL, got "relative/path"`},
				{Key: "worker.handlers[2].url", Message: `only the {callable} placeholder is supported, got "http://h/{callabel}"`},
				{Key: "worker.handlers[3].pattern", Message: `"a" in namespace "" duplicates worker.handlers[2]`},
				{Key: "worker.handlers[3].url", Message: `required for protocol "http"`},
				{Key: "worker.handlers[4].url", Message: `not used with protocol "go"; remove it`},
				{Key: "worker.handlers[5].url", Message: `must be an absolute http or https URL, got "https://user:xxxxx@/x"`},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := config.Default()
			tt.mutate(&cfg)
			err := cfg.Validate()
			if tt.want == nil {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			got := problemsOf(t, err)
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("problems:\n%s\nwant:\n%s", fmtProblems(got), fmtProblems(tt.want))
			}
			// Secrets never appear in messages.
			for _, secret := range []string{"hunter2", "secret@", "short"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error shows the secret %q:\n%s", secret, err)
				}
			}
		})
	}
}

// openMsg is the message refusing a listener host that is reachable from
// the network while auth is off.
func openMsg(host string) string {
	return host + " is reachable from the network and worker.web.auth.enabled is false, so anyone who can connect " +
		"could use the management API: enable worker.web.auth (with api_keys or jwt), or set " +
		"worker.web.auth.allow_unauthenticated = true (TASKER_WORKER_WEB_AUTH_ALLOW_UNAUTHENTICATED=true) to accept that; " +
		"or listen on 127.0.0.1"
}

func TestRequireDatabase(t *testing.T) {
	t.Parallel()
	cfg := config.Default()
	err := cfg.RequireDatabase()
	want := "database.url: required: set it in the file, or with DATABASE_URL or TASKER_DATABASE_URL"
	if err == nil || err.Error() != want {
		t.Fatalf("RequireDatabase() = %v, want %q", err, want)
	}
	cfg.Database.URL = "postgres://db/tasker"
	if err := cfg.RequireDatabase(); err != nil {
		t.Fatalf("RequireDatabase() = %v with a URL set", err)
	}
}
