package conformance

import (
	"testing"

	"github.com/tasker-runner/tasker-runner/cmd/tasker-runner/internal/cli"
	"github.com/tasker-runner/tasker-runner/cmd/tasker-runner/internal/clitest"
)

func TestMain(m *testing.M) {
	clitest.Main(m, cli.Table{Commands: []cli.Command{Command}})
}
