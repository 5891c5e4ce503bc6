// Package runner is tasker-runner's engine. A [Runner] wakes on
// LISTEN/NOTIFY and a fallback poller, claims ready steps under a lease in
// one statement, runs them through their handlers with bounded concurrency,
// and writes results back in batches that also advance each task's DAG.
// A [Client] registers templates and submits tasks, and carries the admin
// operations (as River's client carries JobCancel and JobList): read tasks,
// steps, dead letters, templates, handler endpoints, workers and queues
// ([Client.GetTask], [Client.ListTasks], ...), and change them by hand
// ([Client.CancelTask], [Client.RetryStep], [Client.RedriveSteps],
// [Client.ResolveStep], [Client.PutEndpoint]). Its types ([Task], [Step],
// [HandlerEndpoint], ...) are the runner's own, with states typed as
// [StepState] and [TaskState]; it needs no running [Runner].
//
// Every state change goes through the database's transition functions
// (migration 0002), which reject illegal moves and write the audit rows.
package runner
