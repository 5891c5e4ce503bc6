package openapi_test

import (
	"testing"

	"github.com/tasker-runner/tasker-runner/runner/store/pgtest"
)

// TestMain runs the tests with the throwaway PostgreSQL of pgtest (started
// only if a test asks for a database) and fails on leaked goroutines.
func TestMain(m *testing.M) { pgtest.Main(m) }
