package store

import (
	"context"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// DB is what the store's functions run on: a pool, a connection or a
// transaction. Functions that need a transaction begin one (a nested
// savepoint when db already is one).
type DB interface {
	Begin(ctx context.Context) (pgx.Tx, error)
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	// SendBatch pipelines statements in one round trip; outside a
	// transaction they run in one implicit transaction.
	SendBatch(ctx context.Context, b *pgx.Batch) pgx.BatchResults
}
