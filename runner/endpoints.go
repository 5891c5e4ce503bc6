package runner

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/tasker-runner/tasker-runner/callout"
	"github.com/tasker-runner/tasker-runner/runner/store"
)

// Endpoints keeps a [callout.Registry] in step with the endpoints from the
// configuration (Static) and those registered in the database, which win
// for the same namespace and pattern. A [Runner] whose Config names an
// Endpoints reloads it whenever the database announces a change.
//
// A database endpoint this process cannot use (its secret_ref does not
// resolve here, or the row is not a valid endpoint) does not stop the
// others: it is registered as unusable ([callout.Endpoint.Unusable]), so
// its steps wait in the queue without being called or using attempts, the
// reason is logged once and shown by [callout.Registry.Endpoints], and the
// runner looks at it again every RecheckInterval (a secret file that
// appears, a variable set) as well as whenever the endpoint is registered
// again.
type Endpoints struct {
	Registry *callout.Registry
	Static   []callout.Endpoint
	DB       DB
	// LookupEnv resolves "env:" secret references. Default os.LookupEnv.
	LookupEnv func(string) (string, bool)
	// SecretDirs are where "file:" secret references may point; nil means
	// [DefaultSecretDirs]. See [SecretSource].
	SecretDirs []string
	// RecheckInterval is how often unusable endpoints are looked at again,
	// and how long their steps wait before they are tried again. Default
	// [callout.UnusableRetryDefault].
	RecheckInterval time.Duration
	// Logger gets why an endpoint is unusable (never a secret). Default
	// slog.Default().
	Logger *slog.Logger

	mu       sync.Mutex           // one Reload at a time: the last read wins
	unusable map[[2]string]string // (namespace, pattern) -> why, as last loaded
}

func (e *Endpoints) logger() *slog.Logger {
	if e.Logger == nil {
		return slog.Default()
	}
	return e.Logger
}

func (e *Endpoints) recheckInterval() time.Duration {
	return cmp.Or(e.RecheckInterval, callout.UnusableRetryDefault)
}

// Reload reads the database's endpoints and applies the merged set. On
// error (the database cannot be read) the registry keeps its previous
// endpoints; an endpoint that cannot be used is not an error (see
// [Endpoints]).
func (e *Endpoints) Reload(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	rows, err := store.ListEndpoints(ctx, e.DB)
	if err != nil {
		return err
	}
	merged := make([]callout.Endpoint, 0, len(e.Static)+len(rows))
	fromDB := map[[2]string]bool{}
	unusable := map[[2]string]string{}
	for _, row := range rows {
		key := [2]string{row.Namespace, row.Pattern}
		ep, reason, err := e.fromRow(row)
		if err == nil {
			err = callout.CheckEndpoint(ep)
			reason = err
		}
		if err != nil {
			ep = callout.Endpoint{
				Namespace: row.Namespace, Pattern: row.Pattern, URL: row.URL, Protocol: row.Protocol,
				Unusable: err.Error(), UnusableRetry: e.recheckInterval(),
			}
			unusable[key] = ep.Unusable
			if e.unusable[key] != ep.Unusable {
				e.logger().Error("handler endpoint unusable: its steps wait, not called and not failed, until it is fixed",
					"namespace", row.Namespace, "pattern", row.Pattern, "err", err, "reason", reason)
			}
		} else if _, was := e.unusable[key]; was {
			e.logger().Info("handler endpoint usable again", "namespace", row.Namespace, "pattern", row.Pattern)
		}
		fromDB[key] = true
		merged = append(merged, ep)
	}
	for _, ep := range e.Static {
		if !fromDB[[2]string{ep.Namespace, ep.Pattern}] {
			merged = append(merged, ep)
		}
	}
	if err := e.Registry.Set(merged); err != nil {
		return fmt.Errorf("runner: loading endpoints: %w", err)
	}
	e.unusable = unusable
	return nil
}

// anyUnusable reports whether the last Reload left an endpoint unusable.
func (e *Endpoints) anyUnusable() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.unusable) > 0
}

// fromRow builds the endpoint of a row. Its error is the one message every
// secret failure gets; reason is why, for the log (never the secret).
func (e *Endpoints) fromRow(r store.HandlerEndpoint) (ep callout.Endpoint, reason, err error) {
	src := SecretSource{LookupEnv: e.LookupEnv, Dirs: e.SecretDirs, Logger: e.Logger}
	secrets, reason := src.resolve(r.SecretRef)
	if reason != nil {
		return callout.Endpoint{}, reason, src.failure(r.SecretRef)
	}
	return callout.Endpoint{
		Namespace:      r.Namespace,
		Pattern:        r.Pattern,
		URL:            r.URL,
		Protocol:       r.Protocol,
		Timeout:        time.Duration(r.TimeoutMs) * time.Millisecond,
		MaxConcurrency: r.MaxConcurrency,
		BatchMax:       r.BatchMax,
		BatchWindow:    time.Duration(r.BatchWindowMs) * time.Millisecond,
		Breaker: callout.BreakerSettings{
			ConsecutiveFailures: uint32(r.BreakerConsecutiveFailures),
			OpenTimeout:         time.Duration(r.BreakerOpenTimeoutMs) * time.Millisecond,
			Interval:            time.Duration(r.BreakerIntervalMs) * time.Millisecond,
			MaxRequests:         uint32(r.BreakerMaxRequests),
		},
		Headers: r.Headers,
		Secrets: secrets,
	}, nil, nil
}

// DefaultSecretDirs are the directories "file:" secret references may read
// from when [SecretSource.Dirs] is nil: where Docker and Kubernetes mount
// secrets.
var DefaultSecretDirs = []string{"/run/secrets"}

// SecretSource resolves secret references ("env:NAME", "file:/path") of
// handler endpoints.
type SecretSource struct {
	// LookupEnv resolves "env:" references. Default os.LookupEnv.
	LookupEnv func(string) (string, bool)
	// Dirs are the directories "file:" references may read from; a path
	// is judged after symbolic links and ".." are resolved. nil means
	// [DefaultSecretDirs].
	Dirs []string
	// Logger gets the reason a reference did not resolve (never the
	// content); callers only see one message for every reason, so a
	// reference cannot be used to learn which files or variables exist.
	// Default slog.Default().
	Logger *slog.Logger
}

// maxSecretFileBytes bounds a secret file: a few rotated secrets.
const maxSecretFileBytes = 64 << 10

// Resolve returns the secrets of ref, newest first: "" (unsigned, none),
// "env:NAME" (the variable holds one secret, or several separated by
// commas) or "file:/path" (one secret per line) under one of Dirs. Each
// must be a Standard Webhooks secret ("whsec_" + base64). Every failure
// gets the same message, whatever the reason.
func (src SecretSource) Resolve(ref string) ([]string, error) {
	out, reason := src.resolve(ref)
	if reason == nil {
		return out, nil
	}
	log := src.Logger
	if log == nil {
		log = slog.Default()
	}
	log.Warn("secret_ref cannot be resolved", "secret_ref", ref, "reason", reason)
	return nil, src.failure(ref)
}

// failure is the one error every unresolvable reference gets.
func (src SecretSource) failure(ref string) error {
	return fmt.Errorf("secret_ref %q: cannot be resolved (refs must be env:NAME of a set variable or file:PATH of a readable file under %s, holding Standard Webhooks secrets \"whsec_...\", comma- or line-separated)",
		ref, strings.Join(src.dirs(), ", "))
}

func (src SecretSource) dirs() []string {
	if src.Dirs == nil {
		return DefaultSecretDirs
	}
	return src.Dirs
}

// resolve does the work of Resolve; reason says why it failed, for the log.
func (src SecretSource) resolve(ref string) ([]string, error) {
	if ref == "" {
		return nil, nil
	}
	var raw string
	switch {
	case strings.HasPrefix(ref, "env:"):
		lookup := src.LookupEnv
		if lookup == nil {
			lookup = os.LookupEnv
		}
		v, ok := lookup(strings.TrimPrefix(ref, "env:"))
		if !ok {
			return nil, errors.New("the variable is not set")
		}
		raw = strings.ReplaceAll(v, ",", "\n")
	case strings.HasPrefix(ref, "file:"):
		b, err := src.readFile(strings.TrimPrefix(ref, "file:"))
		if err != nil {
			return nil, err
		}
		raw = string(b)
	default:
		return nil, errors.New("not env:NAME or file:/path")
	}
	var out []string
	for _, s := range strings.Split(raw, "\n") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no secret in it")
	}
	if _, err := callout.NewRequestSigner(out); err != nil {
		return nil, err // wraps webhook.ErrInvalidSecret; never quotes the value
	}
	return out, nil
}

// readFile reads p if, once symbolic links and ".." are resolved, it is a
// regular file inside one of the secret directories.
func (src SecretSource) readFile(p string) ([]byte, error) {
	if !filepath.IsAbs(p) {
		return nil, errors.New("not an absolute path")
	}
	real, err := filepath.EvalSymlinks(filepath.Clean(p))
	if err != nil {
		return nil, err
	}
	inside := false
	for _, d := range src.dirs() {
		rd, err := filepath.EvalSymlinks(filepath.Clean(d))
		if err != nil {
			continue
		}
		if rel, err := filepath.Rel(rd, real); err == nil && rel != "." && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel) {
			inside = true
			break
		}
	}
	if !inside {
		return nil, fmt.Errorf("%s is outside the secret directories", real)
	}
	f, err := os.Open(real)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, errors.New("not a regular file")
	}
	b, err := io.ReadAll(io.LimitReader(f, maxSecretFileBytes+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxSecretFileBytes {
		return nil, errors.New("larger than 64 KiB")
	}
	return b, nil
}
