package runner

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/tasker-runner/tasker-runner/runner/store"
)

// PoolConfig configures [OpenPool].
type PoolConfig struct {
	// URL is a PostgreSQL connection URL or keyword/value string. Required.
	URL string
	// MaxConns bounds the pool; 0 keeps pgx's default (the larger of 4 and
	// the number of CPUs). Give a runner at least a few: claims, completion
	// writes and lease extensions run at once.
	MaxConns int32
	// MinConns are kept open even when idle.
	MinConns int32
	// ConnectTimeout bounds each new connection; 0 keeps pgx's default.
	ConnectTimeout time.Duration
	// ApplicationName is reported in pg_stat_activity. Default
	// "tasker-runner".
	ApplicationName string
}

// OpenPool opens a connection pool for a [Server] or a [Client] and checks
// that the server answers, so that a bad URL or an unreachable server fails
// at once with an error naming where it tried (password hidden). The pool
// turns PostgreSQL's JIT off unless the URL sets it: the engine's short,
// frequent statements only lose by it. The caller closes the pool.
func OpenPool(ctx context.Context, cfg PoolConfig) (*pgxpool.Pool, error) {
	return store.NewPool(ctx, store.PoolConfig{
		URL:             cfg.URL,
		MaxConns:        cfg.MaxConns,
		MinConns:        cfg.MinConns,
		ConnectTimeout:  cfg.ConnectTimeout,
		ApplicationName: cfg.ApplicationName,
	})
}

// PoolStats describes a database pool, for health reports
// ([Server.PoolStats]).
type PoolStats struct {
	MaxConns      int32 // the pool's size
	TotalConns    int32 // connections open now
	AcquiredConns int32 // connections in use
	IdleConns     int32 // connections open and idle
}

// RedactURL hides the password of a connection URL so that it can be
// logged. A string that is not a URL (keyword/value form) is returned as
// "(connection string)": it may hold a password anywhere.
func RedactURL(raw string) string { return store.RedactURL(raw) }
