package config

import (
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tasker-runner/tasker-runner/callout"
	"github.com/tasker-runner/tasker-runner/runner"
	"github.com/tasker-runner/tasker-runner/runner/workflow"
)

// Every field carries two tags: toml names the key in the file and env names
// the variable segment. They must spell the same thing (the env name is the
// upper-cased TOML path); a test walks the types to keep them from drifting.

// Config is the whole runner configuration.
type Config struct {
	// Database is the PostgreSQL connection pool.
	Database Database `toml:"database" env:",prefix=DATABASE_"`
	// Worker is everything about the runner process itself.
	Worker Worker `toml:"worker" env:",prefix=WORKER_"`
}

// Database configures the PostgreSQL connection pool.
type Database struct {
	// URL is a PostgreSQL connection string (URL or key=value form). It is not
	// required by [Config.Validate] because `dev` starts its own database;
	// commands that need it call [Config.RequireDatabase].
	URL string `toml:"url" env:"URL"`
	// MaxConns is the largest number of pooled connections. Default 20.
	MaxConns int `toml:"max_conns" env:"MAX_CONNS"`
	// MinConns is the number of connections kept open when idle. Default 2.
	MinConns int `toml:"min_conns" env:"MIN_CONNS"`
	// ConnectTimeoutSeconds bounds establishing one connection. Default 10.
	ConnectTimeoutSeconds int `toml:"connect_timeout_seconds" env:"CONNECT_TIMEOUT_SECONDS"`
	// MigrateOnStart applies pending migrations when `serve` starts.
	// Default false: schema changes are usually a deliberate deploy step.
	MigrateOnStart bool `toml:"migrate_on_start" env:"MIGRATE_ON_START"`
}

// ConnectTimeout returns ConnectTimeoutSeconds as a duration.
func (d Database) ConnectTimeout() time.Duration { return seconds(d.ConnectTimeoutSeconds) }

// Worker configures the runner process.
type Worker struct {
	// WorkerID names this runner in leases and audit rows. Empty (the default)
	// means hostname+pid, derived at run time.
	WorkerID string `toml:"worker_id" env:"WORKER_ID"`
	// Namespaces restricts the runner to these namespaces. Empty (the default)
	// serves all of them.
	Namespaces []string `toml:"namespaces" env:"NAMESPACES"`
	// ShutdownTimeoutSeconds is how long in-flight steps may run after SIGTERM
	// before their leases are released. Default 30; 0 releases at once.
	ShutdownTimeoutSeconds int `toml:"shutdown_timeout_seconds" env:"SHUTDOWN_TIMEOUT_SECONDS"`

	// Web is the REST management API.
	Web Web `toml:"web" env:",prefix=WEB_"`
	// GRPC is the Connect/gRPC management API.
	GRPC GRPC `toml:"grpc" env:",prefix=GRPC_"`
	// EventSystems is how the runner learns that steps are ready.
	EventSystems EventSystems `toml:"event_systems" env:",prefix=EVENT_SYSTEMS_"`
	// Leases configures step leases.
	Leases Leases `toml:"leases" env:",prefix=LEASES_"`
	// Completion configures the batched result writer.
	Completion Completion `toml:"completion" env:",prefix=COMPLETION_"`
	// Retry holds retry defaults for templates that do not set their own.
	Retry Retry `toml:"retry" env:",prefix=RETRY_"`
	// Dynamic limits the steps that decision and batch outcomes create.
	Dynamic Dynamic `toml:"dynamic" env:",prefix=DYNAMIC_"`
	// Retention deletes finished tasks once they are old enough.
	Retention Retention `toml:"retention" env:",prefix=RETENTION_"`
	// Callout holds defaults for calling handlers.
	Callout Callout `toml:"callout" env:",prefix=CALLOUT_"`
	// Handlers registers handler endpoints at start-up (more can be added at
	// run time through the API).
	Handlers Endpoints `toml:"handlers" env:"HANDLERS"`
}

// ShutdownTimeout returns ShutdownTimeoutSeconds as a duration.
func (w Worker) ShutdownTimeout() time.Duration { return seconds(w.ShutdownTimeoutSeconds) }

// Web configures the REST management API server.
type Web struct {
	// Enabled starts the server. Default true.
	Enabled bool `toml:"enabled" env:"ENABLED"`
	// Host is the listen address. Default "127.0.0.1" (loopback only). Any
	// other address (see [IsLoopback]; "" and "0.0.0.0" mean every
	// interface) needs Auth.Enabled, or Auth.AllowUnauthenticated.
	Host string `toml:"host" env:"HOST"`
	// Port is the listen port. Default 8081.
	Port int `toml:"port" env:"PORT"`
	// TLS serves HTTPS instead of plain HTTP when set. Default unset.
	TLS TLS `toml:"tls" env:",prefix=TLS_"`
	// MaxRequestBytes caps request bodies so one client cannot exhaust
	// memory. Default 1 MiB.
	MaxRequestBytes int `toml:"max_request_bytes" env:"MAX_REQUEST_BYTES"`
	// Auth protects the /v1 operations.
	Auth Auth `toml:"auth" env:",prefix=AUTH_"`
}

// Addr returns the host:port to listen on.
func (w Web) Addr() string { return net.JoinHostPort(w.Host, strconv.Itoa(w.Port)) }

// Auth configures authentication of the management API.
type Auth struct {
	// Enabled turns authentication on. Default false, which suits the
	// default loopback listeners; a listener on any other address needs it
	// (or AllowUnauthenticated).
	Enabled bool `toml:"enabled" env:"ENABLED"`
	// AllowUnauthenticated lets worker.web or worker.grpc listen on a
	// non-loopback address while Enabled is false, which validation
	// otherwise refuses; the runner then logs a warning at start. Default
	// false. Meant for networks where something else (a proxy, a network
	// policy) already restricts who can reach the API.
	AllowUnauthenticated bool `toml:"allow_unauthenticated" env:"ALLOW_UNAUTHENTICATED"`
	// PublicHealth keeps the /health endpoints open when auth is on, so
	// orchestrator probes need no credentials. Default true.
	PublicHealth bool `toml:"public_health" env:"PUBLIC_HEALTH"`
	// PublicMetrics keeps /metrics open when auth is on, so scrapers need no
	// credentials. Default true.
	PublicMetrics bool `toml:"public_metrics" env:"PUBLIC_METRICS"`
	// APIKeys are the accepted static keys.
	APIKeys APIKeys `toml:"api_keys" env:"API_KEYS"`
	// JWT accepts bearer tokens.
	JWT JWT `toml:"jwt" env:",prefix=JWT_"`
}

// Scope is what a credential may do.
type Scope string

// Scopes. Admin includes read.
const (
	// ScopeRead allows reading state.
	ScopeRead Scope = "read"
	// ScopeAdmin allows every operation.
	ScopeAdmin Scope = "admin"
)

// scopes lists the valid scopes, in the order error messages show them.
var scopes = []Scope{ScopeRead, ScopeAdmin}

// Valid reports whether s is one of the scopes.
func (s Scope) Valid() bool { return slices.Contains(scopes, s) }

// APIKey is one accepted API key. Only its hash is configured, so the file
// holds nothing that would let a reader call the API.
type APIKey struct {
	// Name identifies the key in logs and audit rows.
	Name string `toml:"name"`
	// Hash is "sha256:" followed by the 64 hex digits of the SHA-256 of the key.
	Hash string `toml:"hash"`
	// Scope is ScopeRead or ScopeAdmin.
	Scope Scope `toml:"scope"`
}

// APIKeys is a list of API keys. Its own type lets the environment set the
// whole list as JSON (see [APIKeys.EnvDecode]).
type APIKeys []APIKey

// JWT configures bearer token authentication.
type JWT struct {
	// Enabled accepts JWT bearer tokens. Default false.
	Enabled bool `toml:"enabled" env:"ENABLED"`
	// Issuer is the required "iss" claim.
	Issuer string `toml:"issuer" env:"ISSUER"`
	// Audience is the required "aud" claim.
	Audience string `toml:"audience" env:"AUDIENCE"`
	// HS256Secret verifies HMAC-signed tokens; at least 32 bytes.
	HS256Secret string `toml:"hs256_secret" env:"HS256_SECRET"`
	// PublicKeyFiles are PEM files of public keys verifying RS256/ES256 tokens.
	PublicKeyFiles []string `toml:"public_key_files" env:"PUBLIC_KEY_FILES"`
	// ScopeClaim names the claim holding the scope ("read" or "admin").
	// Default "scope".
	ScopeClaim string `toml:"scope_claim" env:"SCOPE_CLAIM"`
}

// GRPC configures the Connect/gRPC management API server.
type GRPC struct {
	// Enabled starts the server. Default true.
	Enabled bool `toml:"enabled" env:"ENABLED"`
	// Host is the listen address. Default "127.0.0.1" (loopback only); the
	// same rule as [Web.Host] applies.
	Host string `toml:"host" env:"HOST"`
	// Port is the listen port. Default 9191.
	Port int `toml:"port" env:"PORT"`
	// TLS serves HTTP/2 over TLS (and HTTP/1.1) instead of h2c when set.
	// Default unset.
	TLS TLS `toml:"tls" env:",prefix=TLS_"`
}

// TLS names the certificate a listener serves. Both files are PEM; they are
// read at start and again whenever they change, so a renewed certificate
// needs no restart. Set both or neither. Client certificates are not asked
// for.
type TLS struct {
	// CertFile is the certificate chain, leaf first. Default "" (no TLS).
	CertFile string `toml:"cert_file" env:"CERT_FILE"`
	// KeyFile is the certificate's private key. Default "" (no TLS).
	KeyFile string `toml:"key_file" env:"KEY_FILE"`
}

// Enabled reports whether a certificate is configured.
func (t TLS) Enabled() bool { return t.CertFile != "" || t.KeyFile != "" }

// IsLoopback reports whether a listen host accepts connections from this
// machine only: "localhost" or an address in 127.0.0.0/8 or ::1. Every
// other host is reachable from the network; "", "0.0.0.0" and "::" mean
// every interface.
func IsLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// ExposedListeners returns the host keys ("worker.web.host",
// "worker.grpc.host") of the enabled listeners that are reachable from the
// network, in that order.
func (w Worker) ExposedListeners() []string {
	var keys []string
	if w.Web.Enabled && !IsLoopback(w.Web.Host) {
		keys = append(keys, "worker.web.host")
	}
	if w.GRPC.Enabled && !IsLoopback(w.GRPC.Host) {
		keys = append(keys, "worker.grpc.host")
	}
	return keys
}

// OpenWithoutAuth returns [Worker.ExposedListeners] when authentication is
// off, and nil when it is on: the listeners that would let anyone on the
// network use the management API.
func (w Worker) OpenWithoutAuth() []string {
	if w.Web.Auth.Enabled {
		return nil
	}
	return w.ExposedListeners()
}

// Addr returns the host:port to listen on.
func (g GRPC) Addr() string { return net.JoinHostPort(g.Host, strconv.Itoa(g.Port)) }

// EventSystems groups the event systems. The nesting mirrors the Tasker
// worker's configuration so its users find the keys where they expect them.
type EventSystems struct {
	// Worker is the event system that wakes the runner for ready steps.
	Worker EventSystem `toml:"worker" env:",prefix=WORKER_"`
}

// DeploymentMode selects how the runner learns that steps are ready.
type DeploymentMode string

// Deployment modes.
const (
	// DeploymentModePollingOnly polls the database and never listens.
	DeploymentModePollingOnly DeploymentMode = "polling_only"
	// DeploymentModeEventDrivenOnly reacts to LISTEN/NOTIFY and never polls.
	DeploymentModeEventDrivenOnly DeploymentMode = "event_driven_only"
	// DeploymentModeHybrid listens and also polls, so a lost notification
	// only delays a step by one poll interval. The default.
	DeploymentModeHybrid DeploymentMode = "hybrid"
)

// deploymentModes lists the valid modes, in the order error messages show them.
var deploymentModes = []DeploymentMode{DeploymentModePollingOnly, DeploymentModeEventDrivenOnly, DeploymentModeHybrid}

// Valid reports whether m is one of the deployment modes.
func (m DeploymentMode) Valid() bool { return slices.Contains(deploymentModes, m) }

// Polls reports whether the mode runs the fallback poller.
func (m DeploymentMode) Polls() bool {
	return m == DeploymentModePollingOnly || m == DeploymentModeHybrid
}

// Listens reports whether the mode reacts to notifications.
func (m DeploymentMode) Listens() bool {
	return m == DeploymentModeEventDrivenOnly || m == DeploymentModeHybrid
}

// EventSystem configures one event system.
type EventSystem struct {
	// DeploymentMode is polling_only, event_driven_only or hybrid. Default hybrid.
	DeploymentMode DeploymentMode `toml:"deployment_mode" env:"DEPLOYMENT_MODE"`
	// Metadata holds the settings of the event system's parts.
	Metadata EventSystemMetadata `toml:"metadata" env:",prefix=METADATA_"`
}

// EventSystemMetadata holds the settings of the event system's parts.
type EventSystemMetadata struct {
	// PushConsumer reacts to notifications and dispatches steps.
	PushConsumer PushConsumer `toml:"push_consumer" env:",prefix=PUSH_CONSUMER_"`
	// FallbackPoller finds ready steps that no notification announced.
	FallbackPoller FallbackPoller `toml:"fallback_poller" env:",prefix=FALLBACK_POLLER_"`
	// Listener is the dedicated LISTEN connection.
	Listener Listener `toml:"listener" env:",prefix=LISTENER_"`
}

// PushConsumer configures the notification-driven dispatcher.
type PushConsumer struct {
	// Enabled turns notification-driven dispatch on. Default true.
	Enabled bool `toml:"enabled" env:"ENABLED"`
	// MaxConcurrentSteps is how many steps may run at once in this runner;
	// claims never ask for more than the free permits. Default 500.
	MaxConcurrentSteps int `toml:"max_concurrent_steps" env:"MAX_CONCURRENT_STEPS"`
}

// FallbackPoller configures the poller.
type FallbackPoller struct {
	// Enabled turns polling on. Default true.
	Enabled bool `toml:"enabled" env:"ENABLED"`
	// PollIntervalSeconds is the time between polls, fractions allowed
	// (jitter is added at run time). Default 1.0.
	PollIntervalSeconds float64 `toml:"poll_interval_seconds" env:"POLL_INTERVAL_SECONDS"`
}

// Interval returns PollIntervalSeconds as a duration.
func (f FallbackPoller) Interval() time.Duration {
	return time.Duration(f.PollIntervalSeconds * float64(time.Second))
}

// Listener configures the LISTEN connection's reconnect backoff.
type Listener struct {
	// ReconnectInitialMS is the first reconnect delay. Default 100.
	ReconnectInitialMS int `toml:"reconnect_initial_ms" env:"RECONNECT_INITIAL_MS"`
	// ReconnectMaxMS caps the doubling reconnect delay. Default 10000.
	ReconnectMaxMS int `toml:"reconnect_max_ms" env:"RECONNECT_MAX_MS"`
}

// ReconnectInitial returns ReconnectInitialMS as a duration.
func (l Listener) ReconnectInitial() time.Duration { return millis(l.ReconnectInitialMS) }

// ReconnectMax returns ReconnectMaxMS as a duration.
func (l Listener) ReconnectMax() time.Duration { return millis(l.ReconnectMaxMS) }

// Leases configures step leases.
type Leases struct {
	// VisibilityTimeoutSeconds is how long a claimed step stays invisible to
	// other runners; a crashed runner's steps come back after it. Default 30.
	VisibilityTimeoutSeconds int `toml:"visibility_timeout_seconds" env:"VISIBILITY_TIMEOUT_SECONDS"`
	// HeartbeatIntervalSeconds is how often leases of in-flight steps are
	// extended; it must be well below the visibility timeout. Default 10.
	HeartbeatIntervalSeconds int `toml:"heartbeat_interval_seconds" env:"HEARTBEAT_INTERVAL_SECONDS"`
}

// VisibilityTimeout returns VisibilityTimeoutSeconds as a duration.
func (l Leases) VisibilityTimeout() time.Duration { return seconds(l.VisibilityTimeoutSeconds) }

// HeartbeatInterval returns HeartbeatIntervalSeconds as a duration.
func (l Leases) HeartbeatInterval() time.Duration { return seconds(l.HeartbeatIntervalSeconds) }

// Completion configures the completer, which writes results in batches.
type Completion struct {
	// FlushIntervalMS is the longest a result waits before its batch is
	// written. Default 1.
	FlushIntervalMS int `toml:"flush_interval_ms" env:"FLUSH_INTERVAL_MS"`
	// MaxBatch writes a batch as soon as it holds this many results.
	// Default 100.
	MaxBatch int `toml:"max_batch" env:"MAX_BATCH"`
	// Writers is the most batches written at once; a second write starts
	// only with a full batch, so commits overlap without shrinking batches.
	// Default 2.
	Writers int `toml:"writers" env:"WRITERS"`
}

// FlushInterval returns FlushIntervalMS as a duration.
func (c Completion) FlushInterval() time.Duration { return millis(c.FlushIntervalMS) }

// Dynamic limits the steps that decision and batch outcomes create (an
// outcome over a limit fails its step and creates nothing) and the yields
// of one step.
type Dynamic struct {
	// MaxStepsPerOutcome caps the steps one outcome creates. Default 10000.
	MaxStepsPerOutcome int `toml:"max_steps_per_outcome" env:"MAX_STEPS_PER_OUTCOME"`
	// MaxStepsPerTask caps the steps of one task, the initial ones
	// included. Default 100000.
	MaxStepsPerTask int `toml:"max_steps_per_task" env:"MAX_STEPS_PER_TASK"`
	// MaxYieldsPerStep caps how often one step may yield (save a
	// checkpoint and run again without consuming an attempt); one more
	// fails it with error_type yield_limit_exceeded. Default 100000.
	MaxYieldsPerStep int `toml:"max_yields_per_step" env:"MAX_YIELDS_PER_STEP"`
}

// Retention deletes finished tasks, with their steps, edges and history,
// once they are older than their final state's age, so that the tables, and
// what every step costs, stop growing with the history. The runners share
// the work: one at a time (a PostgreSQL advisory lock) deletes in short
// transactions of at most BatchSize tasks and BatchMaxSteps steps, and at
// most MaxBatchesPerRun of them per run.
type Retention struct {
	// Enabled lets this runner delete expired tasks. Default true; false
	// in every runner keeps everything.
	Enabled bool `toml:"enabled" env:"ENABLED"`
	// CompleteAfterDays is how long complete and resolved_manually tasks
	// are kept after they finished, in days (fractions allowed); 0 keeps
	// them. Default 7.
	CompleteAfterDays float64 `toml:"complete_after_days" env:"COMPLETE_AFTER_DAYS"`
	// FailedAfterDays is how long blocked_by_failures tasks are kept after
	// their last change; 0 keeps them. Such a task is kept anyway while a
	// step of it may still run. Default 30.
	FailedAfterDays float64 `toml:"failed_after_days" env:"FAILED_AFTER_DAYS"`
	// CancelledAfterDays is how long cancelled tasks are kept after they
	// were cancelled; 0 keeps them. Default 30.
	CancelledAfterDays float64 `toml:"cancelled_after_days" env:"CANCELLED_AFTER_DAYS"`
	// IntervalSeconds is the mean time between two tries of this runner
	// (jittered by ±20%); a try finds the work taken when another runner
	// is at it. Default 60.
	IntervalSeconds int `toml:"interval_seconds" env:"INTERVAL_SECONDS"`
	// BatchSize is the most tasks one transaction examines and deletes.
	// Default 1000.
	BatchSize int `toml:"batch_size" env:"BATCH_SIZE"`
	// BatchMaxSteps also bounds a transaction by the steps of the tasks it
	// deletes (a task bigger than that still goes, alone). Default 10000.
	BatchMaxSteps int `toml:"batch_max_steps" env:"BATCH_MAX_STEPS"`
	// MaxBatchesPerRun bounds one run; the rest waits for the next.
	// Default 10.
	MaxBatchesPerRun int `toml:"max_batches_per_run" env:"MAX_BATCHES_PER_RUN"`
}

// MaxRetentionDays is the largest age worker.retention accepts (100 years).
const MaxRetentionDays = 36500

// CompleteAfter returns CompleteAfterDays as a duration; 0 keeps.
func (r Retention) CompleteAfter() time.Duration { return days(r.CompleteAfterDays) }

// FailedAfter returns FailedAfterDays as a duration; 0 keeps.
func (r Retention) FailedAfter() time.Duration { return days(r.FailedAfterDays) }

// CancelledAfter returns CancelledAfterDays as a duration; 0 keeps.
func (r Retention) CancelledAfter() time.Duration { return days(r.CancelledAfterDays) }

// Interval returns IntervalSeconds as a duration.
func (r Retention) Interval() time.Duration { return seconds(r.IntervalSeconds) }

// Retry holds retry defaults for template steps without a retry block.
type Retry struct {
	// MaxAttempts counts the first attempt. Default 3.
	MaxAttempts int `toml:"max_attempts" env:"MAX_ATTEMPTS"`
	// BackoffBaseMS is the first retry delay, doubled per attempt (with
	// jitter). Default 1000.
	BackoffBaseMS int `toml:"backoff_base_ms" env:"BACKOFF_BASE_MS"`
	// MaxBackoffMS caps the retry delay. Default 60000.
	MaxBackoffMS int `toml:"max_backoff_ms" env:"MAX_BACKOFF_MS"`
}

// BackoffBase returns BackoffBaseMS as a duration.
func (r Retry) BackoffBase() time.Duration { return millis(r.BackoffBaseMS) }

// MaxBackoff returns MaxBackoffMS as a duration.
func (r Retry) MaxBackoff() time.Duration { return millis(r.MaxBackoffMS) }

// Callout holds defaults for calling handlers.
type Callout struct {
	// DefaultTimeoutSeconds applies when neither the step nor its endpoint
	// sets a timeout. Default 30.
	DefaultTimeoutSeconds int `toml:"default_timeout_seconds" env:"DEFAULT_TIMEOUT_SECONDS"`
	// MaxResponseBytes caps a handler response; larger ones fail the step
	// permanently instead of exhausting memory. Default 4 MiB.
	MaxResponseBytes int `toml:"max_response_bytes" env:"MAX_RESPONSE_BYTES"`
	// MaxIdleConnsPerHost keeps this many keep-alive connections per handler
	// host. Go's default of 2 would make most calls dial under load; below
	// max_concurrent_steps a busy runner still closes and redials
	// connections, each closed one waiting in TIME_WAIT. Default 512.
	MaxIdleConnsPerHost int `toml:"max_idle_conns_per_host" env:"MAX_IDLE_CONNS_PER_HOST"`
	// Breaker holds the circuit breaker defaults for every endpoint.
	Breaker Breaker `toml:"breaker" env:",prefix=BREAKER_"`
	// URLPolicy limits where handler URLs may point, so that registering a
	// handler cannot make the runner reach addresses only it can reach.
	URLPolicy URLPolicy `toml:"url_policy" env:",prefix=URL_POLICY_"`
	// SecretDirs are the directories "file:" secret references may read
	// from (symbolic links and .. resolved first); serve adds the directory
	// of its configuration file. Default ["/run/secrets"].
	SecretDirs []string `toml:"secret_dirs" env:"SECRET_DIRS"`
}

// URLPolicy limits the handler URLs the runner registers and calls. By
// default it refuses loopback, link-local, cloud metadata, unspecified,
// multicast and broadcast addresses, in any spelling (decimal or hex IPv4,
// IPv4-mapped IPv6), both in a registered URL and in the address each
// connection dials. Private ranges (10/8, 172.16/12, 192.168/16, fc00::/7)
// stay allowed.
type URLPolicy struct {
	// AllowLoopback allows 127.0.0.0/8, ::1 and localhost. Default false
	// (dev turns it on: its handler services listen on 127.0.0.1).
	AllowLoopback bool `toml:"allow_loopback" env:"ALLOW_LOOPBACK"`
	// AllowHosts are host names allowed whatever they resolve to;
	// "*.example.internal" allows every subdomain.
	AllowHosts []string `toml:"allow_hosts" env:"ALLOW_HOSTS"`
	// AllowCIDRs are address ranges allowed even where a rule denies them
	// ("169.254.10.0/24"; a bare address means just it).
	AllowCIDRs []string `toml:"allow_cidrs" env:"ALLOW_CIDRS"`
	// AllowedSchemes are the URL schemes handlers may use: http and/or
	// https. Default ["http", "https"].
	AllowedSchemes []string `toml:"allowed_schemes" env:"ALLOWED_SCHEMES"`
}

// CIDRs returns AllowCIDRs parsed; a bare address becomes a one-address
// prefix. Entries that do not parse are skipped: [Config.Validate] reports
// them.
func (u URLPolicy) CIDRs() []netip.Prefix {
	out := make([]netip.Prefix, 0, len(u.AllowCIDRs))
	for _, c := range u.AllowCIDRs {
		if p, ok := parseCIDR(c); ok {
			out = append(out, p)
		}
	}
	return out
}

func parseCIDR(s string) (netip.Prefix, bool) {
	s = strings.TrimSpace(s)
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), true
	}
	if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
		return netip.PrefixFrom(a, a.BitLen()), true
	}
	return netip.Prefix{}, false
}

// DefaultTimeout returns DefaultTimeoutSeconds as a duration.
func (c Callout) DefaultTimeout() time.Duration { return seconds(c.DefaultTimeoutSeconds) }

// Breaker configures the per-endpoint circuit breakers (sony/gobreaker).
type Breaker struct {
	// MaxRequests is how many trial calls pass while half-open. Default 1.
	MaxRequests int `toml:"max_requests" env:"MAX_REQUESTS"`
	// IntervalSeconds is how often a closed breaker clears its counts;
	// 0 never clears them. Default 60.
	IntervalSeconds int `toml:"interval_seconds" env:"INTERVAL_SECONDS"`
	// OpenTimeoutSeconds is how long an open breaker waits before going
	// half-open. Default 30.
	OpenTimeoutSeconds int `toml:"open_timeout_seconds" env:"OPEN_TIMEOUT_SECONDS"`
	// ConsecutiveFailures opens the breaker. Default 5.
	ConsecutiveFailures int `toml:"consecutive_failures" env:"CONSECUTIVE_FAILURES"`
}

// Interval returns IntervalSeconds as a duration.
func (b Breaker) Interval() time.Duration { return seconds(b.IntervalSeconds) }

// OpenTimeout returns OpenTimeoutSeconds as a duration.
func (b Breaker) OpenTimeout() time.Duration { return seconds(b.OpenTimeoutSeconds) }

// Protocol is how a handler endpoint is called.
type Protocol string

// Protocols.
const (
	// ProtocolHTTP posts JSON envelopes. The default.
	ProtocolHTTP Protocol = "http"
	// ProtocolConnect calls HandlerService with the Connect protocol.
	ProtocolConnect Protocol = "connect"
	// ProtocolGRPC calls HandlerService with the gRPC protocol.
	ProtocolGRPC Protocol = "grpc"
	// ProtocolGo calls a function registered in the same process; it has no URL.
	ProtocolGo Protocol = "go"
)

// protocols lists the valid protocols, in the order error messages show them.
var protocols = []Protocol{ProtocolHTTP, ProtocolConnect, ProtocolGRPC, ProtocolGo}

// Valid reports whether p is one of the protocols.
func (p Protocol) Valid() bool { return slices.Contains(protocols, p) }

// Endpoint registers the handler service for the callables matching Pattern.
type Endpoint struct {
	// Pattern is a callable name or a glob (path.Match syntax) such as
	// "payments.*". Required.
	Pattern string `toml:"pattern"`
	// Namespace limits the endpoint to one namespace; empty matches any.
	Namespace string `toml:"namespace"`
	// URL is the absolute http(s) URL to call; "{callable}" is replaced by
	// the step's callable. Required unless Protocol is ProtocolGo.
	URL string `toml:"url"`
	// Protocol is http, connect, grpc or go. Default http.
	Protocol Protocol `toml:"protocol"`
	// TimeoutMS overrides the callout default timeout; 0 keeps it.
	TimeoutMS int `toml:"timeout_ms"`
	// MaxConcurrency limits calls in flight to this endpoint; 0 is unlimited.
	MaxConcurrency int `toml:"max_concurrency"`
	// BatchMax sends up to this many steps per call; 1 (the default) does
	// not batch.
	BatchMax int `toml:"batch_max"`
	// BatchWindowMS is the longest a step waits for a batch to fill.
	// Default 2.
	BatchWindowMS int `toml:"batch_window_ms"`
	// Headers are added to every request.
	Headers map[string]string `toml:"headers"`
	// Secret is a Standard Webhooks secret ("whsec_" + base64) used to sign
	// requests; empty sends them unsigned.
	Secret string `toml:"secret"`
}

// Timeout returns TimeoutMS as a duration; 0 means "use the callout default".
func (e Endpoint) Timeout() time.Duration { return millis(e.TimeoutMS) }

// BatchWindow returns BatchWindowMS as a duration.
func (e Endpoint) BatchWindow() time.Duration { return millis(e.BatchWindowMS) }

// Endpoints is a list of handler endpoints. Its own type lets the
// environment set the whole list as JSON (see [Endpoints.EnvDecode]).
type Endpoints []Endpoint

// Default returns the configuration used when nothing else is set. Where
// the engine has a default of its own (an XDefault constant of
// [runner], [workflow] or [callout]), this is it, converted to the file's
// unit; the rest (pool, listeners, auth, retention ages, URL policy) are
// the server's and defined here.
func Default() Config {
	return Config{
		Database: Database{
			MaxConns:              20,
			MinConns:              2,
			ConnectTimeoutSeconds: 10,
		},
		Worker: Worker{
			ShutdownTimeoutSeconds: inSeconds(runner.ShutdownTimeoutDefault),
			Web: Web{
				Enabled:         true,
				Host:            "127.0.0.1",
				Port:            8081,
				MaxRequestBytes: 1 << 20,
				Auth: Auth{
					PublicHealth:  true,
					PublicMetrics: true,
					JWT:           JWT{ScopeClaim: "scope"},
				},
			},
			GRPC:         GRPC{Enabled: true, Host: "127.0.0.1", Port: 9191},
			EventSystems: defaultEventSystems(),
			Leases: Leases{
				VisibilityTimeoutSeconds: inSeconds(runner.LeaseForDefault),
				HeartbeatIntervalSeconds: inSeconds(runner.HeartbeatIntervalDefault),
			},
			Completion: Completion{
				FlushIntervalMS: inMillis(runner.FlushIntervalDefault),
				MaxBatch:        runner.FlushBatchDefault,
				Writers:         runner.FlushWritersDefault,
			},
			Retry: Retry{
				MaxAttempts:   workflow.MaxAttemptsDefault,
				BackoffBaseMS: workflow.BackoffBaseMsDefault,
				MaxBackoffMS:  workflow.MaxBackoffMsDefault,
			},
			Dynamic: Dynamic{
				MaxStepsPerOutcome: runner.MaxStepsPerOutcomeDefault,
				MaxStepsPerTask:    runner.MaxStepsPerTaskDefault,
				MaxYieldsPerStep:   runner.MaxYieldsPerStepDefault,
			},
			Retention: defaultRetention(),
			Callout:   defaultCallout(),
		},
	}
}

func defaultEventSystems() EventSystems {
	return EventSystems{Worker: EventSystem{
		DeploymentMode: DeploymentMode(runner.ModeHybrid),
		Metadata: EventSystemMetadata{
			PushConsumer: PushConsumer{Enabled: true, MaxConcurrentSteps: runner.MaxConcurrentStepsDefault},
			FallbackPoller: FallbackPoller{
				Enabled:             true,
				PollIntervalSeconds: runner.PollIntervalDefault.Seconds(),
			},
			Listener: Listener{
				ReconnectInitialMS: inMillis(runner.ReconnectInitialDefault),
				ReconnectMaxMS:     inMillis(runner.ReconnectMaxDefault),
			},
		},
	}}
}

// defaultRetention is on, with the server's ages; the runner library's own
// default keeps everything.
func defaultRetention() Retention {
	return Retention{
		Enabled:            true,
		CompleteAfterDays:  7,
		FailedAfterDays:    30,
		CancelledAfterDays: 30,
		IntervalSeconds:    inSeconds(runner.RetentionIntervalDefault),
		BatchSize:          runner.RetentionBatchSizeDefault,
		BatchMaxSteps:      runner.RetentionBatchMaxStepsDefault,
		MaxBatchesPerRun:   runner.RetentionMaxBatchesPerRunDefault,
	}
}

// defaultCallout has the server's URL policy (http and https); the callout
// library checks no URL unless given a policy.
func defaultCallout() Callout {
	return Callout{
		DefaultTimeoutSeconds: inSeconds(runner.StepTimeoutDefault),
		MaxResponseBytes:      callout.DefaultMaxResponseBytes,
		MaxIdleConnsPerHost:   callout.DefaultMaxIdleConnsPerHost,
		Breaker: Breaker{
			MaxRequests:         callout.BreakerMaxRequestsDefault,
			IntervalSeconds:     inSeconds(callout.BreakerIntervalDefault),
			OpenTimeoutSeconds:  inSeconds(callout.BreakerOpenTimeoutDefault),
			ConsecutiveFailures: callout.BreakerConsecutiveFailuresDefault,
		},
		URLPolicy:  URLPolicy{AllowedSchemes: []string{"http", "https"}},
		SecretDirs: slices.Clone(runner.DefaultSecretDirs),
	}
}

// DefaultEndpoint returns an Endpoint holding the defaults that every
// [[worker.handlers]] entry starts from, before its own keys apply.
func DefaultEndpoint() Endpoint {
	return Endpoint{Protocol: ProtocolHTTP, BatchMax: 1, BatchWindowMS: 2}
}

func seconds(n int) time.Duration { return time.Duration(n) * time.Second }

// inSeconds and inMillis convert a library default to the file's unit.
func inSeconds(d time.Duration) int { return int(d / time.Second) }
func inMillis(d time.Duration) int  { return int(d / time.Millisecond) }

// days converts a validated number of days (0 to MaxRetentionDays).
func days(d float64) time.Duration {
	if !(d > 0) || d > MaxRetentionDays {
		return 0
	}
	return time.Duration(d * float64(24*time.Hour))
}
func millis(n int) time.Duration { return time.Duration(n) * time.Millisecond }
