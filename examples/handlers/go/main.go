// Command go-handler is tasker-runner's example handler service in Go: a
// plain net/http server that runs the steps of an order-fulfilment workflow
// (package handler has the steps). See README.md.
//
//	go run ./examples/handlers/go [--addr :8091]
//
// It listens on --addr, default ":$PORT" (PORT defaults to 8091). When
// TASKER_WEBHOOK_SECRET is set (several space-separated secrets during a
// rotation) every step request must carry a valid Standard Webhooks
// signature. SIGINT or SIGTERM stops it gracefully.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/tasker-runner/tasker-runner/examples/handlers/go/handler"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stderr, nil); err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "go-handler:", err)
		os.Exit(1)
	}
}

// run serves until ctx ends, then shuts down gracefully. listening, when set,
// is told the address once the server accepts connections.
func run(ctx context.Context, args []string, getenv func(string) string, logs io.Writer, listening func(net.Addr)) error {
	port := getenv("PORT")
	if port == "" {
		port = "8091"
	}
	fs := flag.NewFlagSet("go-handler", flag.ContinueOnError)
	fs.SetOutput(logs)
	addr := fs.String("addr", ":"+port, "listen address (default :$PORT)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(logs, nil))
	h, err := handler.New(handler.Options{Secrets: strings.Fields(getenv("TASKER_WEBHOOK_SECRET")), Logger: log})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Info("listening", "addr", ln.Addr().String(), "signed", getenv("TASKER_WEBHOOK_SECRET") != "")
	if listening != nil {
		listening(ln.Addr())
	}

	select {
	case err := <-served:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return err
	}
	<-served // http.ErrServerClosed
	return nil
}
