// Package app is the tasker-runner server: the serve, migrate and openapi
// commands, and the wiring of the engine (handler registry, runner,
// client) and the management API that serve, dev and the bench share
// ([Serve], [NewEngine], [RunnerConfig]).
//
// store.go is where the commands reach runner/store; it goes when the
// runner has a front door for it (issue #15).
package app
