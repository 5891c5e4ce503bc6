// Package runner is tasker-runner's engine. A [Runner] wakes on
// LISTEN/NOTIFY and a fallback poller, claims ready steps under a lease in
// one statement, runs them through their handlers with bounded concurrency,
// and writes results back in batches that also advance each task's DAG.
// A [Client] registers templates and submits tasks; it needs no running
// [Runner].
//
// Inside, a Runner is a set of services, each a type with its own config,
// narrow dependencies and start/stop: the claimer (the claim loop), the
// listener and poller (which wake it), the dispatcher (the permits and the
// worker goroutines), the completer (batched writes that claim the next
// steps), the maintainer (lease extension, heartbeat, rescue sweeps), the
// retainer and the endpoint watcher. Runner.services declares the order
// they stop in.
//
// Every state change goes through the database's transition functions
// (migration 0002), which reject illegal moves and write the audit rows.
package runner
