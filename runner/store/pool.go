package store

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// PoolConfig configures [NewPool].
type PoolConfig struct {
	// URL is a PostgreSQL connection URL or keyword/value string.
	URL string
	// MaxConns bounds the pool; 0 keeps pgx's default.
	MaxConns int32
	// MinConns is kept open even when idle.
	MinConns int32
	// ConnectTimeout bounds each new connection; 0 keeps pgx's default.
	ConnectTimeout time.Duration
	// ApplicationName is reported in pg_stat_activity. Default "tasker-runner".
	ApplicationName string
}

// NewPool opens a pool and checks that the server answers, so a bad URL or an
// unreachable server fails at start with an error naming where it tried.
func NewPool(ctx context.Context, cfg PoolConfig) (*pgxpool.Pool, error) {
	if cfg.URL == "" {
		return nil, errors.New("store: no database URL (set database.url, DATABASE_URL or TASKER_DATABASE_URL)")
	}
	pc, err := pgxpool.ParseConfig(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("store: parsing database URL %s: %w", RedactURL(cfg.URL), err)
	}
	if cfg.MaxConns > 0 {
		pc.MaxConns = cfg.MaxConns
	}
	if cfg.MinConns > 0 {
		pc.MinConns = min(cfg.MinConns, pc.MaxConns)
	}
	if cfg.ConnectTimeout > 0 {
		pc.ConnConfig.ConnectTimeout = cfg.ConnectTimeout
	}
	if pc.ConnConfig.RuntimeParams == nil {
		pc.ConnConfig.RuntimeParams = map[string]string{}
	}
	if _, ok := pc.ConnConfig.RuntimeParams["application_name"]; !ok {
		name := cfg.ApplicationName
		if name == "" {
			name = "tasker-runner"
		}
		pc.ConnConfig.RuntimeParams["application_name"] = name
	}
	if _, ok := pc.ConnConfig.RuntimeParams["jit"]; !ok {
		// The engine's statements are short and run thousands of times a
		// second; JIT compiling one takes longer than running it, and an
		// estimate above jit_above_cost (a claim of a few hundred steps on a
		// big table) made claims 100x slower. A URL may turn it back on.
		pc.ConnConfig.RuntimeParams["jit"] = "off"
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("store: opening pool for %s: %w", RedactURL(cfg.URL), err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("store: connecting to %s: %w", RedactURL(cfg.URL), err)
	}
	return pool, nil
}

// RedactURL hides the password of a connection URL so it can be logged.
// Strings that are not URLs (keyword/value form) are returned as
// "(connection string)" since they may hold a password anywhere.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" {
		return "(connection string)"
	}
	return u.Redacted()
}
