package runner

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/tasker-runner/tasker-runner/contracts"
	"github.com/tasker-runner/tasker-runner/runner/store"
	"github.com/tasker-runner/tasker-runner/runner/workflow"
)

// decideOutcome turns a handler's result into the step's next state: complete,
// waiting_for_retry (with run_at from the backoff; a handler's requested
// delay wins), error (the dead-letter set) when the failure is permanent or
// the attempts are used up (a batch worker of a continue_on_failure batch
// completes with its failure as its result instead), or enqueued again with its attempt given back
// when the handler was not called because its circuit breaker is open or its endpoint is unusable.
func decideOutcome(s store.ClaimedStep, res contracts.StepResult, now time.Time, rnd func() float64, maxYields int) store.Completion {
	c := store.Completion{StepUUID: s.StepUUID, Attempt: s.Attempt, Epoch: s.Epoch}
	res.StepUUID = ""
	if res.Success && res.Status != contracts.StatusFailed && res.Status != contracts.StatusYielded {
		if res.Status == "" {
			res.Status = contracts.StatusCompleted
		}
		c.State = contracts.StepStateComplete
		c.Results = mustJSON(res)
		return c
	}
	if res.Error != nil && (res.Error.ErrorType == contracts.ErrorTypeCircuitOpen || res.Error.ErrorType == contracts.ErrorTypeEndpointUnusable) {
		// Not called: the endpoint's breaker is open, or the endpoint is
		// unusable. Give the step back until the breaker may close (the
		// endpoint is looked at again), without consuming the attempt.
		c.State = contracts.StepStateEnqueued
		c.RunAt = now.Add(retryDelay(s, res, rnd))
		return c
	}
	if res.Status == contracts.StatusYielded {
		if len(res.Checkpoint) == 0 || string(res.Checkpoint) == "null" {
			res = contracts.Failure(contracts.ErrorTypeInvalidResponse, "status \"yielded\" needs a checkpoint", false)
		} else if s.Yields >= maxYields {
			// Its previous checkpoint stays: a redrive resumes from there.
			res = contracts.Failure(contracts.ErrorTypeYieldLimit,
				fmt.Sprintf("step yielded %d times, the most allowed (max_yields_per_step); it was stopped", s.Yields), false)
		} else {
			// Progress: store the checkpoint and run the step again at once,
			// without consuming an attempt.
			c.State = contracts.StepStateEnqueued
			c.RunAt = now
			c.Checkpoint = res.Checkpoint
			return c
		}
	}
	if res.Error == nil {
		res.Error = &contracts.StepError{Message: "handler reported failure without an error", ErrorType: contracts.ErrorTypeHandler, Retryable: true}
	}
	res.Success, res.Status = false, contracts.StatusFailed
	c.Error = mustJSON(res)
	if !s.Retryable || !res.Error.Retryable || s.Attempt >= s.MaxAttempts {
		c.State = contracts.StepStateError
		if failureStrategy(s) == workflow.ContinueOnFailure {
			// The batch goes on: the worker completes with its failure as
			// its result, which the convergence step sees.
			c.State, c.Results, c.Error = contracts.StepStateComplete, c.Error, nil
		}
		return c
	}
	c.State = contracts.StepStateWaitingForRetry
	c.RunAt = now.Add(retryDelay(s, res, rnd))
	return c
}

func retryDelay(s store.ClaimedStep, res contracts.StepResult, rnd func() float64) time.Duration {
	if m := res.OrchestrationMetadata; m != nil {
		if m.BackoffRequestSeconds != nil && *m.BackoffRequestSeconds >= 0 {
			return seconds(*m.BackoffRequestSeconds)
		}
		if m.BackoffHint != nil && m.BackoffHint.DelaySeconds >= 0 {
			return seconds(m.BackoffHint.DelaySeconds)
		}
	}
	var policy workflow.Retry
	if len(s.RetryPolicy) > 0 {
		_ = json.Unmarshal(s.RetryPolicy, &policy) // written by us; defaults cover a bad one
	}
	return policy.Backoff(s.Attempt, rnd)
}

// maxRequestedDelay caps a handler's requested delay.
const maxRequestedDelay = 24 * time.Hour

func seconds(f float64) time.Duration {
	d := time.Duration(f * float64(time.Second))
	return min(d, maxRequestedDelay)
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		// Only json.RawMessage fields can fail, and those come validated
		// from a decoder or from us.
		b, _ = json.Marshal(contracts.Failure(contracts.ErrorTypeInvalidResponse, "result is not valid JSON: "+err.Error(), false))
	}
	return b
}
