package main

import (
	"context"
	"fmt"
	"os"

	"github.com/tasker-runner/tasker-runner/openapi"
)

func runOpenAPI(_ context.Context, env *environment, args []string) error {
	fs := newFlagSet("openapi")
	format := fs.String("format", "yaml", "yaml or json")
	out := fs.String("out", "", "write to this file instead of stdout")
	if err := parseFlags(env, fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", errUsage, fs.Arg(0))
	}
	if *format != "yaml" && *format != "json" {
		return fmt.Errorf("%w: --format %q is not one of yaml, json", errUsage, *format)
	}
	b, err := openapi.Spec(*format)
	if err != nil {
		return err
	}
	if *out == "" {
		_, err = env.stdout.Write(b)
		return err
	}
	return os.WriteFile(*out, b, 0o644)
}
