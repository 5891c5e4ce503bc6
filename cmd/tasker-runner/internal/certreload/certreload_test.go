package certreload_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/tasker-runner/tasker-runner/cmd/tasker-runner/internal/certreload"
	"github.com/tasker-runner/tasker-runner/cmd/tasker-runner/internal/certreload/certtest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// clock is a settable time source.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// logBuffer collects log output for assertions.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func newReloader(t *testing.T, certFile, keyFile string) (*certreload.Reloader, *clock, *logBuffer) {
	t.Helper()
	clk := &clock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	logs := &logBuffer{}
	r, err := certreload.New(certFile, keyFile, certreload.Options{
		Logger: slog.New(slog.NewTextHandler(logs, nil)),
		Now:    clk.Now,
	})
	if err != nil {
		t.Fatal(err)
	}
	return r, clk, logs
}

// served returns the common name of the certificate a handshake gets.
func served(t *testing.T, r *certreload.Reloader) string {
	t.Helper()
	c, err := r.GetCertificate(&tls.ClientHelloInfo{})
	if err != nil {
		t.Fatalf("GetCertificate: %v", err)
	}
	if c.Leaf == nil {
		t.Fatal("the certificate has no parsed leaf")
	}
	return c.Leaf.Subject.CommonName
}

// A renewed pair is served from the first check after the files changed,
// and not before: the files are looked at once per interval at most.
func TestReloadsChangedFiles(t *testing.T) {
	t.Parallel()
	certFile, keyFile := certtest.New(t, "first").Files(t)
	r, clk, logs := newReloader(t, certFile, keyFile)
	if got := served(t, r); got != "first" {
		t.Fatalf("served %q, want first", got)
	}
	certtest.New(t, "second").Write(t, certFile, keyFile)
	clk.advance(certreload.DefaultCheckInterval / 2)
	if got := served(t, r); got != "first" {
		t.Fatalf("served %q within the check interval, want first (the files are not looked at yet)", got)
	}
	clk.advance(certreload.DefaultCheckInterval / 2)
	if got := served(t, r); got != "second" {
		t.Fatalf("served %q after the interval, want second", got)
	}
	if got := r.Certificate().Leaf.Subject.CommonName; got != "second" {
		t.Errorf("Certificate() = %q, want second", got)
	}
	if !strings.Contains(logs.String(), "TLS certificate reloaded") || !strings.Contains(logs.String(), "CN=second") {
		t.Errorf("the reload is not logged with the new subject:\n%s", logs)
	}
	// Unchanged files are not read again: nothing more is logged.
	before := logs.String()
	for range 3 {
		clk.advance(certreload.DefaultCheckInterval)
		served(t, r)
	}
	if logs.String() != before {
		t.Errorf("unchanged files logged:\n%s", strings.TrimPrefix(logs.String(), before))
	}
}

// A pair that does not load (a half-done renewal, garbage, a missing file)
// keeps the last good certificate, is logged once, and is tried again
// until it loads.
func TestKeepsLastGoodPair(t *testing.T) {
	t.Parallel()
	first := certtest.New(t, "first")
	certFile, keyFile := first.Files(t)
	r, clk, logs := newReloader(t, certFile, keyFile)
	second := certtest.New(t, "second")

	// Half a renewal: the new certificate with the old key.
	if err := os.WriteFile(certFile, second.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		clk.advance(time.Second)
		if got := served(t, r); got != "first" {
			t.Fatalf("served %q with a mismatched pair, want the last good one", got)
		}
	}
	if n := strings.Count(logs.String(), "TLS certificate not reloaded"); n != 1 {
		t.Errorf("the failure is logged %d times, want once:\n%s", n, logs)
	}
	if !strings.Contains(logs.String(), certFile) {
		t.Errorf("the failure does not name %s:\n%s", certFile, logs)
	}

	// A missing key file.
	if err := os.Remove(keyFile); err != nil {
		t.Fatal(err)
	}
	clk.advance(time.Second)
	if got := served(t, r); got != "first" {
		t.Fatalf("served %q with the key missing, want first", got)
	}
	if n := strings.Count(logs.String(), "TLS certificate not reloaded"); n != 2 {
		t.Errorf("the missing key is not logged (%d failures logged):\n%s", n, logs)
	}

	// The renewal completes.
	second.Write(t, certFile, keyFile)
	clk.advance(time.Second)
	if got := served(t, r); got != "second" {
		t.Fatalf("served %q after the renewal completed, want second", got)
	}
}

func TestNewFailsNamingTheFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	good := certtest.New(t, "good")
	certFile, keyFile := good.Files(t)
	garbage := filepath.Join(dir, "garbage.pem")
	if err := os.WriteFile(garbage, []byte("not PEM"), 0o600); err != nil {
		t.Fatal(err)
	}
	otherCert, _ := certtest.New(t, "other").Files(t)
	for name, files := range map[string][2]string{
		"missing":    {filepath.Join(dir, "nope.crt"), keyFile},
		"garbage":    {garbage, keyFile},
		"mismatched": {otherCert, keyFile},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := certreload.New(files[0], files[1], certreload.Options{})
			if err == nil || !strings.Contains(err.Error(), files[0]) {
				t.Fatalf("New = %v, want an error naming %s", err, files[0])
			}
		})
	}
	if _, err := certreload.New(certFile, keyFile, certreload.Options{}); err != nil {
		t.Fatalf("New with a good pair: %v", err)
	}
}

// TLSConfig asks for TLS 1.2 or later and serves the current certificate.
func TestTLSConfig(t *testing.T) {
	t.Parallel()
	c := certtest.New(t, "handshake")
	certFile, keyFile := c.Files(t)
	r, _, _ := newReloader(t, certFile, keyFile)
	cfg := r.TLSConfig()
	if cfg.MinVersion < tls.VersionTLS12 {
		t.Errorf("MinVersion = %x, want TLS 1.2 or later", cfg.MinVersion)
	}
	got, err := cfg.GetCertificate(&tls.ClientHelloInfo{ServerName: "localhost"})
	if err != nil || got.Leaf.Subject.CommonName != "handshake" {
		t.Fatalf("GetCertificate = %v, %v", got, err)
	}
	if _, err := got.Leaf.Verify(x509VerifyOptions(c)); err != nil {
		t.Errorf("the served certificate does not verify against its pool: %v", err)
	}
}

func x509VerifyOptions(c certtest.Cert) x509.VerifyOptions {
	return x509.VerifyOptions{Roots: c.Pool(), DNSName: "localhost"}
}
