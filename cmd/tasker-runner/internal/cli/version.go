package cli

import (
	"context"
	"fmt"
	"runtime"
	"runtime/debug"
)

// Version is the version tasker-runner reports; the main package sets it
// from its own version variable, which `make build` sets with -ldflags
// "-X main.version=v1.2.3". Empty: the module's version, or "dev".
var Version = ""

// BuildVersion returns the version tasker-runner reports.
func BuildVersion() string {
	if Version != "" {
		return Version
	}
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
		return bi.Main.Version
	}
	return "dev"
}

// VersionCommand prints the version.
var VersionCommand = Command{Name: "version", Summary: "print the version", Usage: "", Run: runVersion}

func runVersion(_ context.Context, env *Env, args []string) error {
	fs := NewFlagSet("version")
	if err := ParseFlags(env, fs, args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%w: unexpected argument %q", ErrUsage, fs.Arg(0))
	}
	fmt.Fprintf(env.Stdout, "tasker-runner %s (%s, %s/%s)\n", BuildVersion(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return nil
}
