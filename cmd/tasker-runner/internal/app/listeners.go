package app

import (
	"crypto/tls"
	"fmt"
	"log"
	"log/slog"
	"strings"

	"github.com/tasker-runner/tasker-runner/cmd/tasker-runner/internal/certreload"
	"github.com/tasker-runner/tasker-runner/config"
)

// checkExposure refuses listeners that are reachable from the network while
// auth is off, unless worker.web.auth.allow_unauthenticated says so; then
// it logs a warning. config.Load already refuses such a configuration; this
// guards every other way of reaching serve.
func checkExposure(cfg config.Config, log *slog.Logger) error {
	open := cfg.Worker.OpenWithoutAuth()
	if len(open) == 0 {
		return nil
	}
	if !cfg.Worker.Web.Auth.AllowUnauthenticated {
		return fmt.Errorf("%s: reachable from the network while worker.web.auth.enabled is false: "+
			"enable worker.web.auth, or set worker.web.auth.allow_unauthenticated = true", strings.Join(open, ", "))
	}
	hosts := make([]string, len(open))
	for i, key := range open {
		hosts[i] = cfg.Worker.Web.Addr()
		if key == "worker.grpc.host" {
			hosts[i] = cfg.Worker.GRPC.Addr()
		}
	}
	log.Warn("the management API is open to the network without authentication (worker.web.auth.allow_unauthenticated = true): "+
		"anyone who can connect can submit and cancel tasks, change handler endpoints and read task data; "+
		"enable worker.web.auth unless something in front of the runner restricts access",
		"listeners", strings.Join(hosts, ","))
	return nil
}

// listenerTLS returns the TLS configuration of a listener whose [config.TLS]
// is at key ("worker.web.tls"), or nil when it has none. The certificate is
// loaded now, so a bad pair fails the start naming the key, and reloaded
// whenever its files change.
func listenerTLS(key string, t config.TLS, log *slog.Logger) (*tls.Config, error) {
	if !t.Enabled() {
		return nil, nil
	}
	r, err := certreload.New(t.CertFile, t.KeyFile, certreload.Options{Logger: log.With("listener", key)})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", key, err)
	}
	return r.TLSConfig(), nil
}

// serverErrorLog sends what an http.Server logs (failed TLS handshakes,
// handler panics) to the runner's log instead of the standard logger.
func serverErrorLog(l *slog.Logger) *log.Logger {
	return slog.NewLogLogger(l.Handler(), slog.LevelWarn)
}
