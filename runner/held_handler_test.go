package runner_test

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/tasker-runner/tasker-runner/callout"
	"github.com/tasker-runner/tasker-runner/contracts"
)

// heldHandler is an in-process handler that signals each call on entered
// and holds it until letGo (or the call's context ends), so a test can act
// while a step is in flight.
type heldHandler struct {
	calls   atomic.Int64
	entered chan struct{}
	release chan struct{}
	once    sync.Once
}

// holdHandler registers a held handler for callable in funcs.
func holdHandler(funcs *callout.Funcs, callable string) *heldHandler {
	h := &heldHandler{entered: make(chan struct{}, 10), release: make(chan struct{})}
	funcs.Register(callable, func(ctx context.Context, _ *contracts.StepEnvelope) (contracts.StepResult, error) {
		h.calls.Add(1)
		h.entered <- struct{}{}
		select {
		case <-h.release:
		case <-ctx.Done():
			return contracts.StepResult{}, ctx.Err()
		}
		return contracts.StepResult{Success: true}, nil
	})
	return h
}

// letGo releases every held call, now and later; safe to call twice.
func (h *heldHandler) letGo() { h.once.Do(func() { close(h.release) }) }
