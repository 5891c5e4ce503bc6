package config_test

import (
	"slices"
	"testing"

	"github.com/tasker-runner/tasker-runner/config"
)

// A misspelt override is reported with the variable meant; real overrides,
// other programs' TASKER_ variables and unrelated variables are not.
func TestEnvTypos(t *testing.T) {
	got := config.EnvTypos([]string{
		"TASKER_WORKER_WEB_PROT=9000",                              // transposed letters
		"TASKER_WORKER_WEB_PORT=9000",                              // a real override
		"TASKER_DATABASE_MAX_CON=4",                                // a letter short
		"TASKER_CONFIG_PATH=/etc/tasker.toml",                      // not a key, but ours
		"TASKER_SHIPPING_SECRET=s3cret",                            // someone else's
		"TASKER_WORKER_EVENT_SYSTEMS_WORKER_DEPLOYMENT_MOD=hybrid", // truncated
		"PATH=/usr/bin",
		"TASKER_WORKER_WEB_PROT", // no value still counts
	})
	want := []config.EnvTypo{
		{Name: "TASKER_DATABASE_MAX_CON", Suggest: "TASKER_DATABASE_MAX_CONNS"},
		{Name: "TASKER_WORKER_EVENT_SYSTEMS_WORKER_DEPLOYMENT_MOD", Suggest: "TASKER_WORKER_EVENT_SYSTEMS_WORKER_DEPLOYMENT_MODE"},
		{Name: "TASKER_WORKER_WEB_PROT", Suggest: "TASKER_WORKER_WEB_PORT"},
		{Name: "TASKER_WORKER_WEB_PROT", Suggest: "TASKER_WORKER_WEB_PORT"},
	}
	if !slices.Equal(got, want) {
		t.Fatalf("EnvTypos = %+v,\nwant %+v", got, want)
	}
}
