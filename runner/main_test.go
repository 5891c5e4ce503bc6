package runner_test

import (
	"testing"

	"github.com/tasker-runner/tasker-runner/runner/store/pgtest"
)

func TestMain(m *testing.M) { pgtest.Main(m) }
