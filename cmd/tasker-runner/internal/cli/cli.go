// Package cli is what every tasker-runner command shares: the [Command]
// type, the [Env] a command may touch, flag parsing that reports usage
// errors ([ErrUsage], exit 2) and the usage texts. [Main] runs a command
// table as the tasker-runner binary does.
package cli

import (
	"context"
	"errors"
	"io"
	"log/slog"

	"github.com/sethvargo/go-envconfig"
)

// Command is one subcommand.
type Command struct {
	Name    string
	Summary string
	Usage   string // after "tasker-runner <name> "
	Run     func(ctx context.Context, env *Env, args []string) error
}

// Table is the command table: the listed commands and the hidden ones,
// which tasker-runner runs itself (they are not listed in the usage).
type Table struct {
	Commands []Command
	Hidden   []Command
}

// find returns the command called name, listed or hidden.
func (t Table) find(name string) (Command, bool) {
	for _, c := range append(append([]Command(nil), t.Commands...), t.Hidden...) {
		if c.Name == name {
			return c, true
		}
	}
	return Command{}, false
}

// Env is what a subcommand may touch; tests replace its parts.
type Env struct {
	Stdin  io.Reader // nil reads nothing
	Stdout io.Writer
	Stderr io.Writer
	Lookup envconfig.Lookuper
	// Environ lists the environment (os.Environ) to warn about misspelt
	// overrides; nil skips the check.
	Environ func() []string
	Logger  *slog.Logger

	// table is the command table [Main] runs, for the --help of
	// [ParseFlags].
	table Table
}

// ErrUsage marks an error caused by how the command was called (exit 2).
var ErrUsage = errors.New("usage")

// LogLevel parses TASKER_LOG_LEVEL's value, info when it is not a level.
func LogLevel(s string) slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return slog.LevelInfo
	}
	return l
}

// Command returns the command called name in the table [Main] runs.
func (e *Env) Command(name string) (Command, bool) { return e.table.find(name) }
