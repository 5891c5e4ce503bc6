package store_test

import (
	"context"
	"fmt"
	"os"
	"testing"

	"github.com/tasker-runner/tasker-runner/runner/store"
	"github.com/tasker-runner/tasker-runner/runner/store/pgtest"
)

// envMigrateURL makes the test binary act as a separate migrating process
// (see TestMigrateConcurrentProcesses).
const envMigrateURL = "TASKER_TEST_MIGRATE_URL"

func TestMain(m *testing.M) {
	if url := os.Getenv(envMigrateURL); url != "" {
		os.Exit(migrateProcess(url))
	}
	pgtest.Main(m)
}

func migrateProcess(url string) int {
	ctx := context.Background()
	pool, err := store.NewPool(ctx, store.PoolConfig{URL: url, MaxConns: 2})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer pool.Close()
	applied, err := store.NewMigrator(pool).Up(ctx)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	fmt.Printf("applied=%d\n", len(applied))
	return 0
}
