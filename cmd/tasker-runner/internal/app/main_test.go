package app

import (
	"os"
	"testing"

	"github.com/tasker-runner/tasker-runner/cmd/tasker-runner/internal/apiclient"
	"github.com/tasker-runner/tasker-runner/cmd/tasker-runner/internal/cli"
	"github.com/tasker-runner/tasker-runner/cmd/tasker-runner/internal/clitest"
)

// TestMain runs the commands these tests call: serve and migrate, and the
// handlers and status commands some of them call.
func TestMain(m *testing.M) {
	table := cli.Table{Commands: []cli.Command{ServeCommand, MigrateCommand, OpenAPICommand, apiclient.HandlersCommand, apiclient.StatusCommand}}
	clitest.Main(m, table, func() { ApplyGCDefault(os.LookupEnv) })
}
