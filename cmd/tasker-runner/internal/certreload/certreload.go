// Package certreload serves a TLS certificate from a pair of PEM files and
// follows the files when they change, so a renewed certificate (cert-manager,
// a Kubernetes Secret update, certbot) takes effect without a restart.
//
// A [Reloader] looks at the files at most once per [Options.CheckInterval],
// during a TLS handshake, and reads them again only when one of them changed
// (another file, modification time or size). A pair that fails to load is
// logged and the last good one is kept, so a half-written renewal never
// takes a listener down.
package certreload

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// DefaultCheckInterval is how often, at most, the files are looked at.
const DefaultCheckInterval = time.Second

// Options are the optional settings of a [Reloader].
type Options struct {
	// Logger receives a line for every reload and every failed one. Nil
	// means slog.Default().
	Logger *slog.Logger
	// CheckInterval is the least time between two looks at the files. Zero
	// means DefaultCheckInterval.
	CheckInterval time.Duration
	// Now tells the time; nil means time.Now. Tests inject a clock.
	Now func() time.Time
}

// Reloader holds the current certificate of one listener.
type Reloader struct {
	certFile, keyFile string
	log               *slog.Logger
	interval          time.Duration
	now               func() time.Time

	mu        sync.Mutex
	cert      *tls.Certificate
	loaded    stamp     // the files the current certificate came from
	failed    stamp     // the files of the last failed reload, logged once
	failedMsg string    // and its error
	lastCheck time.Time // when the files were last looked at
}

// stamp identifies the contents of both files without reading them.
type stamp struct {
	cert, key os.FileInfo
}

// same reports whether s and o describe the same files, unchanged.
func (s stamp) same(o stamp) bool {
	return sameFile(s.cert, o.cert) && sameFile(s.key, o.key)
}

func sameFile(a, b os.FileInfo) bool {
	if a == nil || b == nil {
		return a == b
	}
	return os.SameFile(a, b) && a.ModTime().Equal(b.ModTime()) && a.Size() == b.Size()
}

// New loads the pair and returns a Reloader serving it. The error names
// both files.
func New(certFile, keyFile string, opts Options) (*Reloader, error) {
	r := &Reloader{
		certFile: certFile,
		keyFile:  keyFile,
		log:      opts.Logger,
		interval: opts.CheckInterval,
		now:      opts.Now,
	}
	if r.log == nil {
		r.log = slog.Default()
	}
	if r.interval <= 0 {
		r.interval = DefaultCheckInterval
	}
	if r.now == nil {
		r.now = time.Now
	}
	st, err := r.stat()
	if err != nil {
		return nil, err
	}
	cert, err := r.load()
	if err != nil {
		return nil, err
	}
	r.cert, r.loaded, r.lastCheck = cert, st, r.now()
	return r, nil
}

// stat looks at both files.
func (r *Reloader) stat() (stamp, error) {
	c, errC := os.Stat(r.certFile)
	k, errK := os.Stat(r.keyFile)
	if err := errors.Join(errC, errK); err != nil {
		return stamp{}, err
	}
	return stamp{cert: c, key: k}, nil
}

// load reads and parses the pair.
func (r *Reloader) load() (*tls.Certificate, error) {
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return nil, fmt.Errorf("loading the certificate %s with the key %s: %w", r.certFile, r.keyFile, err)
	}
	return &cert, nil
}

// GetCertificate returns the current certificate, first reloading it when
// the files changed since they were last looked at. It fits
// [tls.Config.GetCertificate] and never fails once New has succeeded.
func (r *Reloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.now()
	if now.Sub(r.lastCheck) < r.interval && !now.Before(r.lastCheck) {
		return r.cert, nil
	}
	r.lastCheck = now
	st, err := r.stat()
	if err != nil {
		// Mid-rotation (a file renamed away) or gone: keep serving.
		r.logFailure(stamp{}, err)
		return r.cert, nil
	}
	if st.same(r.loaded) {
		return r.cert, nil
	}
	cert, err := r.load()
	if err != nil {
		r.logFailure(st, err)
		return r.cert, nil
	}
	r.cert, r.loaded, r.failed, r.failedMsg = cert, st, stamp{}, ""
	attrs := []any{"cert_file", r.certFile, "key_file", r.keyFile}
	if cert.Leaf != nil {
		attrs = append(attrs, "subject", cert.Leaf.Subject.String(), "not_after", cert.Leaf.NotAfter)
	}
	r.log.Info("TLS certificate reloaded", attrs...)
	return r.cert, nil
}

// logFailure logs a failed reload once per state of the files and error,
// not at every check; the reload is tried again at every check.
func (r *Reloader) logFailure(st stamp, err error) {
	if msg := err.Error(); msg != r.failedMsg || !st.same(r.failed) {
		r.failed, r.failedMsg = st, msg
		r.log.Error("TLS certificate not reloaded; still serving the previous one", "cert_file", r.certFile, "key_file", r.keyFile, "err", err)
	}
}

// Certificate returns the certificate currently served, without looking
// at the files.
func (r *Reloader) Certificate() *tls.Certificate {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.cert
}

// TLSConfig returns a server configuration serving the reloaded
// certificate, TLS 1.2 or later. The server adds its ALPN protocols.
func (r *Reloader) TLSConfig() *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: r.GetCertificate,
	}
}
