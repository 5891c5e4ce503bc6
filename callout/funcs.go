package callout

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"sync"

	"github.com/tasker-runner/tasker-runner/contracts"
)

// Func is an in-process Go handler. Returning an error fails the attempt
// with error type handler_error; the failure is retryable unless the error
// wraps [ErrPermanent] (see [Permanent]). A returned result is used as is.
type Func func(ctx context.Context, env *contracts.StepEnvelope) (contracts.StepResult, error)

// ErrPermanent marks a handler error that retrying cannot fix.
var ErrPermanent = errors.New("permanent failure")

// Permanent wraps err so the step fails without further attempts.
func Permanent(err error) error { return fmt.Errorf("%w: %w", ErrPermanent, err) }

// Funcs is a registry of in-process Go handlers by callable. It is an
// [Invoker] for each of them and a [Resolver]. The zero value is empty and
// ready to use.
type Funcs struct {
	mu    sync.RWMutex
	funcs map[string]Func
	// running tracks handler goroutines that outlive a timed-out call, so
	// shutdown can wait for them.
	running sync.WaitGroup
}

// Register adds (or replaces) the handler for callable.
func (r *Funcs) Register(callable string, fn Func) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.funcs == nil {
		r.funcs = map[string]Func{}
	}
	r.funcs[callable] = fn
}

// Resolve implements [Resolver]. Go handlers are registered per process,
// so the namespace does not matter.
func (r *Funcs) Resolve(_, callable string) (Invoker, bool) {
	r.mu.RLock()
	fn, ok := r.funcs[callable]
	r.mu.RUnlock()
	if !ok {
		return nil, false
	}
	return &funcInvoker{fn: fn, owner: r}, true
}

// Wait blocks until every handler goroutine has returned, including those
// abandoned by a timeout, or until ctx is done.
func (r *Funcs) Wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		r.running.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

type funcInvoker struct {
	fn    Func
	owner *Funcs
}

// Invoke runs the handler on its own goroutine so that a handler ignoring
// its context cannot hold the step past its deadline.
func (f *funcInvoker) Invoke(ctx context.Context, env *contracts.StepEnvelope) contracts.StepResult {
	done := make(chan contracts.StepResult, 1)
	f.owner.running.Add(1)
	go func() {
		defer f.owner.running.Done()
		done <- callFunc(ctx, f.fn, env)
	}()
	select {
	case res := <-done:
		return res
	case <-ctx.Done():
		if errors.Is(context.Cause(ctx), context.DeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return contracts.Failure(contracts.ErrorTypeTimeout, "handler did not finish before the step's timeout", true)
		}
		return contracts.Failure(contracts.ErrorTypeHandler, "call abandoned: "+context.Cause(ctx).Error(), true)
	}
}

func callFunc(ctx context.Context, fn Func, env *contracts.StepEnvelope) (res contracts.StepResult) {
	defer func() {
		if p := recover(); p != nil {
			// A panic is a bug in the handler: retrying the same input will
			// not fix it, so the step goes to the dead-letter set.
			res = contracts.Failure(contracts.ErrorTypePanic, fmt.Sprintf("handler panicked: %v\n%s", p, truncate(debug.Stack(), 4096)), false)
		}
	}()
	res, err := fn(ctx, env)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() != nil {
			return contracts.Failure(contracts.ErrorTypeTimeout, err.Error(), true)
		}
		return contracts.Failure(contracts.ErrorTypeHandler, err.Error(), !errors.Is(err, ErrPermanent))
	}
	if res.Status == "" {
		if res.Success {
			res.Status = contracts.StatusCompleted
		} else {
			res.Status = contracts.StatusFailed
		}
	}
	if !res.Success && res.Status != contracts.StatusYielded && res.Error == nil {
		res.Error = &contracts.StepError{Message: "handler reported failure without an error", ErrorType: contracts.ErrorTypeHandler, Retryable: true}
	}
	return res
}

func truncate(b []byte, n int) string {
	if len(b) <= n {
		return string(b)
	}
	return string(b[:n]) + "..."
}
