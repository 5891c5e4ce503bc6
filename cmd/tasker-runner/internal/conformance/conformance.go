package conformance

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/tasker-runner/tasker-runner/callout/conformance"
	"github.com/tasker-runner/tasker-runner/cmd/tasker-runner/internal/cli"
)

// conformanceSecretEnv is where --secret defaults from: the variable the
// example handlers read their secret from.
const conformanceSecretEnv = "TASKER_WEBHOOK_SECRET"

// Command checks a handler service against the handler contract.
var Command = cli.Command{
	Name: "conformance", Run: runConformance,
	Summary: "check a handler service against the handler contract",
	Usage:   "--url URL [--protocol http|connect|grpc] [--secret whsec_...] [--callable NAME] [--context JSON] [--batch] [--decision CALLABLE] [--batchable CALLABLE] [--yielding CALLABLE] [--timeout 10s] [--json]",
}

// runConformance checks a handler service against the handler contract
// (package callout/conformance) and prints one line per case. Exit 0 when
// no case fails, 1 when one does, 2 on usage errors.
func runConformance(ctx context.Context, env *cli.Env, args []string) error {
	cfg, jsonOut, err := parseConformanceFlags(env, args)
	if err != nil {
		return err
	}
	table := &conformanceTable{w: env.Stdout}
	if !jsonOut {
		cfg.OnCase = table.row
	}
	rep, err := conformance.Run(ctx, cfg)
	if errors.Is(err, conformance.ErrInvalidConfig) {
		msg := strings.TrimPrefix(err.Error(), conformance.ErrInvalidConfig.Error()+": ")
		return fmt.Errorf("%w: %s", cli.ErrUsage, strings.ReplaceAll(msg, "\n", "; "))
	}
	if rep == nil {
		return err
	}
	return report(env, rep, err, table, jsonOut)
}

// report prints the report rep (as JSON, or the table's footer) and
// returns why the check failed: it was interrupted (err), or a case failed.
func report(env *cli.Env, rep *conformance.Report, err error, table *conformanceTable, jsonOut bool) error {
	if jsonOut {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		table.footer(rep)
	}
	switch {
	case err != nil:
		return fmt.Errorf("interrupted after %d of %d cases: %w", len(rep.Cases), len(conformance.Cases()), err)
	case !rep.OK():
		return fmt.Errorf("%d of %d cases failed: the handler does not conform to the handler contract (contracts/README.md)",
			rep.Failed, rep.Passed+rep.Failed)
	}
	return nil
}

// parseConformanceFlags returns the check's configuration and whether
// to print JSON.
func parseConformanceFlags(env *cli.Env, args []string) (conformance.Config, bool, error) {
	fs := cli.NewFlagSet("conformance")
	var (
		cfg         conformance.Config
		contextJSON string
		jsonOut     bool
	)
	fs.StringVar(&cfg.URL, "url", "", "the handler endpoint `URL`, as registered with the runner: for http the URL envelopes are POSTed to (it may contain {callable}); for connect and grpc the service's base URL (http:// is h2c)")
	fs.StringVar(&cfg.Protocol, "protocol", conformance.ProtocolHTTP, "how to call the handler: http, connect or grpc")
	fs.StringVar(&cfg.Secret, "secret", "", "the Standard Webhooks `secret` (whsec_...) the handler verifies: signs every request and runs the signature cases (http only; default $"+conformanceSecretEnv+")")
	fs.StringVar(&cfg.Callable, "callable", conformance.DefaultCallable, "the `callable` every envelope names: one the handler serves")
	fs.StringVar(&contextJSON, "context", "", "the task context of every envelope, a `JSON` object (default {\"conformance\":true})")
	fs.BoolVar(&cfg.Batch, "batch", false, "also check a batched call (for endpoints registered with batch_max > 1)")
	fs.StringVar(&cfg.Decision, "decision", "", "also check the outcome of this decision step's `callable` (with --context)")
	fs.StringVar(&cfg.Batchable, "batchable", "", "also check the outcome of this batchable step's `callable` (with --context)")
	fs.StringVar(&cfg.Yielding, "yielding", "", "also follow the checkpoints of this `callable`, a step that yields (a batch worker), until it completes")
	fs.DurationVar(&cfg.Timeout, "timeout", conformance.DefaultTimeout, "the deadline of each call, sent as Tasker-Deadline")
	fs.BoolVar(&jsonOut, "json", false, "print the report as one JSON object instead of a table")
	if err := cli.ParseFlags(env, fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			printConformanceCases(env.Stdout)
		}
		return cfg, false, err
	}
	if fs.NArg() > 0 {
		return cfg, false, fmt.Errorf("%w: unexpected argument %q", cli.ErrUsage, fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var problems []string
	if cfg.URL == "" {
		problems = append(problems, "--url is required: the handler endpoint to check")
	}
	if cfg.Timeout <= 0 {
		problems = append(problems, fmt.Sprintf("--timeout must be positive, got %s", cfg.Timeout))
	}
	if strings.TrimSpace(cfg.Callable) == "" {
		problems = append(problems, "--callable must not be empty")
	}
	if contextJSON != "" {
		cfg.Context = json.RawMessage(contextJSON)
	}
	if !set["secret"] && strings.EqualFold(strings.TrimSpace(cfg.Protocol), conformance.ProtocolHTTP) {
		if s, ok := env.Lookup.Lookup(conformanceSecretEnv); ok {
			cfg.Secret = strings.TrimSpace(s)
		}
	}
	if len(problems) > 0 {
		return cfg, false, fmt.Errorf("%w: %s", cli.ErrUsage, strings.Join(problems, "; "))
	}
	return cfg, jsonOut, nil
}

// conformanceTable prints the report as cases finish.
type conformanceTable struct {
	w      io.Writer
	header bool
}

// conformanceNameWidth fits the longest case name.
func conformanceNameWidth() int {
	n := len("CASE")
	for _, c := range conformance.Cases() {
		n = max(n, len(c.Name))
	}
	return n
}

func (t *conformanceTable) row(c conformance.CaseResult) {
	width := conformanceNameWidth()
	if !t.header {
		t.header = true
		fmt.Fprintf(t.w, "%-*s  %-6s  %7s  %s\n", width, "CASE", "RESULT", "TIME", "REASON")
	}
	took := ""
	if c.Status != conformance.Skip {
		took = conformanceDuration(c.Duration)
	}
	fmt.Fprintf(t.w, "%-*s  %-6s  %7s  %s\n", width, c.Name, c.Status, took, c.Reason)
}

func (t *conformanceTable) footer(rep *conformance.Report) {
	mode := rep.Protocol + ", callable " + rep.Callable
	if rep.Signed {
		mode += ", signed"
	}
	if rep.Batch {
		mode += ", batch"
	}
	for _, d := range [][2]string{{"decision", rep.Decision}, {"batchable", rep.Batchable}, {"yielding", rep.Yielding}} {
		if d[1] != "" {
			mode += ", " + d[0] + " " + d[1]
		}
	}
	verdict := "the handler conforms"
	if !rep.OK() {
		verdict = "the handler does not conform"
	}
	fmt.Fprintf(t.w, "\n%s (%s): %d passed, %d failed, %d skipped: %s\n", rep.URL, mode, rep.Passed, rep.Failed, rep.Skipped, verdict)
}

func conformanceDuration(d time.Duration) string {
	switch {
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.1fms", float64(d.Microseconds())/1000)
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	default:
		return fmt.Sprintf("%.2fs", d.Seconds())
	}
}

// printConformanceCases documents the cases after the flags in --help.
func printConformanceCases(w io.Writer) {
	fmt.Fprintln(w)
	conformanceWrap(w, "The suite sends the runner's own requests (envelope, headers, signature) for one callable "+
		"(--callable): pick one the handler serves. It checks the contract, not business behaviour: answering "+
		`the synthetic envelopes with {"success": false, ...} passes. Name a decision step, a batchable step and `+
		"a step that yields (--decision, --batchable, --yielding) with a --context they act on to check their "+
		"outcomes and checkpoints too.", "", 78)
	fmt.Fprintln(w)
	conformanceWrap(w, "Most cases pass by the answer rule: "+
		conformance.AnswerRule+". Every failure says what came back and what the contract wants instead. "+
		"Exit status: 0 when no case fails, 1 when one does, 2 on usage errors.", "", 78)
	fmt.Fprintf(w, "\nCases, in the order they run (those marked \"only with\" are skipped otherwise):\n")
	for _, c := range conformance.Cases() {
		fmt.Fprintf(w, "\n  %s\n", c.Name)
		conformanceWrap(w, "sends: "+c.Description+".", "    ", 76)
		conformanceWrap(w, "passes: "+c.Requirement, "    ", 76)
	}
}

// conformanceWrap prints text in lines of at most width columns after
// indent.
func conformanceWrap(w io.Writer, text, indent string, width int) {
	line := ""
	for _, word := range strings.Fields(text) {
		if line != "" && len(line)+1+len(word) > width {
			fmt.Fprintln(w, indent+line)
			line = ""
		}
		if line != "" {
			line += " "
		}
		line += word
	}
	if line != "" {
		fmt.Fprintln(w, indent+line)
	}
}
