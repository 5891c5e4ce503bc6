package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// EndpointsChannel announces changes to handler_endpoints so every runner
// reloads its registry without a restart.
const EndpointsChannel = "tasker:endpoints"

// HandlerEndpoint is a row of tasker.handler_endpoints.
type HandlerEndpoint struct {
	ID                         int64
	Namespace                  string
	Pattern                    string
	URL                        string
	Protocol                   string
	TimeoutMs                  int
	MaxConcurrency             int
	BatchMax                   int
	BatchWindowMs              int
	BreakerMaxRequests         int
	BreakerIntervalMs          int
	BreakerOpenTimeoutMs       int
	BreakerConsecutiveFailures int
	Headers                    map[string]string
	// SecretRef names where the signing secrets are ("env:NAME" or
	// "file:/path"), never the secrets themselves.
	SecretRef string
	CreatedAt time.Time
	UpdatedAt time.Time
}

const endpointColumns = `endpoint_id, namespace, pattern, url, protocol, timeout_ms, max_concurrency, batch_max,
	batch_window_ms, breaker_max_requests, breaker_interval_ms, breaker_open_timeout_ms,
	breaker_consecutive_failures, headers, secret_ref, created_at, updated_at`

func scanEndpoint(row pgx.Row) (HandlerEndpoint, error) {
	var e HandlerEndpoint
	var headers []byte
	err := row.Scan(&e.ID, &e.Namespace, &e.Pattern, &e.URL, &e.Protocol, &e.TimeoutMs, &e.MaxConcurrency, &e.BatchMax,
		&e.BatchWindowMs, &e.BreakerMaxRequests, &e.BreakerIntervalMs, &e.BreakerOpenTimeoutMs,
		&e.BreakerConsecutiveFailures, &headers, &e.SecretRef, &e.CreatedAt, &e.UpdatedAt)
	if err != nil {
		return e, err
	}
	if err := json.Unmarshal(headers, &e.Headers); err != nil {
		return e, fmt.Errorf("endpoint %d headers: %w", e.ID, err)
	}
	return e, nil
}

// ListEndpoints returns every registered handler endpoint.
func ListEndpoints(ctx context.Context, db DB) ([]HandlerEndpoint, error) {
	rows, err := db.Query(ctx, `SELECT `+endpointColumns+` FROM tasker.handler_endpoints ORDER BY namespace, pattern`)
	if err != nil {
		return nil, fmt.Errorf("store: listing endpoints: %w", err)
	}
	eps, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (HandlerEndpoint, error) { return scanEndpoint(r) })
	if err != nil {
		return nil, fmt.Errorf("store: listing endpoints: %w", err)
	}
	return eps, nil
}

// GetEndpoint returns the handler endpoint for (namespace, pattern), or an
// error wrapping [ErrNotFound].
func GetEndpoint(ctx context.Context, db DB, namespace, pattern string) (HandlerEndpoint, error) {
	e, err := scanEndpoint(db.QueryRow(ctx, `SELECT `+endpointColumns+` FROM tasker.handler_endpoints
		WHERE namespace = $1 AND pattern = $2`, namespace, pattern))
	if errors.Is(err, pgx.ErrNoRows) {
		return e, fmt.Errorf("store: handler endpoint %q (namespace %q): %w", pattern, namespace, ErrNotFound)
	}
	if err != nil {
		return e, fmt.Errorf("store: reading handler endpoint %q: %w", pattern, err)
	}
	return e, nil
}

// PutEndpoint creates or replaces the endpoint for (namespace, pattern) and
// notifies every runner.
func PutEndpoint(ctx context.Context, db DB, e HandlerEndpoint, now time.Time) (HandlerEndpoint, error) {
	if e.Headers == nil {
		e.Headers = map[string]string{}
	}
	headers, err := json.Marshal(e.Headers)
	if err != nil {
		return e, err
	}
	var out HandlerEndpoint
	err = pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		out, err = scanEndpoint(tx.QueryRow(ctx, `
			INSERT INTO tasker.handler_endpoints (namespace, pattern, url, protocol, timeout_ms, max_concurrency, batch_max,
				batch_window_ms, breaker_max_requests, breaker_interval_ms, breaker_open_timeout_ms,
				breaker_consecutive_failures, headers, secret_ref, created_at, updated_at)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $15)
			ON CONFLICT (namespace, pattern) DO UPDATE SET url = EXCLUDED.url, protocol = EXCLUDED.protocol,
				timeout_ms = EXCLUDED.timeout_ms, max_concurrency = EXCLUDED.max_concurrency, batch_max = EXCLUDED.batch_max,
				batch_window_ms = EXCLUDED.batch_window_ms, breaker_max_requests = EXCLUDED.breaker_max_requests,
				breaker_interval_ms = EXCLUDED.breaker_interval_ms, breaker_open_timeout_ms = EXCLUDED.breaker_open_timeout_ms,
				breaker_consecutive_failures = EXCLUDED.breaker_consecutive_failures, headers = EXCLUDED.headers,
				secret_ref = EXCLUDED.secret_ref, updated_at = EXCLUDED.updated_at
			RETURNING `+endpointColumns,
			e.Namespace, e.Pattern, e.URL, e.Protocol, e.TimeoutMs, e.MaxConcurrency, max(e.BatchMax, 1), e.BatchWindowMs,
			e.BreakerMaxRequests, e.BreakerIntervalMs, e.BreakerOpenTimeoutMs, e.BreakerConsecutiveFailures, headers, e.SecretRef, now))
		if err != nil {
			return fmt.Errorf("store: saving endpoint %q: %w", e.Pattern, err)
		}
		_, err = tx.Exec(ctx, `SELECT pg_notify($1, '')`, EndpointsChannel)
		return err
	})
	return out, err
}

// DeleteEndpoint removes the endpoint for (namespace, pattern); it reports
// false when there was none.
func DeleteEndpoint(ctx context.Context, db DB, namespace, pattern string) (bool, error) {
	var deleted bool
	err := pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `DELETE FROM tasker.handler_endpoints WHERE namespace = $1 AND pattern = $2`, namespace, pattern)
		if err != nil {
			return fmt.Errorf("store: deleting endpoint %q: %w", pattern, err)
		}
		deleted = tag.RowsAffected() > 0
		if deleted {
			_, err = tx.Exec(ctx, `SELECT pg_notify($1, '')`, EndpointsChannel)
		}
		return err
	})
	return deleted, err
}
