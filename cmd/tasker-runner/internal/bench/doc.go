// Package bench is `tasker-runner bench` ([Command]): one file per
// scenario (backlog.go, latency.go, http.go, batch.go, soak.go and
// soak_run.go, river.go, history.go, scale.go, dag.go), the runs in named
// steps (setup, drive, measure); what they share in runner.go (templates, the
// runner's configuration: serve's wiring, app.ServerConfig) and db.go (a
// fresh database per scenario); the report, table and JSON in report.go;
// the flags in flags.go.
package bench
