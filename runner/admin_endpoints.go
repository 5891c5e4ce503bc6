package runner

import (
	"context"
	"time"

	"github.com/tasker-runner/tasker-runner/runner/store"
)

// The handler endpoints registered in the database. Every runner reloads
// them on a change ([Endpoints.Reload]); check one with [ValidateEndpoint]
// before putting it.

// ListEndpoints returns every registered handler endpoint, by namespace
// and pattern.
func (c *Client) ListEndpoints(ctx context.Context) ([]HandlerEndpoint, error) {
	rows, err := store.ListEndpoints(ctx, c.db)
	return convertAll(rows, endpointFromRow), adminError(err)
}

// GetEndpoint returns the endpoint of (namespace, pattern); namespace ""
// is the one serving every namespace.
func (c *Client) GetEndpoint(ctx context.Context, namespace, pattern string) (HandlerEndpoint, error) {
	row, err := store.GetEndpoint(ctx, c.db, namespace, pattern)
	return endpointFromRow(row), adminError(err)
}

// PutEndpoint creates or replaces the endpoint of (e.Namespace, e.Pattern)
// at now and returns it as stored (CreatedAt equals UpdatedAt when it was
// created).
func (c *Client) PutEndpoint(ctx context.Context, e HandlerEndpoint, now time.Time) (HandlerEndpoint, error) {
	row, err := store.PutEndpoint(ctx, c.db, store.HandlerEndpoint(e), now)
	return endpointFromRow(row), adminError(err)
}

// DeleteEndpoint removes the endpoint of (namespace, pattern) and reports
// whether there was one.
func (c *Client) DeleteEndpoint(ctx context.Context, namespace, pattern string) (bool, error) {
	ok, err := store.DeleteEndpoint(ctx, c.db, namespace, pattern)
	return ok, adminError(err)
}
