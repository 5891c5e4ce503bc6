package main

import (
	"os"
	"testing"

	"github.com/tasker-runner/tasker-runner/cmd/tasker-runner/internal/app"
	"github.com/tasker-runner/tasker-runner/cmd/tasker-runner/internal/clitest"
)

func TestMain(m *testing.M) {
	clitest.Main(m, commands(), func() { app.ApplyGCDefault(os.LookupEnv) })
}
