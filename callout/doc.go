// Package callout invokes step handlers: in-process Go functions ([Func]),
// and (later) HTTP+JSON and Connect/gRPC services, all behind [Invoker].
// Whatever goes wrong in a handler (an error, a panic, a timeout, a missing
// handler) comes back as a failed [contracts.StepResult], never as a crash.
package callout
