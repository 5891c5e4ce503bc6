package app

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"connectrpc.com/connect"
	"github.com/sethvargo/go-envconfig"

	"github.com/tasker-runner/tasker-runner/cmd/tasker-runner/internal/certreload/certtest"
	"github.com/tasker-runner/tasker-runner/cmd/tasker-runner/internal/cli"
	"github.com/tasker-runner/tasker-runner/cmd/tasker-runner/internal/clitest"
	"github.com/tasker-runner/tasker-runner/config"
	adminv1 "github.com/tasker-runner/tasker-runner/contracts/gen/tasker/admin/v1"
	"github.com/tasker-runner/tasker-runner/contracts/gen/tasker/admin/v1/adminv1connect"
	"github.com/tasker-runner/tasker-runner/runner/store/pgtest"
)

// servedAddrs are the addresses an in-process serve bound.
type servedAddrs struct{ api, grpc string }

// startServe runs serve in-process with cfg until the test ends, and
// returns the bound addresses and serve's log. cfg is used as given (not
// validated), so ports may be 0.
func startServe(t *testing.T, cfg config.Config) (servedAddrs, *clitest.Buffer) {
	t.Helper()
	logs := &clitest.Buffer{}
	env := &cli.Env{
		Stdout: io.Discard, Stderr: logs,
		Lookup: envconfig.MapLookuper(nil),
		Logger: slog.New(slog.NewTextHandler(logs, nil)),
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(t.Context()))
	ready := make(chan servedAddrs, 1)
	done := make(chan error, 1)
	go func() {
		done <- Serve(ctx, env, cfg, ServeOptions{Ready: func(api, grpc string) { ready <- servedAddrs{api, grpc} }})
	}()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v\n%s", err, logs)
		}
	})
	select {
	case a := <-ready:
		return a, logs
	case err := <-done:
		done <- err // for the cleanup
		t.Fatalf("serve returned before it was ready: %v\n%s", err, logs)
	case <-time.After(clitest.StartupTimeout):
		t.Fatalf("serve was not ready within %v\n%s", clitest.StartupTimeout, logs)
	}
	return servedAddrs{}, nil
}

// ephemeralConfig is the default configuration on the throwaway database,
// with both APIs on ports the system picks.
func ephemeralConfig(t *testing.T) config.Config {
	t.Helper()
	cfg := config.Default()
	cfg.Database.URL = pgtest.URL(t)
	cfg.Worker.Web.Port, cfg.Worker.GRPC.Port = 0, 0
	cfg.Worker.ShutdownTimeoutSeconds = 1
	return cfg
}

// TestServeDefaultListensOnLoopback: with the default hosts, both APIs
// are bound to 127.0.0.1 and nothing else.
func TestServeDefaultListensOnLoopback(t *testing.T) {
	t.Parallel()
	addrs, _ := startServe(t, ephemeralConfig(t))
	for name, addr := range map[string]string{"REST": addrs.api, "Connect/gRPC": addrs.grpc} {
		host, _, err := net.SplitHostPort(addr)
		if err != nil || host != "127.0.0.1" {
			t.Errorf("the %s API is bound to %q, want 127.0.0.1:PORT", name, addr)
		}
	}
	resp, err := clitest.NoKeepAlive.Get("http://" + addrs.api + "/health/live")
	if err != nil {
		t.Fatalf("GET /health/live: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("GET /health/live = %s", resp.Status)
	}
}

// TestServeRefusesOpenListenerWithoutAuth: a listener reachable from the
// network while auth is off stops the start, naming the key and both fixes.
func TestServeRefusesOpenListenerWithoutAuth(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		vars map[string]string
		keys []string
	}{
		"web":  {map[string]string{"TASKER_WORKER_WEB_HOST": "0.0.0.0"}, []string{"worker.web.host"}},
		"grpc": {map[string]string{"TASKER_WORKER_GRPC_HOST": "::"}, []string{"worker.grpc.host"}},
		"both": {map[string]string{"TASKER_WORKER_WEB_HOST": "10.0.0.1", "TASKER_WORKER_GRPC_HOST": "0.0.0.0"}, []string{"worker.web.host", "worker.grpc.host"}},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			tc.vars["DATABASE_URL"] = "postgres://nobody@127.0.0.1:1/nothing"
			r := clitest.Run(t, tc.vars, "serve")
			want := append(tc.keys, "worker.web.auth.enabled is false", "enable worker.web.auth",
				"worker.web.auth.allow_unauthenticated = true", "TASKER_WORKER_WEB_AUTH_ALLOW_UNAUTHENTICATED=true")
			for _, w := range want {
				if !strings.Contains(r.Stderr, w) {
					t.Errorf("stderr does not name %q", w)
				}
			}
			if r.Code != 1 || strings.Contains(r.Stderr, "connected to database") {
				t.Errorf("want exit 1 before connecting, got %v", r)
			}
		})
	}
	// serve itself refuses too, whoever calls it with such a configuration.
	t.Run("serve", func(t *testing.T) {
		t.Parallel()
		cfg := config.Default()
		cfg.Worker.GRPC.Host = ""
		env := &cli.Env{Stdout: io.Discard, Stderr: io.Discard, Logger: slog.New(slog.DiscardHandler)}
		err := Serve(t.Context(), env, cfg, ServeOptions{})
		if err == nil || !strings.Contains(err.Error(), "worker.grpc.host") || !strings.Contains(err.Error(), "allow_unauthenticated") {
			t.Fatalf("serve = %v, want a refusal naming worker.grpc.host", err)
		}
	})
}

// TestServeAllowUnauthenticated: the explicit opt-out starts a runner on
// every interface without auth, with a warning in the log.
func TestServeAllowUnauthenticated(t *testing.T) {
	t.Parallel()
	vars, addr := clitest.WebVars(t)
	vars["TASKER_WORKER_WEB_HOST"] = "0.0.0.0"
	vars["TASKER_WORKER_WEB_AUTH_ALLOW_UNAUTHENTICATED"] = "true"
	vars["DATABASE_URL"] = pgtest.URL(t)
	c := clitest.Start(t, vars, "serve")
	c.WaitHealthy(addr, clitest.StartupTimeout) // 0.0.0.0 includes loopback
	c.Stop(syscall.SIGTERM)
	log := c.Stderr.String()
	for _, w := range []string{"level=WARN", "the management API is open to the network without authentication", "0.0.0.0:" + vars["TASKER_WORKER_WEB_PORT"]} {
		if !strings.Contains(log, w) {
			t.Errorf("the log does not show %q:\n%s", w, log)
		}
	}
	for _, line := range strings.Split(log, "\n") {
		if strings.Contains(line, "without authentication") && strings.Contains(line, ":"+vars["TASKER_WORKER_GRPC_PORT"]) {
			t.Errorf("the warning lists the loopback gRPC listener: %s", line)
		}
	}
}

// tlsGet GETs url over a new TLS connection trusting pool and returns the
// status and the server certificate's common name.
func tlsGet(url string, pool *x509.CertPool) (int, string, error) {
	client := &http.Client{
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, DisableKeepAlives: true},
		Timeout:   5 * time.Second,
	}
	resp, err := client.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.TLS == nil || len(resp.TLS.PeerCertificates) == 0 {
		return 0, "", errors.New("no TLS connection state")
	}
	return resp.StatusCode, resp.TLS.PeerCertificates[0].Subject.CommonName, nil
}

// TestServeTLS: with worker.web.tls and worker.grpc.tls both APIs serve
// TLS only; a renewed certificate reaches new connections without a
// restart; Connect and gRPC work over TLS (HTTP/1.1 and HTTP/2 by ALPN).
func TestServeTLS(t *testing.T) {
	t.Parallel()
	first, second := certtest.New(t, "first"), certtest.New(t, "second")
	certFile, keyFile := first.Files(t)
	cfg := ephemeralConfig(t)
	cfg.Worker.Web.TLS = config.TLS{CertFile: certFile, KeyFile: keyFile}
	cfg.Worker.GRPC.TLS = cfg.Worker.Web.TLS
	addrs, logs := startServe(t, cfg)
	pool := first.Pool()
	pool.AddCert(second.Leaf)

	code, cn, err := tlsGet("https://"+addrs.api+"/health/live", pool)
	if err != nil || code != http.StatusOK || cn != "first" {
		t.Fatalf("GET https /health/live = %d from %q, %v; want 200 from first", code, cn, err)
	}
	// No plain HTTP on a TLS listener.
	if resp, err := clitest.NoKeepAlive.Get("http://" + addrs.api + "/health/live"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Errorf("plain HTTP answered 200 on the TLS listener")
		}
	}

	// Renew: new connections get the new certificate once the runner has
	// noticed (it looks at most once a second).
	second.Write(t, certFile, keyFile)
	deadline := time.Now().Add(15 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		code, cn, err = tlsGet("https://"+addrs.api+"/health/live", pool)
		if err == nil && code == http.StatusOK && cn == "second" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the renewed certificate was not served within 15s: last %d from %q, %v\n%s", code, cn, err, logs)
		}
		<-tick.C
	}
	if !strings.Contains(logs.String(), "TLS certificate reloaded") {
		t.Errorf("the reload is not logged:\n%s", logs)
	}

	// Connect over HTTP/1.1 and gRPC over HTTP/2, both in TLS.
	for _, tc := range []struct {
		name  string
		http2 bool
		opts  []connect.ClientOption
	}{
		{"connect over HTTP/1.1", false, nil},
		{"grpc over HTTP/2", true, []connect.ClientOption{connect.WithGRPC()}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var protocols http.Protocols
			protocols.SetHTTP1(!tc.http2)
			protocols.SetHTTP2(tc.http2)
			tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}, Protocols: &protocols}
			defer tr.CloseIdleConnections()
			client := adminv1connect.NewAdminServiceClient(&http.Client{Transport: tr, Timeout: 10 * time.Second}, "https://"+addrs.grpc, tc.opts...)
			resp, err := client.GetStatus(t.Context(), connect.NewRequest(&adminv1.GetStatusRequest{}))
			if err != nil {
				t.Fatalf("GetStatus: %v", err)
			}
			if resp.Msg.GetVersion() != cli.BuildVersion() {
				t.Errorf("GetStatus version = %q, want %q", resp.Msg.GetVersion(), cli.BuildVersion())
			}
		})
	}
	// No h2c on the TLS listener: a plain HTTP/2 client gets nowhere.
	var h2c http.Protocols
	h2c.SetUnencryptedHTTP2(true)
	tr := &http.Transport{Protocols: &h2c}
	defer tr.CloseIdleConnections()
	_, err = adminv1connect.NewAdminServiceClient(&http.Client{Transport: tr, Timeout: 5 * time.Second}, "http://"+addrs.grpc, connect.WithGRPC()).
		GetStatus(t.Context(), connect.NewRequest(&adminv1.GetStatusRequest{}))
	if err == nil {
		t.Error("GetStatus over h2c succeeded on the TLS listener")
	}
}

// TestServeTLSBadFiles: a certificate that does not load stops the start,
// naming the key and the file.
func TestServeTLSBadFiles(t *testing.T) {
	t.Parallel()
	certFile, _ := certtest.New(t, "one").Files(t)
	_, otherKey := certtest.New(t, "two").Files(t)
	r := clitest.Run(t, map[string]string{
		"DATABASE_URL":                     "postgres://nobody@127.0.0.1:1/nothing",
		"TASKER_WORKER_GRPC_TLS_CERT_FILE": certFile,
		"TASKER_WORKER_GRPC_TLS_KEY_FILE":  otherKey,
	}, "serve")
	if r.Code != 1 || !strings.Contains(r.Stderr, "worker.grpc.tls") || !strings.Contains(r.Stderr, certFile) {
		t.Errorf("want exit 1 naming worker.grpc.tls and %s, got %v", certFile, r)
	}
	r = clitest.Run(t, map[string]string{
		"DATABASE_URL":                    "postgres://nobody@127.0.0.1:1/nothing",
		"TASKER_WORKER_WEB_TLS_CERT_FILE": certFile,
	}, "serve")
	if want := "worker.web.tls.key_file: required when worker.web.tls.cert_file is set"; r.Code != 1 || !strings.Contains(r.Stderr, want) {
		t.Errorf("want exit 1 with %q, got %v", want, r)
	}
}
