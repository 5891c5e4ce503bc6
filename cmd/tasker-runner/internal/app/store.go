package app

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tasker-runner/tasker-runner/runner/store"
)

// This file, with the pool and migrations of serve.go and migrate.go, is
// where the commands reach runner/store; dev and the bench come through
// here.
// TODO(#15): front door: replace with runner.Server and runner.Client's
// admin methods (PutEndpoint, DeleteEndpoint, pool and migrate helpers),
// then take runner/store out of cmd's allowed imports.

// Endpoint is a handler endpoint row, as `handlers put` registers it.
type Endpoint = store.HandlerEndpoint

// PutEndpoint registers (or replaces) an endpoint row.
func PutEndpoint(ctx context.Context, pool *pgxpool.Pool, e Endpoint) error {
	_, err := store.PutEndpoint(ctx, pool, e, time.Now())
	return err
}

// DeleteEndpoint removes the endpoint row of namespace and pattern.
func DeleteEndpoint(ctx context.Context, pool *pgxpool.Pool, namespace, pattern string) error {
	_, err := store.DeleteEndpoint(ctx, pool, namespace, pattern)
	return err
}

// Migrate applies the schema migrations.
func Migrate(ctx context.Context, pool *pgxpool.Pool) error { return store.Migrate(ctx, pool) }

// RedactURL is a database URL without its password, for messages.
func RedactURL(url string) string { return store.RedactURL(url) }

// The step states of [runner.Event.State] the commands look at.
const (
	StateComplete        = store.StateComplete
	StateEnqueued        = store.StateEnqueued
	StateError           = store.StateError
	StateWaitingForRetry = store.StateWaitingForRetry
)
