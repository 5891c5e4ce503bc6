package app

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tasker-runner/tasker-runner/runner"
)

// PutEndpoint registers (or replaces) a handler endpoint, as `handlers put`
// does through the API.
func PutEndpoint(ctx context.Context, pool *pgxpool.Pool, e runner.HandlerEndpoint) error {
	_, err := runner.NewClient(pool, runner.ClientConfig{}).PutEndpoint(ctx, e, time.Now())
	return err
}

// DeleteEndpoint removes the endpoint of namespace and pattern.
func DeleteEndpoint(ctx context.Context, pool *pgxpool.Pool, namespace, pattern string) error {
	_, err := runner.NewClient(pool, runner.ClientConfig{}).DeleteEndpoint(ctx, namespace, pattern)
	return err
}
