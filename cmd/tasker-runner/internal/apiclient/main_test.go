package apiclient

import (
	"os"
	"testing"

	"github.com/tasker-runner/tasker-runner/cmd/tasker-runner/internal/app"
	"github.com/tasker-runner/tasker-runner/cmd/tasker-runner/internal/cli"
	"github.com/tasker-runner/tasker-runner/cmd/tasker-runner/internal/clitest"
)

// TestMain runs the API-client commands and serve, the server they call.
func TestMain(m *testing.M) {
	table := cli.Table{Commands: []cli.Command{app.ServeCommand, SubmitCommand, StatusCommand, TasksCommand, HandlersCommand, TemplatesCommand, DLQCommand}}
	clitest.Main(m, table, func() { app.ApplyGCDefault(os.LookupEnv) })
}
