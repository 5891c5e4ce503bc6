package cli

import (
	"flag"
	"fmt"
	"io"
	"strings"
)

// PrintUsage prints the usage of tasker-runner: its listed commands.
func PrintUsage(w io.Writer, table Table) {
	fmt.Fprintf(w, "tasker-runner runs Tasker-style workflow steps kept in PostgreSQL.\n\nUsage:\n  tasker-runner <command> [flags]\n\nCommands:\n")
	for _, c := range table.Commands {
		fmt.Fprintf(w, "  %-12s %s\n", c.Name, c.Summary)
	}
	fmt.Fprintf(w, "\nRun 'tasker-runner <command> --help' for a command's flags.\n")
}

// PrintCommandUsage prints c's usage line, its summary and fs's flags.
func PrintCommandUsage(w io.Writer, c Command, fs *flag.FlagSet) {
	fmt.Fprintf(w, "Usage: %s\n\n%s.\n", strings.TrimSpace("tasker-runner "+c.Name+" "+c.Usage), upperFirst(c.Summary))
	if fs != nil {
		var b strings.Builder
		fs.SetOutput(&b)
		fs.PrintDefaults()
		if b.Len() > 0 {
			fmt.Fprintf(w, "\nFlags:\n%s", b.String())
		}
	}
}

// Reference lists every command of table as README.md's "Commands"
// section shows it: its summary as a comment, then its usage line (as
// --help prints it), wrapped at [referenceWidth] columns. The main
// package's TestREADMECommands keeps the README in step; `make generate`
// rewrites it.
func Reference(table Table) string {
	var b strings.Builder
	for i, c := range table.Commands {
		if i > 0 {
			b.WriteByte('\n')
		}
		wrapWords(&b, "# "+c.Summary, "# ")
		wrapWords(&b, strings.TrimSpace("tasker-runner "+c.Name+" "+c.Usage), "    ")
	}
	return b.String()
}

// referenceWidth is the width [Reference] wraps at.
const referenceWidth = 116

// wrapWords writes s to b in lines of at most referenceWidth columns,
// breaking between words but not inside brackets ("[--context JSON]" stays
// whole, as does a longer word); continuation lines start with indent.
func wrapWords(b *strings.Builder, s, indent string) {
	var units []string
	depth := 0
	for _, w := range strings.Fields(s) {
		if depth > 0 {
			units[len(units)-1] += " " + w
		} else {
			units = append(units, w)
		}
		depth += strings.Count(w, "[") - strings.Count(w, "]")
	}
	line := ""
	for _, w := range units {
		switch {
		case line == "":
			line = w
		case len(line)+1+len(w) > referenceWidth:
			b.WriteString(line + "\n")
			line = indent + w
		default:
			line += " " + w
		}
	}
	b.WriteString(line + "\n")
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
