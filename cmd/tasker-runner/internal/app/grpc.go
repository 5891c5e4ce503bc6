package app

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/tasker-runner/tasker-runner/config"
	"github.com/tasker-runner/tasker-runner/openapi"
)

// startGRPC starts the Connect/gRPC mirror of the management API
// (tasker.admin.v1.AdminService, grpc.health.v1 and server reflection) on
// worker.grpc's address when it is enabled, serving Connect, gRPC and
// gRPC-Web over HTTP/1.1 and unencrypted HTTP/2 (h2c), or, when tlsCfg is
// set, over HTTP/1.1 and HTTP/2 in TLS (chosen by ALPN) and no h2c. api is
// the REST API's configuration: both run the same operations. It returns
// the bound address ("" when disabled) and a function that shuts the server
// down gracefully (waiting for calls in flight until its context is done).
func startGRPC(_ context.Context, cfg config.Config, api openapi.Config, auth *openapi.Authenticator, tlsCfg *tls.Config, log *slog.Logger) (stop func(context.Context) error, addr string, err error) {
	if !cfg.Worker.GRPC.Enabled {
		return func(context.Context) error { return nil }, "", nil
	}
	if log == nil {
		log = slog.Default()
	}
	ln, err := net.Listen("tcp", cfg.Worker.GRPC.Addr())
	if err != nil {
		return nil, "", fmt.Errorf("worker.grpc: listening on %s: %w", cfg.Worker.GRPC.Addr(), err)
	}
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	if tlsCfg != nil {
		protocols.SetHTTP2(true)
	} else {
		protocols.SetUnencryptedHTTP2(true)
	}
	srv := &http.Server{
		Handler:           openapi.NewMirror(api, auth).Handler(),
		Protocols:         &protocols,
		TLSConfig:         tlsCfg,
		ErrorLog:          serverErrorLog(log),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	// Logged before serving, as the REST API's line.
	addr = ln.Addr().String()
	log.Info("Connect/gRPC management API listening", "addr", addr, "tls", tlsCfg != nil)
	done := make(chan error, 1)
	go func() {
		var err error
		if tlsCfg != nil {
			// ServeTLS adds h2 and http/1.1 to the ALPN protocols; the
			// certificate comes from TLSConfig.GetCertificate.
			err = srv.ServeTLS(ln, "", "")
		} else {
			err = srv.Serve(ln)
		}
		if err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("Connect/gRPC management API stopped", "err", err)
		}
		done <- err
	}()
	var (
		once    sync.Once
		stopErr error
	)
	// stop may be called more than once (an explicit stop, then a deferred
	// safety net); only the first call shuts the server down.
	stop = func(ctx context.Context) error {
		once.Do(func() {
			if err := srv.Shutdown(ctx); err != nil {
				_ = srv.Close()
				<-done
				stopErr = fmt.Errorf("connect/grpc management API: shutting down: %w", err)
				return
			}
			if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
				stopErr = fmt.Errorf("connect/grpc management API: %w", err)
			}
		})
		return stopErr
	}
	return stop, addr, nil
}
