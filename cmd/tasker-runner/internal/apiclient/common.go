package apiclient

// The client commands (submit, status, tasks, handlers, dlq) talk to a
// running server's management API through the generated Go client
// (openapi/client).

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tasker-runner/tasker-runner/cmd/tasker-runner/internal/cli"
	"github.com/tasker-runner/tasker-runner/openapi/client"
)

// DefaultAPIURL is the API the client commands call without --api.
const DefaultAPIURL = "http://localhost:8081"

// clientOptions are the flags every client command takes.
type clientOptions struct {
	api    string
	apiKey string
	json   bool
	stderr io.Writer // tells of retries
}

// addClientFlags registers --api, --api-key and --json on fs, with
// defaults from TASKER_API_URL and TASKER_API_KEY.
func addClientFlags(env *cli.Env, fs *flag.FlagSet) *clientOptions {
	o := &clientOptions{stderr: env.Stderr}
	api := DefaultAPIURL
	if v, ok := env.Lookup.Lookup("TASKER_API_URL"); ok && v != "" {
		api = v
	}
	key, _ := env.Lookup.Lookup("TASKER_API_KEY")
	fs.StringVar(&o.api, "api", api, "base URL of the management API ($TASKER_API_URL)")
	fs.StringVar(&o.apiKey, "api-key", key, "API key or JWT, sent as a bearer token ($TASKER_API_KEY)")
	fs.BoolVar(&o.json, "json", false, "print the API's JSON instead of tables")
	return o
}

// client returns a client of the API that retries what is safe to retry
// (see [client.RetryingDoer]): a 503 while the server's database is
// unreachable, a gateway's 502 or 504, a lost connection. A submission
// without --idempotency-key gets a generated key, so a retry never creates
// a second task. Each retry is told on stderr.
func (o *clientOptions) client() (*client.ClientWithResponses, error) {
	if o.api == "" {
		return nil, fmt.Errorf("%w: --api is empty", cli.ErrUsage)
	}
	policy := client.RetryPolicy{OnRetry: func(e client.RetryEvent) {
		if o.stderr != nil {
			fmt.Fprintf(o.stderr, "%s %s: %s; retrying in %s\n", e.Method, e.URL, e.Reason, e.Wait.Round(time.Millisecond))
		}
	}}
	return client.New(o.api, o.apiKey, client.WithRetry(&http.Client{Timeout: 30 * time.Second}, policy))
}

// parseInterspersed parses flags that may come before, between or after
// the positional arguments, which it returns.
func parseInterspersed(env *cli.Env, fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := cli.ParseFlags(env, fs, args); err != nil {
			return nil, err
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		if args[0] == "--" {
			return append(pos, args[1:]...), nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// apiError turns a failed call or an error response into an error that
// shows the problem details: status and title, detail, and each error's
// location and message.
func apiError(res *http.Response, body []byte) error {
	if err := client.CheckResponse(res, body); err != nil {
		var p *client.Problem
		if errors.As(err, &p) {
			return &problemError{p}
		}
		return err
	}
	return nil
}

// callFailed wraps an error of a call that got no response.
func callFailed(err error) error {
	return fmt.Errorf("calling the API: %w", err)
}

// problemError prints a problem over several lines.
type problemError struct{ p *client.Problem }

func (e *problemError) Error() string { return strings.TrimRight(e.p.Format(), "\n") }
func (e *problemError) Unwrap() error { return e.p }

// printJSON prints a response body (already JSON) indented.
func printJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

func newTable(w io.Writer) *tabwriter.Writer {
	return tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
}

// compactJSON renders v on one line, shortened to max runes (0: no limit).
func compactJSON(v any, max int) string {
	if v == nil {
		return ""
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return shorten(string(b), max)
}

// shorten cuts s to max runes, the last one an ellipsis (0: no limit).
func shorten(s string, max int) string {
	if r := []rune(s); max > 0 && len(r) > max {
		s = string(r[:max-1]) + "…"
	}
	return s
}

// printMore tells how to ask for the next page of a list, if there is one.
func printMore(env *cli.Env, next *string) {
	if next != nil && *next != "" {
		fmt.Fprintf(env.Stdout, "\nmore: --cursor %s\n", *next)
	}
}

func fmtTime(t *time.Time) string {
	if t == nil || t.IsZero() {
		return "-"
	}
	return t.Local().Format(time.DateTime)
}

// fmtAttempts shows a step's attempts as "attempts/max", then its yields
// (checkpointed re-runs that used no attempt) when it has any.
func fmtAttempts(attempts, maxAttempts, yields int64) string {
	out := fmt.Sprintf("%d/%d", attempts, maxAttempts)
	switch {
	case yields == 1:
		out += ", 1 yield"
	case yields > 1:
		out += fmt.Sprintf(", %d yields", yields)
	}
	return out
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// readJSONArg reads a JSON value given inline or as @file (@- for stdin).
func readJSONArg(arg string, stdin io.Reader) (any, error) {
	b := []byte(arg)
	if name, ok := strings.CutPrefix(arg, "@"); ok {
		var err error
		if name == "-" {
			b, err = io.ReadAll(stdin)
		} else {
			b, err = os.ReadFile(name)
		}
		if err != nil {
			return nil, err
		}
	}
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("not JSON: %w", err)
	}
	return v, nil
}

// parseSubcommand parses the command line of client command name: its
// subcommand (one of subs; "" for --help), then the client flags and those
// addFlags registers for that subcommand, wherever they come among the
// positional arguments, which it returns. For --help it prints the usage,
// with every subcommand's flags, and returns [flag.ErrHelp].
func parseSubcommand(env *cli.Env, name string, args []string, subs []string, addFlags func(fs *flag.FlagSet, sub string)) (sub string, o *clientOptions, pos []string, err error) {
	sub, args, err = subcommand(env, name, args, subs...)
	if err != nil {
		return "", nil, nil, err
	}
	fs := cli.NewFlagSet(name)
	o = addClientFlags(env, fs)
	addFlags(fs, sub)
	if err := helpRequested(env, name, sub, fs); err != nil {
		return "", nil, nil, err
	}
	pos, err = parseInterspersed(env, fs, args)
	return sub, o, pos, err
}

// noArguments is a usage error naming the first of pos, for a command that
// takes no positional arguments; nil when there are none.
func noArguments(pos []string) error {
	if len(pos) > 0 {
		return fmt.Errorf("%w: unexpected argument %q", cli.ErrUsage, pos[0])
	}
	return nil
}

// helpRequested prints the usage of command name with the flags of fs
// when sub is "" (--help before any subcommand).
func helpRequested(env *cli.Env, name, sub string, fs *flag.FlagSet) error {
	if sub != "" {
		return nil
	}
	c, _ := env.Command(name)
	cli.PrintCommandUsage(env.Stdout, c, fs)
	return flag.ErrHelp
}

// subcommand splits "tasks get ..." into the subcommand and its arguments;
// for --help it returns "" (then every subcommand's flags are registered).
func subcommand(env *cli.Env, name string, args []string, subs ...string) (string, []string, error) {
	if len(args) == 0 {
		return "", nil, fmt.Errorf("%w: want a subcommand: %s", cli.ErrUsage, strings.Join(subs, ", "))
	}
	switch args[0] {
	case "-h", "--help", "-help", "help":
		return "", nil, nil // the caller prints the usage with every flag: see helpRequested
	}
	for _, s := range subs {
		if args[0] == s {
			return s, args[1:], nil
		}
	}
	return "", nil, fmt.Errorf("%w: unknown subcommand %q: want one of %s", cli.ErrUsage, args[0], strings.Join(subs, ", "))
}
