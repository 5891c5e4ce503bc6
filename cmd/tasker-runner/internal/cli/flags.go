package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
)

// NewFlagSet returns a flag set for command name that returns errors
// instead of printing them or exiting; [ParseFlags] reports them.
func NewFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	// The flag package calls Usage on every parse error, not only on -h, and
	// the usage must not land on stdout then: ParseFlags prints it instead.
	fs.Usage = func() {}
	return fs
}

// ParseFlags parses args, printing the command's usage to stdout for --help
// and wrapping other problems as usage errors ([ErrUsage]).
func ParseFlags(env *Env, fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			c, _ := env.Command(fs.Name())
			PrintCommandUsage(env.Stdout, c, fs)
			return err
		}
		return fmt.Errorf("%w: %v", ErrUsage, err)
	}
	return nil
}
