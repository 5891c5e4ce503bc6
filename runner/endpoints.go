package runner

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/tasker-runner/tasker-runner/callout"
	"github.com/tasker-runner/tasker-runner/runner/store"
)

// Endpoints keeps a [callout.Registry] in step with the endpoints from the
// configuration (Static) and those registered in the database, which win
// for the same namespace and pattern. A [Runner] whose Config names an
// Endpoints reloads it whenever the database announces a change.
type Endpoints struct {
	Registry *callout.Registry
	Static   []callout.Endpoint
	DB       store.DB
	// LookupEnv resolves "env:" secret references. Default os.LookupEnv.
	LookupEnv func(string) (string, bool)
}

// Reload reads the database's endpoints and applies the merged set. On
// error the registry keeps its previous endpoints.
func (e *Endpoints) Reload(ctx context.Context) error {
	rows, err := store.ListEndpoints(ctx, e.DB)
	if err != nil {
		return err
	}
	merged := make([]callout.Endpoint, 0, len(e.Static)+len(rows))
	fromDB := map[[2]string]bool{}
	var errs []error
	for _, row := range rows {
		ep, err := e.fromRow(row)
		if err != nil {
			errs = append(errs, fmt.Errorf("endpoint %q (namespace %q): %w", row.Pattern, row.Namespace, err))
			continue
		}
		fromDB[[2]string{ep.Namespace, ep.Pattern}] = true
		merged = append(merged, ep)
	}
	for _, ep := range e.Static {
		if !fromDB[[2]string{ep.Namespace, ep.Pattern}] {
			merged = append(merged, ep)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("runner: loading endpoints: %w", err)
	}
	return e.Registry.Set(merged)
}

func (e *Endpoints) fromRow(r store.HandlerEndpoint) (callout.Endpoint, error) {
	secrets, err := e.secrets(r.SecretRef)
	if err != nil {
		return callout.Endpoint{}, err
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
	}, nil
}

// secrets resolves a secret reference: "" (unsigned), "env:NAME" (the
// variable holds one secret, or several separated by commas, newest first)
// or "file:/path" (one secret per line, newest first).
func (e *Endpoints) secrets(ref string) ([]string, error) {
	var raw string
	switch {
	case ref == "":
		return nil, nil
	case strings.HasPrefix(ref, "env:"):
		lookup := e.LookupEnv
		if lookup == nil {
			lookup = os.LookupEnv
		}
		v, ok := lookup(strings.TrimPrefix(ref, "env:"))
		if !ok {
			return nil, fmt.Errorf("secret_ref %q: the variable is not set", ref)
		}
		raw = strings.ReplaceAll(v, ",", "\n")
	case strings.HasPrefix(ref, "file:"):
		b, err := os.ReadFile(strings.TrimPrefix(ref, "file:"))
		if err != nil {
			return nil, fmt.Errorf("secret_ref %q: %w", ref, err)
		}
		raw = string(b)
	default:
		return nil, fmt.Errorf("secret_ref %q: want env:NAME or file:/path", ref)
	}
	var out []string
	for _, s := range strings.Split(raw, "\n") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out, nil
}
