package dev

import (
	"os"
	"testing"

	"github.com/tasker-runner/tasker-runner/cmd/tasker-runner/internal/apiclient"
	"github.com/tasker-runner/tasker-runner/cmd/tasker-runner/internal/app"
	"github.com/tasker-runner/tasker-runner/cmd/tasker-runner/internal/cli"
	"github.com/tasker-runner/tasker-runner/cmd/tasker-runner/internal/clitest"
)

// TestMain runs dev, migrate to check the schema it left, and the client
// commands it prints to try.
func TestMain(m *testing.M) {
	table := cli.Table{Commands: []cli.Command{Command, app.MigrateCommand, apiclient.SubmitCommand,
		apiclient.StatusCommand, apiclient.TasksCommand, apiclient.HandlersCommand, apiclient.TemplatesCommand, apiclient.DLQCommand}}
	clitest.Main(m, table, func() { app.ApplyGCDefault(os.LookupEnv) })
}
