package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
)

// Main runs the command args name in table and returns the process's exit
// code: 0, 1 for a failure, 2 for a usage error. "help", "-h" and "--help"
// print the usage, or a command's.
func Main(ctx context.Context, env *Env, table Table, args []string) int {
	env.table = table
	if len(args) == 0 {
		// Called wrongly: the usage goes where errors go.
		PrintUsage(env.Stderr, table)
		return 2
	}
	if args[0] == "help" || args[0] == "-h" || args[0] == "--help" || args[0] == "-help" {
		if len(args) > 1 {
			c, ok := table.find(args[1])
			if !ok {
				fmt.Fprintf(env.Stderr, "tasker-runner help: unknown command %q\n\n", args[1])
				PrintUsage(env.Stderr, table)
				return 2
			}
			// Through the command's own --help, so that its flags are listed.
			return Main(ctx, env, table, []string{c.Name, "--help"})
		}
		PrintUsage(env.Stdout, table)
		return 0
	}
	c, ok := table.find(args[0])
	if !ok {
		fmt.Fprintf(env.Stderr, "tasker-runner: unknown command %q\n\n", args[0])
		PrintUsage(env.Stderr, table)
		return 2
	}
	return exitCode(env, c, c.Run(ctx, env, args[1:]))
}

// exitCode reports err of command c and returns the exit code it means.
func exitCode(env *Env, c Command, err error) int {
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, ErrUsage):
		fmt.Fprintf(env.Stderr, "tasker-runner %s: %v\n", c.Name, err)
		fmt.Fprintf(env.Stderr, "run 'tasker-runner %s --help' for usage\n", c.Name)
		return 2
	default:
		fmt.Fprintf(env.Stderr, "tasker-runner %s: %v\n", c.Name, err)
		return 1
	}
}
