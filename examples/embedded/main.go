// Command embedded runs tasker-runner inside a Go service: two steps are Go
// functions of this process, one is an HTTP handler (here on loopback in the
// same process, as a sidecar would be), and the management API is served
// from the service's own mux. See README.md.
//
//	DATABASE_URL=postgres://... go run ./examples/embedded
package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/tasker-runner/tasker-runner/openapi"
	"github.com/tasker-runner/tasker-runner/runner"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ln, err := net.Listen("tcp", cmp.Or(os.Getenv("ADDR"), "127.0.0.1:8081"))
	if err == nil {
		err = run(ctx, os.Getenv("DATABASE_URL"), ln)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "embedded:", err)
		os.Exit(1)
	}
}

// run serves the management API on ln until ctx is done, then stops.
func run(ctx context.Context, databaseURL string, ln net.Listener) error {
	defer ln.Close()
	pool, err := runner.OpenPool(ctx, runner.PoolConfig{URL: databaseURL})
	if err != nil {
		return err
	}
	defer pool.Close()
	if _, err := runner.Migrate(ctx, pool); err != nil {
		return err
	}
	mail, err := serveMail() // the HTTP handler
	if err != nil {
		return err
	}
	defer mail.Close()
	srv, err := runner.NewServer(pool, runner.ServerConfig{Endpoints: []runner.StaticEndpoint{
		{Pattern: "mail.*", URL: "http://" + mail.Addr + "/steps/{callable}"},
	}})
	if err != nil {
		return err
	}
	srv.HandleFunc("payments.charge", charge)
	srv.HandleFunc("inventory.reserve", reserve)
	if err := srv.Start(ctx); err != nil {
		return errors.Join(err, srv.Stop(ctx))
	}
	if _, err := srv.Client().RegisterTemplate(ctx, orderTemplate); err != nil {
		return errors.Join(err, srv.Stop(ctx))
	}

	// The management API, unauthenticated: wrap it in your own middleware.
	api := openapi.New(openapi.Config{Client: srv.Client(), Endpoints: srv.Endpoints, RunnerStats: srv.Stats})
	mux := http.NewServeMux()
	mux.Handle("/", api.Handler())
	web := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = web.Serve(ln) }()

	<-ctx.Done()
	stopCtx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return errors.Join(web.Shutdown(stopCtx), srv.Stop(stopCtx)) // steps finish; mail closes after
}
