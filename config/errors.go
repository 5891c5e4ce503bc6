package config

import (
	"fmt"
	"strings"
)

// Problem is one thing wrong with a configuration.
type Problem struct {
	// Key is the dotted TOML path of the offending key, with an index for
	// arrays of tables ("worker.handlers[1].url"). It is empty for problems
	// that belong to no key, such as TOML syntax errors.
	Key string
	// Message says what is wrong and, where it helps, what is allowed. When
	// the value came from the environment it names the variable.
	Message string
}

// String formats the problem as "key: message".
func (p Problem) String() string {
	if p.Key == "" {
		return p.Message
	}
	return p.Key + ": " + p.Message
}

// Error is the error returned by [Load], [Config.Validate] and
// [Config.RequireDatabase]. It carries every problem found rather than the
// first, so all of them can be fixed at once.
type Error struct {
	// Path is the configuration file the problems were found with, or empty.
	Path string
	// Problems are in the order they were found: file, environment, validation.
	Problems []Problem
}

// Error lists the problems one per line, each starting with its key. The
// first line names the file, when there is one, and the count.
func (e *Error) Error() string {
	var b strings.Builder
	if e.Path != "" {
		b.WriteString(e.Path)
		b.WriteString(": ")
	}
	if len(e.Problems) == 1 {
		b.WriteString(e.Problems[0].String())
		return b.String()
	}
	fmt.Fprintf(&b, "%d configuration problems:", len(e.Problems))
	for _, p := range e.Problems {
		b.WriteByte('\n')
		b.WriteString(p.String())
	}
	return b.String()
}

// problems collects Problems. Its methods keep the checks in validate.go
// and decode.go to one line each.
type problems []Problem

func (ps *problems) add(key, format string, args ...any) {
	*ps = append(*ps, Problem{Key: key, Message: fmt.Sprintf(format, args...)})
}

// err returns the problems as an *Error, or nil when there are none (as an
// untyped nil, so callers can compare the result with nil).
func (ps problems) err(path string) error {
	if len(ps) == 0 {
		return nil
	}
	return &Error{Path: path, Problems: ps}
}
