// Package contracts holds tasker-runner's wire contracts: the step envelope
// sent to a handler ([StepEnvelope]) and the result it answers with
// ([StepResult]), with the JSON field names of Tasker's handler contract
// (contracts/README.md), so a handler written for Tasker reads the same fields here.
package contracts
