package config_test

import (
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/sethvargo/go-envconfig"

	"github.com/tasker-runner/tasker-runner/config"
)

// writeExample writes a configuration file for an example and returns its
// path and a function removing it.
func writeExample(content string) (string, func()) {
	dir, err := os.MkdirTemp("", "tasker-config-example")
	if err != nil {
		log.Fatal(err)
	}
	path := filepath.Join(dir, "worker.toml")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		log.Fatal(err)
	}
	return path, func() { os.RemoveAll(dir) }
}

func ExampleLoad() {
	path, cleanup := writeExample(`
[worker.web]
port = 8081

[worker.event_systems.worker.metadata.fallback_poller]
poll_interval_seconds = 1
`)
	defer cleanup()

	// Production passes envconfig.OsLookuper(); a map keeps the example
	// independent of the machine's environment.
	env := envconfig.MapLookuper(map[string]string{
		"DATABASE_URL":           "postgres://tasker@localhost:5432/tasker",
		"TASKER_WORKER_WEB_PORT": "9000", // the environment wins over the file
	})
	cfg, err := config.Load(config.ResolvePath(path, env), env)
	if err != nil {
		log.Fatal(err)
	}
	if err := cfg.RequireDatabase(); err != nil {
		log.Fatal(err)
	}
	fmt.Println("web:", cfg.Worker.Web.Addr())
	fmt.Println("mode:", cfg.Worker.EventSystems.Worker.DeploymentMode)
	fmt.Println("poll every:", cfg.Worker.EventSystems.Worker.Metadata.FallbackPoller.Interval())
	fmt.Println("database:", cfg.Database.URL)
	// Output:
	// web: 127.0.0.1:9000
	// mode: hybrid
	// poll every: 1s
	// database: postgres://tasker@localhost:5432/tasker
}

func ExampleError() {
	path, cleanup := writeExample(`
[worker.web]
prot = 9000

[worker.event_systems.worker]
deployment_mode = "fast"
`)
	defer cleanup()

	_, err := config.Load(path, envconfig.MapLookuper(map[string]string{
		"TASKER_WORKER_GRPC_PORT": "grpc",
	}))
	var cfgErr *config.Error
	if errors.As(err, &cfgErr) {
		for _, p := range cfgErr.Problems {
			fmt.Println(p)
		}
	}
	// Output:
	// worker.web.prot: unknown key (did you mean "port"?)
	// worker.grpc.port: env TASKER_WORKER_GRPC_PORT: expected integer, got "grpc"
	// worker.event_systems.worker.deployment_mode: "fast" is not one of polling_only, event_driven_only, hybrid
}
