package config

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"math"
	"net/url"
	"path"
	"path/filepath"
	"strings"
)

// Validate checks every value and returns an [*Error] listing all the
// problems, or nil. It does no I/O (it does not open public_key_files, for
// instance), so it gives the same answer on any machine.
//
// database.url is not required here; see [Config.RequireDatabase].
func (c Config) Validate() error { return c.validate().err("") }

// RequireDatabase returns an [*Error] when database.url is empty. Commands
// that connect to a database they do not own (serve, migrate) call it; dev
// starts its own database and does not.
func (c Config) RequireDatabase() error {
	if strings.TrimSpace(c.Database.URL) != "" {
		return nil
	}
	var ps problems
	ps.add("database.url", "required: set it in the file, or with %s or %sDATABASE_URL", DatabaseURLEnv, EnvPrefix)
	return ps.err("")
}

func (c Config) validate() problems {
	var ps problems
	c.Database.validate(&ps)
	c.Worker.validate(&ps)
	return ps
}

func (d Database) validate(ps *problems) {
	if d.URL != "" {
		checkDatabaseURL(ps, "database.url", d.URL)
	}
	atLeast(ps, "database.max_conns", d.MaxConns, 1)
	atLeast(ps, "database.min_conns", d.MinConns, 0)
	if d.MaxConns >= 1 && d.MinConns > d.MaxConns {
		ps.add("database.min_conns", "must not exceed database.max_conns (%d), got %d", d.MaxConns, d.MinConns)
	}
	atLeast(ps, "database.connect_timeout_seconds", d.ConnectTimeoutSeconds, 1)
}

// checkDatabaseURL accepts key=value connection strings as they are and
// checks URLs for a PostgreSQL scheme. The value is never echoed: it
// usually holds a password.
func checkDatabaseURL(ps *problems, key, raw string) {
	if !strings.Contains(raw, "://") {
		return
	}
	u, err := url.Parse(raw)
	if err != nil {
		ps.add(key, "is not a valid URL")
		return
	}
	if u.Scheme != "postgres" && u.Scheme != "postgresql" {
		ps.add(key, "scheme %q is not one of postgres, postgresql", u.Scheme)
	}
}

func (w Worker) validate(ps *problems) {
	seen := make(map[string]int)
	for i, ns := range w.Namespaces {
		key := fmt.Sprintf("worker.namespaces[%d]", i)
		switch j, dup := seen[ns]; {
		case strings.TrimSpace(ns) == "":
			ps.add(key, "must not be empty")
		case dup:
			ps.add(key, "%q duplicates worker.namespaces[%d]", ns, j)
		default:
			seen[ns] = i
		}
	}
	atLeast(ps, "worker.shutdown_timeout_seconds", w.ShutdownTimeoutSeconds, 0)

	port(ps, "worker.web.port", w.Web.Port)
	atLeast(ps, "worker.web.max_request_bytes", w.Web.MaxRequestBytes, 1)
	w.Web.Auth.validate(ps)
	port(ps, "worker.grpc.port", w.GRPC.Port)
	if w.Web.Enabled && w.GRPC.Enabled && w.Web.Port == w.GRPC.Port &&
		(w.Web.Host == w.GRPC.Host || isWildcard(w.Web.Host) || isWildcard(w.GRPC.Host)) {
		ps.add("worker.grpc.port", "%d is also worker.web.port; the two servers need different ports", w.GRPC.Port)
	}
	w.Web.TLS.validate(ps, "worker.web.tls")
	w.GRPC.TLS.validate(ps, "worker.grpc.tls")
	if !w.Web.Auth.AllowUnauthenticated {
		hosts := map[string]string{"worker.web.host": w.Web.Host, "worker.grpc.host": w.GRPC.Host}
		for _, key := range w.OpenWithoutAuth() {
			ps.add(key, "%s is reachable from the network and worker.web.auth.enabled is false, so anyone who can connect "+
				"could use the management API: enable worker.web.auth (with api_keys or jwt), or set "+
				"worker.web.auth.allow_unauthenticated = true (%s=true) to accept that; or listen on 127.0.0.1",
				describeHost(hosts[key]), EnvVar("worker.web.auth.allow_unauthenticated"))
		}
	}

	w.EventSystems.Worker.validate(ps)

	atLeast(ps, "worker.leases.visibility_timeout_seconds", w.Leases.VisibilityTimeoutSeconds, 1)
	atLeast(ps, "worker.leases.heartbeat_interval_seconds", w.Leases.HeartbeatIntervalSeconds, 1)
	// Comparisons between two keys only run when both are valid on their
	// own, so one bad value is not reported twice.
	if w.Leases.VisibilityTimeoutSeconds >= 1 && w.Leases.HeartbeatIntervalSeconds >= w.Leases.VisibilityTimeoutSeconds {
		ps.add("worker.leases.heartbeat_interval_seconds",
			"must be less than worker.leases.visibility_timeout_seconds (%d), got %d: leases would expire before they are extended",
			w.Leases.VisibilityTimeoutSeconds, w.Leases.HeartbeatIntervalSeconds)
	}

	atLeast(ps, "worker.completion.flush_interval_ms", w.Completion.FlushIntervalMS, 1)
	atLeast(ps, "worker.completion.max_batch", w.Completion.MaxBatch, 1)
	atLeast(ps, "worker.completion.writers", w.Completion.Writers, 1)

	atLeast(ps, "worker.dynamic.max_steps_per_outcome", w.Dynamic.MaxStepsPerOutcome, 1)
	atLeast(ps, "worker.dynamic.max_steps_per_task", w.Dynamic.MaxStepsPerTask, 1)
	atLeast(ps, "worker.dynamic.max_yields_per_step", w.Dynamic.MaxYieldsPerStep, 1)
	w.Retention.validate(ps)
	atLeast(ps, "worker.retry.max_attempts", w.Retry.MaxAttempts, 1)
	atLeast(ps, "worker.retry.backoff_base_ms", w.Retry.BackoffBaseMS, 0)
	if w.Retry.BackoffBaseMS >= 0 && w.Retry.MaxBackoffMS < w.Retry.BackoffBaseMS {
		ps.add("worker.retry.max_backoff_ms", "must be at least worker.retry.backoff_base_ms (%d), got %d",
			w.Retry.BackoffBaseMS, w.Retry.MaxBackoffMS)
	}

	atLeast(ps, "worker.callout.default_timeout_seconds", w.Callout.DefaultTimeoutSeconds, 1)
	atLeast(ps, "worker.callout.max_response_bytes", w.Callout.MaxResponseBytes, 1)
	atLeast(ps, "worker.callout.max_idle_conns_per_host", w.Callout.MaxIdleConnsPerHost, 1)
	atLeast(ps, "worker.callout.breaker.max_requests", w.Callout.Breaker.MaxRequests, 1)
	atLeast(ps, "worker.callout.breaker.interval_seconds", w.Callout.Breaker.IntervalSeconds, 0)
	atLeast(ps, "worker.callout.breaker.open_timeout_seconds", w.Callout.Breaker.OpenTimeoutSeconds, 1)
	atLeast(ps, "worker.callout.breaker.consecutive_failures", w.Callout.Breaker.ConsecutiveFailures, 1)

	w.Callout.URLPolicy.validate(ps)
	for i, d := range w.Callout.SecretDirs {
		if !filepath.IsAbs(d) {
			ps.add(fmt.Sprintf("worker.callout.secret_dirs[%d]", i), "must be an absolute directory, got %q", d)
		}
	}

	w.Handlers.validate(ps)
}

func (u URLPolicy) validate(ps *problems) {
	const key = "worker.callout.url_policy"
	for i, c := range u.AllowCIDRs {
		if _, ok := parseCIDR(c); !ok {
			ps.add(fmt.Sprintf("%s.allow_cidrs[%d]", key, i), "%q is not a CIDR (like 10.0.0.0/8 or fd00::/8) or an IP address", c)
		}
	}
	for i, h := range u.AllowHosts {
		if strings.TrimSpace(h) == "" || strings.ContainsAny(h, "/:@ ") && !strings.HasPrefix(h, "[") {
			ps.add(fmt.Sprintf("%s.allow_hosts[%d]", key, i), "%q is not a host name (no scheme, port or path; *.example.com allows subdomains)", h)
		}
	}
	if len(u.AllowedSchemes) == 0 {
		ps.add(key+".allowed_schemes", `must list at least one of "http", "https"`)
	}
	for i, sc := range u.AllowedSchemes {
		if sc != "http" && sc != "https" {
			ps.add(fmt.Sprintf("%s.allowed_schemes[%d]", key, i), `%q is not "http" or "https" (handlers are called over HTTP only, Connect and gRPC included)`, sc)
		}
	}
}

func (r Retention) validate(ps *problems) {
	const key = "worker.retention"
	for _, a := range []struct {
		name string
		v    float64
	}{{"complete_after_days", r.CompleteAfterDays}, {"failed_after_days", r.FailedAfterDays}, {"cancelled_after_days", r.CancelledAfterDays}} {
		// NaN and infinities are valid TOML floats; "!(x >= 0)" rejects NaN too.
		if !(a.v >= 0) || a.v > MaxRetentionDays {
			ps.add(key+"."+a.name, "must be 0 (keep forever) or a number of days up to %d, got %v", MaxRetentionDays, a.v)
		}
	}
	atLeast(ps, key+".interval_seconds", r.IntervalSeconds, 1)
	if r.BatchSize < 1 || r.BatchSize > maxRetentionBatch {
		ps.add(key+".batch_size", "must be between 1 and %d, got %d", maxRetentionBatch, r.BatchSize)
	}
	atLeast(ps, key+".batch_max_steps", r.BatchMaxSteps, 1)
	atLeast(ps, key+".max_batches_per_run", r.MaxBatchesPerRun, 1)
}

// maxRetentionBatch caps worker.retention.batch_size: one transaction holds
// the locks of its tasks and steps until it commits.
const maxRetentionBatch = 100_000

func isWildcard(host string) bool { return host == "" || host == "0.0.0.0" || host == "::" }

// describeHost quotes a listen host for a message, saying what the
// wildcards mean.
func describeHost(host string) string {
	if isWildcard(host) {
		return fmt.Sprintf("%q (every interface)", host)
	}
	return fmt.Sprintf("%q", host)
}

// validate requires both files or neither. It does not read them (Validate
// does no I/O); the command that serves them does, naming the key.
func (t TLS) validate(ps *problems, key string) {
	for _, f := range []struct{ name, value string }{{"cert_file", t.CertFile}, {"key_file", t.KeyFile}} {
		if f.value != "" && strings.TrimSpace(f.value) == "" {
			ps.add(key+"."+f.name, "must not be blank")
		}
	}
	switch {
	case t.CertFile != "" && t.KeyFile == "":
		ps.add(key+".key_file", "required when %s.cert_file is set", key)
	case t.CertFile == "" && t.KeyFile != "":
		ps.add(key+".cert_file", "required when %s.key_file is set", key)
	}
}

func (a Auth) validate(ps *problems) {
	const key = "worker.web.auth"
	names, hashes := make(map[string]int), make(map[string]int)
	for i, k := range a.APIKeys {
		p := fmt.Sprintf("%s.api_keys[%d]", key, i)
		if k.Name == "" {
			ps.add(p+".name", "required")
		} else if j, dup := names[k.Name]; dup {
			ps.add(p+".name", "%q duplicates %s.api_keys[%d]", k.Name, key, j)
		} else {
			names[k.Name] = i
		}
		if !validKeyHash(k.Hash) {
			ps.add(p+".hash", `must be "sha256:" followed by 64 hex digits (the SHA-256 of the key)`)
		} else if j, dup := hashes[strings.ToLower(k.Hash)]; dup {
			ps.add(p+".hash", "same key as %s.api_keys[%d]", key, j)
		} else {
			hashes[strings.ToLower(k.Hash)] = i
		}
		oneOf(ps, p+".scope", k.Scope, scopes)
	}
	if a.Enabled && len(a.APIKeys) == 0 && !a.JWT.Enabled {
		ps.add(key+".enabled", "no request could authenticate: add api_keys or enable jwt")
	}

	j := a.JWT
	if j.Enabled && !a.Enabled {
		// Silently serving /v1 without auth while jwt says enabled would be
		// the worst way to find out.
		ps.add(key+".jwt.enabled", "has no effect while %s.enabled is false", key)
	}
	if j.Enabled {
		if j.Issuer == "" {
			ps.add(key+".jwt.issuer", "required when jwt is enabled")
		}
		if j.Audience == "" {
			ps.add(key+".jwt.audience", "required when jwt is enabled")
		}
		if j.HS256Secret == "" && len(j.PublicKeyFiles) == 0 {
			ps.add(key+".jwt", "enabled but has no key: set hs256_secret or public_key_files")
		}
	}
	// RFC 7518 section 3.2: an HS256 key must be at least as long as the hash.
	if n := len(j.HS256Secret); n > 0 && n < 32 {
		ps.add(key+".jwt.hs256_secret", "must be at least 32 bytes, got %d", n)
	}
	for i, f := range j.PublicKeyFiles {
		if strings.TrimSpace(f) == "" {
			ps.add(fmt.Sprintf("%s.jwt.public_key_files[%d]", key, i), "must not be empty")
		}
	}
	if j.ScopeClaim == "" {
		ps.add(key+".jwt.scope_claim", "must not be empty")
	}
}

func validKeyHash(h string) bool {
	hexDigits, ok := strings.CutPrefix(h, "sha256:")
	if !ok || len(hexDigits) != 64 {
		return false
	}
	_, err := hex.DecodeString(hexDigits)
	return err == nil
}

func (e EventSystem) validate(ps *problems) {
	const key = "worker.event_systems.worker"
	oneOf(ps, key+".deployment_mode", e.DeploymentMode, deploymentModes)
	m := e.Metadata
	if e.DeploymentMode.Valid() {
		polls := e.DeploymentMode.Polls() && m.FallbackPoller.Enabled
		listens := e.DeploymentMode.Listens() && m.PushConsumer.Enabled
		if !polls && !listens {
			var need string
			switch e.DeploymentMode {
			case DeploymentModePollingOnly:
				need = "metadata.fallback_poller.enabled"
			case DeploymentModeEventDrivenOnly:
				need = "metadata.push_consumer.enabled"
			default:
				need = "metadata.push_consumer.enabled or metadata.fallback_poller.enabled"
			}
			ps.add(key+".deployment_mode", "%q needs %s, or no ready step would ever be found", e.DeploymentMode, need)
		}
	}
	atLeast(ps, key+".metadata.push_consumer.max_concurrent_steps", m.PushConsumer.MaxConcurrentSteps, 1)
	// NaN and infinities are valid TOML floats; "!(x > 0)" rejects NaN too.
	if iv := m.FallbackPoller.PollIntervalSeconds; !(iv > 0) || iv > 86400 || math.IsInf(iv, 0) {
		ps.add(key+".metadata.fallback_poller.poll_interval_seconds", "must be greater than 0 and at most 86400, got %v", iv)
	}
	atLeast(ps, key+".metadata.listener.reconnect_initial_ms", m.Listener.ReconnectInitialMS, 1)
	if m.Listener.ReconnectInitialMS >= 1 && m.Listener.ReconnectMaxMS < m.Listener.ReconnectInitialMS {
		ps.add(key+".metadata.listener.reconnect_max_ms", "must be at least metadata.listener.reconnect_initial_ms (%d), got %d",
			m.Listener.ReconnectInitialMS, m.Listener.ReconnectMaxMS)
	}
}

// reservedHeaders are set by the runner on every call; letting an endpoint
// override them would break idempotency, deadlines, tracing or signatures.
var reservedHeaders = []string{
	"Content-Type", "Content-Length", "Host", "Idempotency-Key", "Tasker-Attempt", "Tasker-Deadline",
	"Traceparent", "Tracestate", "Webhook-Id", "Webhook-Timestamp", "Webhook-Signature",
}

func (es Endpoints) validate(ps *problems) {
	type route struct{ namespace, pattern string }
	seen := make(map[route]int)
	for i, e := range es {
		key := fmt.Sprintf("worker.handlers[%d]", i)
		switch {
		case e.Pattern == "":
			ps.add(key+".pattern", "required")
		default:
			if _, err := path.Match(e.Pattern, ""); err != nil {
				ps.add(key+".pattern", "%q is not a valid glob: %v", e.Pattern, err)
			}
			r := route{e.Namespace, e.Pattern}
			if j, dup := seen[r]; dup {
				ps.add(key+".pattern", "%q in namespace %q duplicates worker.handlers[%d]", e.Pattern, e.Namespace, j)
			} else {
				seen[r] = i
			}
		}
		oneOf(ps, key+".protocol", e.Protocol, protocols)
		switch {
		case e.Protocol == ProtocolGo && e.URL != "":
			ps.add(key+".url", "not used with protocol %q; remove it", e.Protocol)
		case e.Protocol != ProtocolGo && e.URL == "":
			ps.add(key+".url", "required for protocol %q", e.Protocol)
		case e.URL != "":
			checkHandlerURL(ps, key+".url", e.URL)
		}
		atLeast(ps, key+".timeout_ms", e.TimeoutMS, 0)
		atLeast(ps, key+".max_concurrency", e.MaxConcurrency, 0)
		atLeast(ps, key+".batch_max", e.BatchMax, 1)
		atLeast(ps, key+".batch_window_ms", e.BatchWindowMS, 0)
		for _, name := range sortedKeys(e.Headers) {
			hk := join(key+".headers", name)
			switch {
			case !isToken(name):
				ps.add(hk, "is not a valid header name")
			case containsFold(reservedHeaders, name):
				ps.add(hk, "is set by the runner and cannot be overridden")
			case strings.ContainsAny(e.Headers[name], "\r\n\x00"):
				ps.add(hk, "value must not contain CR, LF or NUL")
			}
		}
		if e.Secret != "" && !validWebhookSecret(e.Secret) {
			// Never echo the secret.
			ps.add(key+".secret", `must be "whsec_" followed by the base64 of 24 to 64 random bytes`)
		}
	}
}

// checkHandlerURL requires an absolute http(s) URL, where "{callable}" may
// stand for the callable anywhere.
func checkHandlerURL(ps *problems, key, raw string) {
	s := strings.ReplaceAll(raw, "{callable}", "callable")
	if strings.ContainsAny(s, "{}") {
		ps.add(key, "only the {callable} placeholder is supported, got %q", raw)
		return
	}
	u, err := url.Parse(s)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		shown := raw
		if err == nil && u.User != nil {
			shown = u.Redacted()
		}
		ps.add(key, "must be an absolute http or https URL, got %q", shown)
	}
}

// validWebhookSecret follows Standard Webhooks: "whsec_" and the base64 of
// 24 to 64 random bytes.
func validWebhookSecret(s string) bool {
	b64, ok := strings.CutPrefix(s, "whsec_")
	if !ok {
		return false
	}
	key, err := base64.StdEncoding.DecodeString(b64)
	return err == nil && len(key) >= 24 && len(key) <= 64
}

// isToken reports whether s is an RFC 9110 token, the syntax of a header name.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			continue
		}
		if !strings.ContainsRune("!#$%&'*+-.^_`|~", r) {
			return false
		}
	}
	return true
}

func containsFold(list []string, s string) bool {
	for _, l := range list {
		if strings.EqualFold(l, s) {
			return true
		}
	}
	return false
}

func atLeast(ps *problems, key string, v, lo int) {
	if v < lo {
		ps.add(key, "must be at least %d, got %d", lo, v)
	}
}

func port(ps *problems, key string, v int) {
	if v < 1 || v > 65535 {
		ps.add(key, "must be between 1 and 65535, got %d", v)
	}
}

// oneOf reports v when it is not in allowed, listing the allowed values.
func oneOf[T ~string](ps *problems, key string, v T, allowed []T) {
	for _, a := range allowed {
		if v == a {
			return
		}
	}
	names := make([]string, len(allowed))
	for i, a := range allowed {
		names[i] = string(a)
	}
	ps.add(key, "%q is not one of %s", v, strings.Join(names, ", "))
}
