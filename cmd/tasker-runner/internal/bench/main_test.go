package bench

import (
	"os"
	"testing"

	"github.com/tasker-runner/tasker-runner/cmd/tasker-runner/internal/app"
	"github.com/tasker-runner/tasker-runner/cmd/tasker-runner/internal/cli"
	"github.com/tasker-runner/tasker-runner/cmd/tasker-runner/internal/clitest"
)

// TestMain runs the bench and its runner processes (bench-worker), which
// are this test binary too.
func TestMain(m *testing.M) {
	benchWorkerEnv = clitest.ChildEnv()
	table := cli.Table{Commands: []cli.Command{Command}, Hidden: []cli.Command{WorkerCommand}}
	clitest.Main(m, table, func() { app.ApplyGCDefault(os.LookupEnv) })
}
