// Package conformance is `tasker-runner conformance` ([Command]): it checks
// a handler service against the handler contract with
// callout/conformance and prints the report.
package conformance
