package dev

import (
	"os"
	"testing"

	"github.com/tasker-runner/tasker-runner/cmd/tasker-runner/internal/app"
	"github.com/tasker-runner/tasker-runner/cmd/tasker-runner/internal/cli"
	"github.com/tasker-runner/tasker-runner/cmd/tasker-runner/internal/clitest"
)

// TestMain runs dev, and migrate to check the schema it left.
func TestMain(m *testing.M) {
	table := cli.Table{Commands: []cli.Command{Command, app.MigrateCommand}}
	clitest.Main(m, table, func() { app.ApplyGCDefault(os.LookupEnv) })
}
