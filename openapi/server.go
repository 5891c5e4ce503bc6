package openapi

import (
	"cmp"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"
)

// Config configures a [Server].
type Config struct {
	// Title of the API in the OpenAPI document. Default "tasker-runner".
	Title string
	// Version of the running binary, reported by health and the spec.
	Version string
	// Checks are run by the readiness endpoints, in order.
	Checks []Check
	// CheckTimeout bounds each check. Default [CheckTimeoutDefault].
	CheckTimeout time.Duration
	// Now returns the current time; tests inject it. Default time.Now.
	Now func() time.Time
}

// CheckTimeoutDefault is the default of [Config.CheckTimeout].
const CheckTimeoutDefault = 2 * time.Second

// Server is the management API.
type Server struct {
	cfg     Config
	mux     *http.ServeMux
	api     huma.API
	started time.Time
}

// New builds a [Server] and registers its operations.
func New(cfg Config) *Server {
	cfg.Title = cmp.Or(cfg.Title, "tasker-runner")
	cfg.Version = cmp.Or(cfg.Version, "dev")
	cfg.CheckTimeout = cmp.Or(cfg.CheckTimeout, CheckTimeoutDefault)
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	hc := huma.DefaultConfig(cfg.Title, cfg.Version)
	// huma's docs page loads its script from a CDN; an offline-safe page is
	// served separately (or not at all), never one that breaks air-gapped.
	hc.DocsPath = ""
	mux := http.NewServeMux()
	s := &Server{cfg: cfg, mux: mux, api: humago.New(mux, hc), started: cfg.Now()}
	s.registerHealth()
	return s
}

// Handler returns the HTTP handler serving every operation.
func (s *Server) Handler() http.Handler { return s.mux }

// API returns the underlying huma API, e.g. to export the OpenAPI document.
func (s *Server) API() huma.API { return s.api }
