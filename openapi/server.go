package openapi

import (
	"cmp"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"

	"github.com/tasker-runner/tasker-runner/callout"
	"github.com/tasker-runner/tasker-runner/openapi/auth"
	"github.com/tasker-runner/tasker-runner/runner"
	"github.com/tasker-runner/tasker-runner/runner/workflow"
)

// Config configures a [Server].
type Config struct {
	// Title of the API in the OpenAPI document. Default "tasker-runner".
	Title string
	// Version of the running binary, reported by health and status (the
	// spec's info.version is [APIVersion]).
	Version string
	// Checks are run by the readiness endpoints, in order.
	Checks []Check
	// CheckTimeout bounds each check. Default [CheckTimeoutDefault].
	CheckTimeout time.Duration
	// Now returns the current time; tests inject it. Default time.Now.
	Now func() time.Time

	// Client is what the /v1 operations read and change the database
	// through (templates, tasks, steps, endpoints, status). Without one
	// they answer 503; the operations and the spec exist regardless.
	Client *runner.Client
	// MaxRequestBytes bounds request bodies (worker.web.max_request_bytes).
	// Default [MaxRequestBytesDefault]. Template registration and
	// validation accept at least [TemplateRequestBytes].
	MaxRequestBytes int64
	// HeartbeatInterval is the runners' heartbeat interval, by which
	// /v1/status tells alive workers from stale ones. Default
	// [runner.HeartbeatIntervalDefault].
	HeartbeatInterval time.Duration
	// FinishedTasksWindow is how far back /v1/status counts finished tasks
	// (complete, cancelled, resolved_manually); unfinished ones are all
	// counted. Default [FinishedTasksWindowDefault].
	FinishedTasksWindow time.Duration
	// Endpoints, when set, reports the live handler endpoints (breaker
	// state, calls, faults, why one is unusable) for /v1/status and
	// /v1/handlers, e.g. [callout.Registry.Endpoints].
	Endpoints func() []callout.EndpointStatus
	// PoolStats, when set, reports the database pool for /health/detailed.
	PoolStats func() PoolStats
	// RunnerStats, when set, reports this process's runner counters for
	// /v1/status, e.g. [runner.Runner.Stats].
	RunnerStats func() runner.Stats
	// LookupEnv resolves "env:" secret references of handler endpoints
	// registered through the API, as the runner will. Default os.LookupEnv.
	LookupEnv func(string) (string, bool)
	// SecretDirs are the directories "file:" secret references may point
	// into; nil means [runner.DefaultSecretDirs]. See [runner.SecretSource].
	SecretDirs []string
	// URLPolicy judges the URL of every handler endpoint registered
	// through the API ([callout.URLPolicy.Check]); a refused one answers
	// 422 naming the rule. nil allows every URL (the library default; serve
	// builds a strict one from worker.callout.url_policy). The runner's
	// transport must apply the same policy when dialling.
	URLPolicy *callout.URLPolicy
	// Logger records unexpected errors (answered as 500 without details).
	// Default slog.Default().
	Logger *slog.Logger
}

// Defaults of [Config].
const (
	CheckTimeoutDefault        = 2 * time.Second
	MaxRequestBytesDefault     = 1 << 20
	FinishedTasksWindowDefault = 24 * time.Hour
	// TemplateRequestBytes is the least body size template operations
	// accept: a template document of [workflow.MaxTemplateBytes] encoded
	// as a JSON string (escaping a newline or quote doubles it) plus room
	// for the rest of the request.
	TemplateRequestBytes = 2*workflow.MaxTemplateBytes + 64<<10
)

// Server is the management API.
type Server struct {
	cfg     Config
	mux     *http.ServeMux
	api     huma.API
	started time.Time
	// ops are the registered operations by id, for the mirror's
	// [Server.checkParams].
	ops map[string]*huma.Operation
}

// New builds a [Server] and registers its operations. It touches no
// database: operations only use cfg.Client when called.
func New(cfg Config) *Server {
	cfg.Title = cmp.Or(cfg.Title, "tasker-runner")
	cfg.Version = cmp.Or(cfg.Version, "dev")
	cfg.CheckTimeout = cmp.Or(cfg.CheckTimeout, CheckTimeoutDefault)
	cfg.MaxRequestBytes = cmp.Or(cfg.MaxRequestBytes, MaxRequestBytesDefault)
	cfg.HeartbeatInterval = cmp.Or(cfg.HeartbeatInterval, runner.HeartbeatIntervalDefault)
	cfg.FinishedTasksWindow = cmp.Or(cfg.FinishedTasksWindow, FinishedTasksWindowDefault)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.LookupEnv == nil {
		cfg.LookupEnv = os.LookupEnv
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	hc := huma.DefaultConfig(cfg.Title, APIVersion)
	hc.Info.Description = apiDescription
	hc.Info.License = &huma.License{Name: "MIT", URL: "https://spdx.org/licenses/MIT.html"}
	// The default listener (worker.web.host and port); the document is the
	// same whatever the configuration, so it names the default.
	hc.Servers = []*huma.Server{{URL: "http://127.0.0.1:8081", Description: "the default listener (worker.web.host and worker.web.port)"}}
	// huma's docs page loads its script from a CDN; ours (/docs) is
	// self-contained.
	hc.DocsPath = ""
	// No $schema links in bodies nor Link headers: responses carry only
	// what the spec documents.
	hc.CreateHooks = nil
	// A misspelt filter must not silently list everything.
	hc.RejectUnknownQueryParameters = true
	// Unknown body fields are rejected too: every body schema is closed
	// (additionalProperties false, huma's default for structs).
	hc.Transformers = append(hc.Transformers, polishProblems, rangeMessages)
	hc.Tags = apiTags
	mux := http.NewServeMux()
	s := &Server{cfg: cfg, mux: mux, api: humago.New(mux, hc), started: cfg.Now()}
	// Strings the database cannot store are refused before any operation
	// runs (registered first: middlewares apply to operations registered
	// after them).
	s.api.UseMiddleware(s.textMiddleware)
	s.registerHealth()
	s.registerStatus()
	s.registerHandlers()
	s.registerTemplates()
	s.registerTasks()
	s.registerSteps()
	s.registerDeadLetters()
	s.registerDocs()
	// The document declares the credentials whether or not auth is on, so
	// the exported spec does not depend on configuration.
	auth.Document(s.api.OpenAPI())
	s.ops = operationsByID(s.api.OpenAPI())
	return s
}

// Handler returns the HTTP handler serving every operation. A request no
// operation matches is answered with a problem document: 404, or 405 with
// Allow when the path exists for other methods.
func (s *Server) Handler() http.Handler { return problemMux{s.mux} }

// API returns the underlying huma API, e.g. to export the OpenAPI document.
func (s *Server) API() huma.API { return s.api }

const apiDescription = `The management API of tasker-runner: register handler endpoints and task templates,
submit tasks and follow them, retry or resolve steps by hand, and redrive dead letters.

Every error is an RFC 9457 problem document (application/problem+json). Validation
failures answer 422 and list each problem in ` + "`errors[]`" + ` with its ` + "`location`" + `,
such as ` + "`body.template.steps[2].dependencies[0]`" + ` or ` + "`body.context.order.id`" + `.
Unknown ids answer 404; state changes the workflow's state machine refuses answer 409.
Unknown body fields and unknown query parameters are rejected. Lists are paged with an
opaque ` + "`cursor`" + ` returned as ` + "`next_cursor`" + `.`

var apiTags = []*huma.Tag{
	{Name: "health", Description: "Liveness and readiness; public."},
	{Name: "status", Description: "Workers, queues, task counts and handler endpoints at a glance."},
	{Name: "handlers", Description: "Handler endpoints registered at run time: where and how each callable is called. Stored in the database; every runner reloads them without a restart."},
	{Name: "templates", Description: "Task templates (Tasker's YAML format): register, validate, read."},
	{Name: "tasks", Description: "Submit tasks, follow them with their steps, list and cancel them."},
	{Name: "steps", Description: "Read a step, retry a failed one, or resolve one by hand."},
	{Name: "dead-letters", Description: "Steps that failed for good (state error), and redriving them."},
}
