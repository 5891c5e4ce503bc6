// Package bench is `tasker-runner bench` ([Command]): one file per
// scenario (backlog.go, latency.go, http.go, batch.go, soak.go, river.go,
// history.go, scale.go, dag.go), each split into setup, drive and measure;
// the shared report, table and JSON code in report.go; the flags in
// flags.go. Its runners use serve's wiring (app.RunnerConfig).
package bench
