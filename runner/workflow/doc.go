// Package workflow parses, validates, plans and expands Tasker-format task
// templates, and instantiates the steps an outcome adds to a task.
//
// A task template is a YAML (or JSON) document describing a workflow: a DAG of
// steps, each run by a handler. The format follows tasker-core's TaskTemplate so
// that Tasker users' templates load unchanged:
//
//	name: order_processing
//	namespace_name: ecommerce
//	version: 1.0.0
//	input_schema: {type: object, required: [order_id]}
//	steps:
//	  - name: validate
//	    handler: {callable: Ecommerce::Validate}
//	  - name: charge
//	    dependencies: [validate]
//	    handler: {callable: payments.charge, method: call, initialization: {gateway: stripe}}
//	    retry: {retryable: true, max_attempts: 3, backoff: exponential, backoff_base_ms: 1000, max_backoff_ms: 30000}
//	    timeout_seconds: 30
//
// [Parse] decodes and validates a template and returns one [*ValidationError]
// listing every problem at its path (for example
// `steps[2].dependencies[0]: unknown step "x"`).
//
// A parsed [Template] is immutable: it is safe for concurrent use and caches its
// compiled input schema and dependency graph. It round-trips through
// encoding/json (it is stored as jsonb): json.Marshal writes the canonical form
// and json.Unmarshal re-validates it through [Parse].
//
// # Tasker compatibility
//
// Every field of tasker-core's TaskTemplate and StepDefinition loads but one
// (a step's composition, below), with Tasker's aliases (`depends_on` for
// dependencies, `step_type` for type).
// Keys the runner does not act on load too and are reported by
// [Template.Warnings], each with the reason: keys Tasker ignores as well
// (top-level loaded_from and task_handler, a step's lifecycle,
// retry.initial_delay and retry.max_delay, retry.limit next to
// max_attempts), and keys Tasker acts on that have no effect here
// (environments, whose overrides are not applied; the template's
// lifecycle; non-empty publishes_events; a handler's resolver). What the
// runner cannot honour is refused naming the path: a step's composition (a
// grammar-defined virtual handler). Tasker's keys that are documentation
// (metadata, system_dependencies, domain_events, system_dependency,
// result_schema) are kept as written, as JSON, without a warning.
//
// Any other key is an error, with a hint when it looks like a misspelling
// ("dependancies: unknown field; did you mean "dependencies"?"). Top-level
// keys starting with "x-" are ignored, so they can hold YAML anchors; aliases
// and merge keys (`<<: *anchor`) are expanded.
//
// # Retries
//
// `retry.max_attempts` counts total attempts including the first one, so
// `max_attempts: 1` means "run once, never retry". As in Tasker, which
// always runs the first attempt, `max_attempts: 0` means the same and loads
// as 1 (with a warning unless `retryable: false`). `retry.limit`, which
// Tasker's JSON Schema documents but its loader ignores, is read here as
// max_attempts when max_attempts is absent (with a warning, since Tasker
// would make 3 attempts) and ignored when max_attempts is set; `limit: 0` is
// an error unless `retryable: false`. Unset retry fields take the operator's
// [RetryDefaults] when the task is planned.
// [Retry.Backoff] computes the delay before the next attempt; see its
// documentation for the jitter used.
//
// # Batches
//
// batch_config is allowed only on batchable and batch_worker steps. Both of
// Tasker's layouts load: a batchable step with batch_config naming its
// worker_template (a batch_worker step that depends on it), or, as in Tasker's
// own examples, a batchable step without batch_config and a batch_worker step
// depending on it (which may carry the batch_config itself). A batchable step
// with neither is an error, a batch_worker must depend on exactly one batchable
// step, and only deferred_convergence steps may depend on a batch_worker.
//
// # Plans and dynamic steps
//
// [Template.Plan] returns the steps created when a task is submitted, in
// topological order, with parents, transitive ancestors and pending-parent
// counts. Parts of a workflow are created later, by step outcomes, and are not
// in the plan:
//
//   - steps of type batch_worker: they are templates, instantiated once per
//     cursor by a batchable step's batch_processing_outcome;
//   - every step reachable through dependencies from a decision step (its
//     possible branches and what follows them), created by the decision's
//     decision_point_outcome;
//   - every step reachable from a batch_worker step (typically the
//     deferred_convergence step that aggregates the workers), created with the
//     workers.
//
// A step with any dependency outside the plan is therefore itself outside the
// plan: the plan is closed under dependencies, so every parent of a planned step
// is planned and pending-parent counts are exact at submit time. In particular a
// deferred_convergence step that depends on a decision's branches is deferred
// until the decision completes; one whose dependencies are all static is planned
// like a standard step. Decision and batchable steps themselves are planned
// unless they are downstream of another dynamic part.
//
// [Template.ExpandDecision] and [Template.ExpandBatch] compute, for an outcome,
// which template steps to create next and their parents, using Tasker's
// intersection semantics for deferred_convergence steps.
// [Template.Instantiate] then makes the new steps of the task: one per
// cursor for a batch's worker, with its inputs, each with its retry policy,
// its parents among the task's steps and how many of them are not done; an
// outcome over the step limits, or naming a step twice, is an
// [*OutcomeError] and creates nothing.
package workflow
