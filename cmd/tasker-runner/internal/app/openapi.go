package app

import (
	"context"
	"fmt"
	"os"

	"github.com/tasker-runner/tasker-runner/cmd/tasker-runner/internal/cli"
	"github.com/tasker-runner/tasker-runner/openapi"
)

// OpenAPICommand prints the management API's description.
var OpenAPICommand = cli.Command{
	Name: "openapi", Run: runOpenAPI,
	Summary: "print the management API's OpenAPI 3.1 description",
	Usage:   "[--format yaml|json] [--out PATH] [--openapi-version 3.1|3.0]",
}

func runOpenAPI(_ context.Context, env *cli.Env, args []string) error {
	fs := cli.NewFlagSet("openapi")
	format := fs.String("format", "yaml", "yaml or json")
	out := fs.String("out", "", "write to this file instead of stdout")
	version := fs.String("openapi-version", "3.1", "3.1, or 3.0 for tools that do not read 3.1 yet (a lossy downgrade; the client generators use it)")
	if err := cli.ParseFlags(env, fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", cli.ErrUsage, fs.Arg(0))
	}
	if *format != "yaml" && *format != "json" {
		return fmt.Errorf("%w: --format %q is not one of yaml, json", cli.ErrUsage, *format)
	}
	var b []byte
	var err error
	switch *version {
	case "3.1":
		b, err = openapi.Spec(*format)
	case "3.0":
		b, err = openapi.Spec30(*format)
	default:
		return fmt.Errorf("%w: --openapi-version %q is not one of 3.1, 3.0", cli.ErrUsage, *version)
	}
	if err != nil {
		return err
	}
	if *out == "" {
		_, err = env.Stdout.Write(b)
		return err
	}
	return os.WriteFile(*out, b, 0o644)
}
