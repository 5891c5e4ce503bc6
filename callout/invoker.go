package callout

import (
	"context"

	"github.com/tasker-runner/tasker-runner/contracts"
)

// Invoker runs one step's handler and reports its result. Implementations
// turn every failure into a failed [contracts.StepResult] with an error type
// from package contracts; they never panic. ctx carries the step's deadline.
type Invoker interface {
	Invoke(ctx context.Context, env *contracts.StepEnvelope) contracts.StepResult
}

// Resolver finds the [Invoker] for a handler's callable.
type Resolver interface {
	// Resolve returns false when no handler serves callable in namespace.
	Resolve(namespace, callable string) (Invoker, bool)
}
