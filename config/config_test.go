package config_test

import (
	"slices"
	"testing"
	"time"

	"github.com/tasker-runner/tasker-runner/config"
)

// The duration helpers convert the units their keys are named in.
func TestDurations(t *testing.T) {
	t.Parallel()
	c := config.Default()
	w := c.Worker
	m := w.EventSystems.Worker.Metadata
	e := config.DefaultEndpoint()
	e.TimeoutMS = 1500
	tests := []struct {
		name string
		got  time.Duration
		want time.Duration
	}{
		{"database.connect_timeout_seconds", c.Database.ConnectTimeout(), 10 * time.Second},
		{"worker.shutdown_timeout_seconds", w.ShutdownTimeout(), 30 * time.Second},
		{"fallback_poller.poll_interval_seconds", m.FallbackPoller.Interval(), time.Second},
		{"listener.reconnect_initial_ms", m.Listener.ReconnectInitial(), 100 * time.Millisecond},
		{"listener.reconnect_max_ms", m.Listener.ReconnectMax(), 10 * time.Second},
		{"leases.visibility_timeout_seconds", w.Leases.VisibilityTimeout(), 30 * time.Second},
		{"leases.heartbeat_interval_seconds", w.Leases.HeartbeatInterval(), 10 * time.Second},
		{"completion.flush_interval_ms", w.Completion.FlushInterval(), time.Millisecond},
		{"retry.backoff_base_ms", w.Retry.BackoffBase(), time.Second},
		{"retry.max_backoff_ms", w.Retry.MaxBackoff(), time.Minute},
		{"callout.default_timeout_seconds", w.Callout.DefaultTimeout(), 30 * time.Second},
		{"callout.breaker.interval_seconds", w.Callout.Breaker.Interval(), time.Minute},
		{"callout.breaker.open_timeout_seconds", w.Callout.Breaker.OpenTimeout(), 30 * time.Second},
		{"retention.complete_after_days", w.Retention.CompleteAfter(), 7 * 24 * time.Hour},
		{"retention.failed_after_days", w.Retention.FailedAfter(), 30 * 24 * time.Hour},
		{"retention.cancelled_after_days", w.Retention.CancelledAfter(), 30 * 24 * time.Hour},
		{"retention.interval_seconds", w.Retention.Interval(), time.Minute},
		{"handlers[].timeout_ms", e.Timeout(), 1500 * time.Millisecond},
		{"handlers[].batch_window_ms", e.BatchWindow(), 2 * time.Millisecond},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, tt.got, tt.want)
		}
	}
}

func TestAddrs(t *testing.T) {
	t.Parallel()
	c := config.Default()
	if got := c.Worker.GRPC.Addr(); got != "127.0.0.1:9191" {
		t.Errorf("GRPC.Addr() = %q", got)
	}
	c.Worker.Web.Host = "::1"
	if got := c.Worker.Web.Addr(); got != "[::1]:8081" {
		t.Errorf("Web.Addr() = %q", got)
	}
}

func TestEnumsValid(t *testing.T) {
	t.Parallel()
	for _, m := range []config.DeploymentMode{config.DeploymentModePollingOnly, config.DeploymentModeEventDrivenOnly, config.DeploymentModeHybrid} {
		if !m.Valid() {
			t.Errorf("%q.Valid() = false", m)
		}
	}
	if config.DeploymentMode("fast").Valid() || config.Protocol("smtp").Valid() || config.Scope("write").Valid() {
		t.Error("an invalid value is Valid()")
	}
	if !config.ProtocolGo.Valid() || !config.ScopeAdmin.Valid() {
		t.Error("a valid value is not Valid()")
	}
	if !config.DeploymentModeHybrid.Polls() || !config.DeploymentModeHybrid.Listens() ||
		config.DeploymentModePollingOnly.Listens() || config.DeploymentModeEventDrivenOnly.Polls() {
		t.Error("Polls/Listens disagree with the mode names")
	}
}

// The listeners are loopback by default; IsLoopback accepts exactly the
// addresses only this machine can reach.
func TestIsLoopback(t *testing.T) {
	t.Parallel()
	c := config.Default()
	if !config.IsLoopback(c.Worker.Web.Host) || !config.IsLoopback(c.Worker.GRPC.Host) {
		t.Errorf("default hosts %q and %q are not loopback", c.Worker.Web.Host, c.Worker.GRPC.Host)
	}
	if got := c.Worker.ExposedListeners(); got != nil {
		t.Errorf("Default().Worker.ExposedListeners() = %v, want none", got)
	}
	for host, want := range map[string]bool{
		"127.0.0.1": true, "127.1.2.3": true, "::1": true, "localhost": true, "LocalHost": true,
		"::ffff:127.0.0.1": true,
		"":                 false, "0.0.0.0": false, "::": false, "10.0.0.1": false, "192.168.1.1": false,
		"fe80::1": false, "example.com": false, "localhost.example.com": false, "[::1]": false,
	} {
		if got := config.IsLoopback(host); got != want {
			t.Errorf("IsLoopback(%q) = %v, want %v", host, got, want)
		}
	}
}

func TestExposedListeners(t *testing.T) {
	t.Parallel()
	w := config.Default().Worker
	w.Web.Host, w.GRPC.Host = "0.0.0.0", ""
	if got, want := w.ExposedListeners(), []string{"worker.web.host", "worker.grpc.host"}; !slices.Equal(got, want) {
		t.Errorf("ExposedListeners() = %v, want %v", got, want)
	}
	if got := w.OpenWithoutAuth(); len(got) != 2 {
		t.Errorf("OpenWithoutAuth() = %v with auth off, want both", got)
	}
	w.GRPC.Enabled = false // a disabled listener exposes nothing
	if got, want := w.ExposedListeners(), []string{"worker.web.host"}; !slices.Equal(got, want) {
		t.Errorf("ExposedListeners() = %v, want %v", got, want)
	}
	w.Web.Auth.Enabled = true
	if got := w.OpenWithoutAuth(); got != nil {
		t.Errorf("OpenWithoutAuth() = %v with auth on, want none", got)
	}
}

func TestTLSEnabled(t *testing.T) {
	t.Parallel()
	if (config.TLS{}).Enabled() {
		t.Error("empty TLS is Enabled")
	}
	if !(config.TLS{CertFile: "c", KeyFile: "k"}).Enabled() || !(config.TLS{KeyFile: "k"}).Enabled() {
		t.Error("TLS with files is not Enabled")
	}
}
