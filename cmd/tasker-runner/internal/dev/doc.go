// Package dev is the `make run` demo ([Command]): serve with a throwaway
// PostgreSQL, the example handler services (examples/handlers/*, each a
// child process; the Go one also runs the steps of a language whose
// runtime is missing), the example workflows and their progress.
package dev
