// Package callout invokes step handlers, all behind [Invoker]: in-process Go
// functions ([Funcs]), HTTP+JSON services ([HTTPInvoker]) and Connect or
// gRPC services ([ConnectInvoker]). Whatever goes wrong in a handler (an
// error, a panic, a timeout, a missing handler, an answer outside the
// contract) comes back as a failed [contracts.StepResult], classified
// retryable or permanent ([ClassifyResponse], [ClassifyCallError]), never as
// a crash.
//
// A [Registry] resolves a step's callable to its [Endpoint] and guards every
// endpoint with a circuit breaker ([BreakerSettings]) and a concurrency
// limit that adapts to 429s; an endpoint with batch_max above 1 groups steps
// into one call through a [Batcher]. Requests are signed with Standard
// Webhooks secrets ([SignHeaders]) when the endpoint has one, and every
// handler URL, when registered and on every connection, is judged by a
// [URLPolicy] ([NewTransport] applies it to the address actually dialled).
package callout
