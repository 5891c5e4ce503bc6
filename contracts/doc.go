// Package contracts holds tasker-runner's wire contracts, with the JSON
// field names of Tasker's handler contract (contracts/README.md), so a
// handler written for Tasker reads the same fields here: the step envelope
// sent to a handler ([StepEnvelope]) and the result it answers with
// ([StepResult]), a step's checkpoint ([Checkpoint]), the decision and batch
// outcomes that grow a task ([Outcomes], [ParseOutcomes], [CursorConfig],
// [BatchWorkerInputs]), the error types the runner records, and the limits
// shared by validation, the API and the database (such as
// [MaxNamespaceLen]).
//
// The same contract is described for other languages by the JSON Schemas in
// contracts/schema and by handler.proto (contracts/proto, generated Go and
// Connect code in contracts/gen); package webhook signs and verifies
// requests the Standard Webhooks way.
package contracts
