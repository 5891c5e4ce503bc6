// Command tasker-runner runs Tasker-style workflow steps kept in PostgreSQL by
// calling their handlers. Run "tasker-runner help" for its subcommands.
package main

// README.md's list of commands comes from their usage lines (commandReference).
//go:generate go test -run ^TestREADMECommands$ . -args -update-readme

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/sethvargo/go-envconfig"
)

// command is one subcommand.
type command struct {
	name    string
	summary string
	usage   string // after "tasker-runner <name> "
	run     func(ctx context.Context, env *environment, args []string) error
}

// environment is what a subcommand may touch; tests replace its parts.
type environment struct {
	stdin  io.Reader // nil reads nothing
	stdout io.Writer
	stderr io.Writer
	lookup envconfig.Lookuper
	// environ lists the environment (os.Environ) to warn about misspelt
	// overrides; nil skips the check.
	environ func() []string
	logger  *slog.Logger
}

// errUsage marks an error caused by how the command was called (exit 2).
var errUsage = errors.New("usage")

func commands() []command {
	return []command{
		{name: "serve", summary: "run the runner and its API against a PostgreSQL database", usage: "[--config PATH] [--migrate]", run: runServe},
		{name: "migrate", summary: "apply or show the database schema migrations", usage: "[--config PATH] up|status", run: runMigrate},
		{name: "dev", summary: "the make run demo: a throwaway PostgreSQL (unless DATABASE_URL is set), the runner, example handler services, an order", usage: "[--config PATH] [--chaos LANG] [--chaos-orders N] [--restart-after D] [--examples DIR]", run: runDev},
		{name: "bench", summary: "measure throughput, latency and memory against the targets (make bench)", usage: "[--quick] [--json] [--out PATH] [--soak DURATION] [flags]", run: runBench},
		{name: "openapi", summary: "print the management API's OpenAPI 3.1 description", usage: "[--format yaml|json] [--out PATH] [--openapi-version 3.1|3.0]", run: runOpenAPI},
		{name: "submit", summary: "submit a task to a running server (--wait: follow it to the end)", usage: "--namespace NS --name NAME [--version V] [--context JSON|@file] [--idempotency-key K] [--wait] [--timeout D] [--poll D] [--api URL] [--api-key KEY] [--json]", run: runSubmit},
		{name: "status", summary: "show a running server's status: tasks, queues, workers, endpoints", usage: "[--api URL] [--api-key KEY] [--json]", run: runStatus},
		{name: "tasks", summary: "show a task with its steps, or list tasks", usage: "get TASK_UUID | list [--state S,...] [--namespace NS] [--template NAME] [--correlation-id UUID] [--limit N] [--cursor C] [--api URL] [--api-key KEY] [--json]", run: runTasks},
		{name: "handlers", summary: "list or register handler endpoints", usage: "list [--namespace NS] | put PATTERN --url URL [--namespace NS] [--protocol http|connect|grpc|go] [--secret-ref env:NAME|file:PATH] [--batch-max N] [--batch-window-ms N] [--max-concurrency N] [--timeout-ms N] [--header NAME=VALUE]... [--api URL] [--api-key KEY] [--json]", run: runHandlers},
		{name: "templates", summary: "register, validate, list or print task templates (Tasker's YAML format)", usage: "register FILE|- | validate FILE|- | list [--namespace NS] [--name NAME] [--limit N] [--cursor C] | get NS NAME [VERSION] [--api URL] [--api-key KEY] [--json]", run: runTemplates},
		{name: "dlq", summary: "list or redrive dead letters (steps failed for good)", usage: "list [--namespace NS] [--handler H] [--template NAME] [--task ID] [--limit N] [--cursor C] | redrive STEP_UUID... [--reason R] [--additional-attempts N] | redrive --all [--namespace NS] [--handler H] [--template NAME] [--task ID] [--limit N] [--reason R] [--additional-attempts N] [--api URL] [--api-key KEY] [--json]", run: runDLQ},
		{name: "conformance", summary: "check a handler service against the handler contract", usage: "--url URL [--protocol http|connect|grpc] [--secret whsec_...] [--callable NAME] [--context JSON] [--batch] [--decision CALLABLE] [--batchable CALLABLE] [--yielding CALLABLE] [--timeout 10s] [--json]", run: runConformance},
		{name: "version", summary: "print the version", usage: "", run: runVersion},
	}
}

// hiddenCommands are run by tasker-runner itself, not by people: they
// are not listed in the usage.
func hiddenCommands() []command {
	return []command{
		{name: "bench-worker", summary: "one runner process of the bench's scale scenario, which starts it and talks to it on stdin and stdout", usage: "--namespace NS [flags]", run: runBenchWorker},
	}
}

func main() {
	env := &environment{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, lookup: envconfig.OsLookuper(), environ: os.Environ}
	applyGCDefault(os.LookupEnv)
	env.logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: logLevel(os.Getenv("TASKER_LOG_LEVEL"))}))

	// The first SIGINT/SIGTERM starts a graceful stop; once it is under way
	// the default handling is restored, so a second one ends the process.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		<-ctx.Done()
		stop()
	}()
	code := run(ctx, env, os.Args[1:])
	stop()
	os.Exit(code)
}

func run(ctx context.Context, env *environment, args []string) int {
	if len(args) == 0 {
		// Called wrongly: the usage goes where errors go.
		printUsage(env.stderr)
		return 2
	}
	if args[0] == "help" || args[0] == "-h" || args[0] == "--help" || args[0] == "-help" {
		if len(args) > 1 {
			c, ok := findCommand(args[1])
			if !ok {
				fmt.Fprintf(env.stderr, "tasker-runner help: unknown command %q\n\n", args[1])
				printUsage(env.stderr)
				return 2
			}
			// Through the command's own --help, so that its flags are listed.
			return run(ctx, env, []string{c.name, "--help"})
		}
		printUsage(env.stdout)
		return 0
	}
	c, ok := findCommand(args[0])
	if !ok {
		fmt.Fprintf(env.stderr, "tasker-runner: unknown command %q\n\n", args[0])
		printUsage(env.stderr)
		return 2
	}
	err := c.run(ctx, env, args[1:])
	switch {
	case err == nil:
		return 0
	case errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(env.stderr, "tasker-runner %s: %v\n", c.name, err)
		fmt.Fprintf(env.stderr, "run 'tasker-runner %s --help' for usage\n", c.name)
		return 2
	default:
		fmt.Fprintf(env.stderr, "tasker-runner %s: %v\n", c.name, err)
		return 1
	}
}

func findCommand(name string) (command, bool) {
	for _, c := range append(commands(), hiddenCommands()...) {
		if c.name == name {
			return c, true
		}
	}
	return command{}, false
}

func printUsage(w io.Writer) {
	fmt.Fprintf(w, "tasker-runner runs Tasker-style workflow steps kept in PostgreSQL.\n\nUsage:\n  tasker-runner <command> [flags]\n\nCommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-12s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nRun 'tasker-runner <command> --help' for a command's flags.\n")
}

// commandReference lists every command as README.md's "Commands" section
// shows it: its summary as a comment, then its usage line (as --help
// prints it), wrapped at [referenceWidth] columns. TestREADMECommands keeps
// the README in step; `make generate` (or `go test ./cmd/tasker-runner -run
// TestREADMECommands -args -update-readme`) rewrites it.
func commandReference() string {
	var b strings.Builder
	for i, c := range commands() {
		if i > 0 {
			b.WriteByte('\n')
		}
		wrapWords(&b, "# "+c.summary, "# ")
		wrapWords(&b, strings.TrimSpace("tasker-runner "+c.name+" "+c.usage), "    ")
	}
	return b.String()
}

// referenceWidth is the width [commandReference] wraps at.
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

func printCommandUsage(w io.Writer, c command, fs *flag.FlagSet) {
	fmt.Fprintf(w, "Usage: %s\n\n%s.\n", strings.TrimSpace("tasker-runner "+c.name+" "+c.usage), upperFirst(c.summary))
	if fs != nil {
		var b strings.Builder
		fs.SetOutput(&b)
		fs.PrintDefaults()
		if b.Len() > 0 {
			fmt.Fprintf(w, "\nFlags:\n%s", b.String())
		}
	}
}

// newFlagSet returns a flag set for command name that returns errors
// instead of printing them or exiting; [parseFlags] reports them.
func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	// The flag package calls Usage on every parse error, not only on -h, and
	// the usage must not land on stdout then: parseFlags prints it instead.
	fs.Usage = func() {}
	return fs
}

// parseFlags parses args, printing the command's usage to stdout for --help
// and wrapping other problems as usage errors.
func parseFlags(env *environment, fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			c, _ := findCommand(fs.Name())
			printCommandUsage(env.stdout, c, fs)
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	return nil
}

func upperFirst(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func logLevel(s string) slog.Level {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return slog.LevelInfo
	}
	return l
}
