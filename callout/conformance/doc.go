// Package conformance checks a handler service against the handler contract
// (contracts/README.md): the suite that `tasker-runner conformance` runs, and
// that any handler, in any language, can be run against before the runner
// sends it real steps.
//
// [Run] drives the handler with the runner's own invokers
// (callout.HTTPInvoker over HTTP+JSON, callout.ConnectInvoker over Connect or
// gRPC), so it sends exactly the runner's requests: the same envelope JSON or
// protobuf, the same headers (Idempotency-Key, Tasker-Attempt,
// Tasker-Deadline, traceparent) and the same Standard Webhooks signature. It
// judges each answer twice: as the runner would record it, and on the wire
// against the contract's JSON Schemas (copies of contracts/schema). The
// envelopes name one callable ([Config.Callable], default conformance.echo,
// which the example handlers serve): pick one your service serves. The
// ordinary cases check contract properties that any correct handler has,
// not business behaviour, so a callable that answers the synthetic
// envelopes with a business failure ({"success": false, ...}) passes. The
// dynamic cases (decision-outcome, batch-outcome, yields) run when you name
// a decision step, a batchable step and a step that yields that your
// service serves ([Config.Decision], [Config.Batchable], [Config.Yielding]),
// with a task context ([Config.Context]) they act on.
//
// # What passes
//
// An ordinary case passes when, within the deadline ([Config.Timeout],
// default 10s, sent as Tasker-Deadline), the handler answers:
//
//   - 200 (any 2xx) with a StepExecutionResult valid against
//     step-result.schema.json, success true or false, whose step_uuid, if
//     set, is the envelope's; or a 2xx with an empty body (success with a
//     null result);
//   - or a failure the contract classifies: an error status (other than
//     401, 403, 404 and 3xx) whose body is a failed StepExecutionResult, or
//     429/503 with Retry-After; over Connect/gRPC the codes UNAVAILABLE,
//     RESOURCE_EXHAUSTED and ABORTED.
//
// It fails on: no answer (connection refused or reset, TLS or DNS failure)
// or no answer before the deadline; a 2xx body that is not a
// StepExecutionResult (`{"ok": true}`, HTML, a result that breaks the
// schema); an error status without a result body (a crash's 500, a 404 for
// a callable the service does not serve, a framework's 400 or 422); a
// redirect (the runner does not follow them); 401/403 (pass the secret);
// any other Connect/gRPC error (UNIMPLEMENTED, NOT_FOUND, INVALID_ARGUMENT,
// INTERNAL...). Every failure says what was sent, what came back (status and
// the start of the body) and what the contract wants instead.
//
// # The cases, in the order they run
//
// minimal-envelope: one envelope with every required field and no optional
// one (a root step, attempt 1 of 3, the configured task context, empty
// inputs, no dependency results). Passes as above.
//
// full-envelope: every optional field set: parent_correlation_id,
// priority, tags, batch cursor inputs, a checkpoint to resume from, the
// handler's method and initialization, timeout_seconds. Passes as above.
//
// dependency-results: a step with two direct dependencies and a transitive
// ancestor in dependency_results (an object result, an absent result, a
// string result with metadata). Passes as above.
//
// retry-attempt: the minimal-envelope step again as its second attempt:
// the same step_uuid (and Idempotency-Key), a new event_id, step.attempts 2
// and Tasker-Attempt: 2. Passes as above; a handler that deduplicates on
// step_uuid may answer with the first attempt's result.
//
// idempotent-redelivery: the minimal-envelope step delivered again exactly
// as the first time (same step_uuid, Idempotency-Key and attempt, a new
// event_id), as when an answer was lost. Passes as above with the same
// answer as the first delivery: the same success and status, a JSON-equal
// result and checkpoint, the same error_type and retryable (metadata may
// differ). A handler that charges again, or mints a new id, on a repeat
// fails: make side effects idempotent on step_uuid.
//
// unknown-fields: fields the contract does not define added at every level
// of the envelope (the envelope, task, step, step_definition, handler, a
// dependency result; re-signed when signing), or unknown protobuf fields in
// every message over Connect/gRPC. Handlers must ignore unknown fields: the
// contract grows by adding optional ones. Passes as above, and if
// minimal-envelope got a result this case must get one too (a strict
// decoder's 400 fails even with a result body).
//
// large-context: a task context of about 256 KiB (the configured context
// plus a conformance_padding array). Passes as above, or when the handler
// rejects it cleanly within the deadline with 400, 413 or 422
// (INVALID_ARGUMENT, FAILED_PRECONDITION or OUT_OF_RANGE over Connect/gRPC).
// A 5xx, a reset connection or a timeout fails.
//
// concurrent-calls: 8 envelopes of different steps at once, as a runner
// dispatching in parallel sends them. Every call must pass as above.
//
// deadline-passed: over HTTP, an envelope whose Tasker-Deadline passed a
// minute before the request was sent (the runner has recorded a
// handler_timeout and will send the step again). The handler must not run
// the step: it passes with a retryable failure (a failed StepExecutionResult
// whose retryable is not false, in any status the contract classifies, or
// 408, 503 or 504) and fails with a success, a checkpoint or a permanent
// failure. Skipped over Connect and gRPC, whose RPC deadline is the step's
// and cannot be sent already past.
//
// batch: only with [Config.Batch] (--batch), for endpoints registered with
// batch_max > 1: one call of 3 steps, {"steps": [...]} over HTTP or
// ExecuteBatch over Connect/gRPC (one at attempt 2, one with dependency
// results), then a call of a single step in the same shape (such an endpoint
// always gets it). The handler must answer {"results": [...]} valid against
// batch-response.schema.json with exactly one result per step, each with its
// step's step_uuid, in any order; a missing, duplicated or invalid result
// fails. A failure of the whole call passes as for a single call. Skipped
// without --batch.
//
// decision-outcome: only with [Config.Decision] (--decision CALLABLE): an
// envelope for that decision step with the configured context. It must
// answer success with a decision_point_outcome the runner accepts
// (contracts.ParseOutcomes and Validate): create_steps with step names, or
// no_branches. A success without one, a malformed one, or a failure fails.
//
// batch-outcome: only with [Config.Batchable] (--batchable CALLABLE): the
// same for a batchable step and its batch_processing_outcome (create_batches
// with a worker template and cursor configs, or no_batches). The first
// cursor config feeds the yields case.
//
// yields: only with [Config.Yielding] (--yielding CALLABLE): a batch
// worker's envelope for that step (step.inputs with the first cursor of
// batch-outcome, else [DefaultCursor]), then, as long as it answers
// "yielded", the same step again with step.checkpoint set to the checkpoint
// it yielded, the attempt unchanged and a new event_id, as the runner does.
// It must yield at least once, make progress (a checkpoint equal to the one
// it resumed from fails), and finish with success within [MaxYieldCalls]
// calls.
//
// signature-rotation: only with [Config.Secret] over HTTP: a request
// signed twice, as during a secret rotation, first with a secret the handler
// does not know and then with its own. The handler must accept it (any
// matching signature will do). Every other ordinary case is signed with the
// secret alone, so they check that valid signatures are accepted.
//
// unsigned-rejected: only with a secret over HTTP: the envelope without
// webhook-id, webhook-timestamp and webhook-signature. The handler must
// answer 401 (403 is accepted too).
//
// tampered-body-rejected: only with a secret over HTTP: a request whose
// body changed after signing (the signature is of the same envelope for
// another step_uuid). The handler must verify the signature over the raw
// body and answer 401 (or 403).
//
// stale-timestamp-rejected: only with a secret over HTTP: a correctly
// signed request whose webhook-timestamp is 10 minutes old. The handler must
// reject timestamps more than 5 minutes away (401 or 403).
//
// Connect and gRPC calls are not signed, so the signature cases are skipped
// over them (and a secret is a configuration error).
package conformance
