package apiclient

import (
	"context"
	"flag"
	"fmt"
	"strings"

	"github.com/google/uuid"

	"github.com/tasker-runner/tasker-runner/cmd/tasker-runner/internal/cli"
	"github.com/tasker-runner/tasker-runner/openapi/client"
)

// headerFlags collects repeated --header NAME=VALUE flags.
type headerFlags map[string]string

func (h headerFlags) String() string { return "" }

func (h headerFlags) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || strings.TrimSpace(k) == "" {
		return fmt.Errorf("want NAME=VALUE, got %q", v)
	}
	h[strings.TrimSpace(k)] = val
	return nil
}

// HandlersCommand lists or registers handler endpoints.
var HandlersCommand = cli.Command{
	Name: "handlers", Run: runHandlers,
	Summary: "list or register handler endpoints",
	Usage:   "list [--namespace NS] | put PATTERN --url URL [--namespace NS] [--protocol http|connect|grpc|go] [--secret-ref env:NAME|file:PATH] [--batch-max N] [--batch-window-ms N] [--max-concurrency N] [--timeout-ms N] [--header NAME=VALUE]... [--api URL] [--api-key KEY] [--json]",
}

func runHandlers(ctx context.Context, env *cli.Env, args []string) error {
	var namespace *string
	var put *handlerPutFlags
	sub, o, pos, err := parseSubcommand(env, "handlers", args, []string{"list", "put"}, func(fs *flag.FlagSet, sub string) {
		namespace = fs.String("namespace", "", "the namespace (put: the one the endpoint serves, default every namespace; list: only this namespace)")
		if sub == "put" || sub == "" {
			put = addHandlerPutFlags(fs)
		}
	})
	if err != nil {
		return err
	}
	c, err := o.client()
	if err != nil {
		return err
	}
	var ns *string
	if *namespace != "" {
		ns = namespace
	}
	if sub == "list" {
		if err := noArguments(pos); err != nil {
			return err
		}
		return listHandlers(ctx, env, c, o, ns)
	}
	if len(pos) != 1 {
		return fmt.Errorf("%w: handlers put takes one pattern (a callable, a glob such as payments.*, or *)", cli.ErrUsage)
	}
	return putHandler(ctx, env, c, o, ns, pos[0], put)
}

// listHandlers prints the endpoints (of namespace ns, when not nil), then
// the unusable ones and why.
func listHandlers(ctx context.Context, env *cli.Env, c *client.ClientWithResponses, o *clientOptions, ns *string) error {
	res, err := c.ListHandlersWithResponse(ctx, &client.ListHandlersParams{Namespace: ns})
	if err != nil {
		return callFailed(err)
	}
	if err := apiError(res.HTTPResponse, res.Body); err != nil {
		return err
	}
	if o.json {
		return printJSON(env.Stdout, res.JSON200)
	}
	tw := newTable(env.Stdout)
	fmt.Fprintln(tw, "PATTERN\tNAMESPACE\tPROTOCOL\tURL\tBATCH\tTIMEOUT\tSIGNED")
	for _, h := range res.JSON200.Items {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%dms\t%t\n", h.Pattern, orDash(h.Namespace), h.Protocol, orDash(h.Url), h.BatchMax, h.TimeoutMs, h.Signed)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, h := range res.JSON200.Items {
		if h.Error != nil && *h.Error != "" {
			fmt.Fprintf(env.Stdout, "UNUSABLE %s (namespace %s), its steps wait: %s\n", h.Pattern, orDash(h.Namespace), *h.Error)
		}
	}
	return nil
}

// handlerPutFlags are the flags of `handlers put`.
type handlerPutFlags struct {
	url, protocol, secretRef                  *string
	batchMax, batchWindow, maxConc, timeoutMs *int64
	headers                                   headerFlags
}

func addHandlerPutFlags(fs *flag.FlagSet) *handlerPutFlags {
	f := &handlerPutFlags{headers: headerFlags{}}
	f.url = fs.String("url", "", "where to call: for http a URL that may contain {callable}; for connect and grpc the service's base URL")
	f.protocol = fs.String("protocol", "http", "http, connect, grpc or go")
	f.secretRef = fs.String("secret-ref", "", "where the signing secrets are: env:NAME or file:/path")
	f.batchMax = fs.Int64("batch-max", 0, "more than 1 sends up to this many steps in one call (0: the server's default)")
	f.batchWindow = fs.Int64("batch-window-ms", 0, "how long a batch waits for company, in milliseconds (0: the server's default)")
	f.maxConc = fs.Int64("max-concurrency", 0, "calls in flight at most (0: no limit)")
	f.timeoutMs = fs.Int64("timeout-ms", 0, "bounds one call, in milliseconds (0: the step's timeout)")
	fs.Var(f.headers, "header", "NAME=VALUE sent with every call (repeatable)")
	return f
}

// input is the endpoint the flags describe; unset flags are left to the
// server's defaults.
func (f *handlerPutFlags) input() client.HandlerEndpointInput {
	in := client.HandlerEndpointInput{Protocol: client.Ptr(client.HandlerEndpointInputProtocol(*f.protocol))}
	if *f.url != "" {
		in.Url = f.url
	}
	if *f.secretRef != "" {
		in.SecretRef = f.secretRef
	}
	for _, x := range []struct {
		v   *int64
		dst **int64
	}{{f.batchMax, &in.BatchMax}, {f.batchWindow, &in.BatchWindowMs}, {f.maxConc, &in.MaxConcurrency}, {f.timeoutMs, &in.TimeoutMs}} {
		if *x.v != 0 {
			*x.dst = x.v
		}
	}
	if len(f.headers) > 0 {
		h := map[string]string(f.headers)
		in.Headers = &h
	}
	return in
}

// putHandler registers (or updates) the endpoint of pattern.
func putHandler(ctx context.Context, env *cli.Env, c *client.ClientWithResponses, o *clientOptions, ns *string, pattern string, f *handlerPutFlags) error {
	res, err := c.PutHandlerWithResponse(ctx, pattern, &client.PutHandlerParams{Namespace: ns}, f.input())
	if err != nil {
		return callFailed(err)
	}
	if err := apiError(res.HTTPResponse, res.Body); err != nil {
		return err
	}
	h, verb := res.JSON200, "updated"
	if res.JSON201 != nil {
		h, verb = res.JSON201, "registered"
	}
	if h == nil {
		return fmt.Errorf("unexpected response %s", res.Status())
	}
	if o.json {
		return printJSON(env.Stdout, h)
	}
	fmt.Fprintf(env.Stdout, "%s handler %s (namespace %s): %s %s\n", verb, h.Pattern, orDash(h.Namespace), h.Protocol, orDash(h.Url))
	return nil
}

// DLQCommand lists or redrives dead letters.
var DLQCommand = cli.Command{
	Name: "dlq", Run: runDLQ,
	Summary: "list or redrive dead letters (steps failed for good)",
	Usage:   "list [--namespace NS] [--handler H] [--template NAME] [--task ID] [--limit N] [--cursor C] | redrive STEP_UUID... [--reason R] [--additional-attempts N] | redrive --all [--namespace NS] [--handler H] [--template NAME] [--task ID] [--limit N] [--reason R] [--additional-attempts N] [--api URL] [--api-key KEY] [--json]",
}

func runDLQ(ctx context.Context, env *cli.Env, args []string) error {
	var f *dlqFlags
	sub, o, pos, err := parseSubcommand(env, "dlq", args, []string{"list", "redrive"}, func(fs *flag.FlagSet, sub string) {
		f = addDLQFlags(fs, sub)
	})
	if err != nil {
		return err
	}
	if *f.task != "" {
		id, err := uuid.Parse(*f.task)
		if err != nil {
			return fmt.Errorf("%w: --task %q is not a UUID", cli.ErrUsage, *f.task)
		}
		f.taskID = &id
	}
	c, err := o.client()
	if err != nil {
		return err
	}
	if sub == "list" {
		if err := noArguments(pos); err != nil {
			return err
		}
		return listDeadLetters(ctx, env, c, o, f)
	}
	body, err := f.redriveRequest(pos)
	if err != nil {
		return err
	}
	return redrive(ctx, env, c, o, body)
}

// dlqFlags are the flags of dlq list and dlq redrive; those of the other
// subcommand are nil.
type dlqFlags struct {
	namespace, handler, template, task *string
	taskID                             *uuid.UUID // --task, parsed
	limit                              *int64
	cursor, reason                     *string
	all                                *bool
	more                               *int64
}

func addDLQFlags(fs *flag.FlagSet, sub string) *dlqFlags {
	f := &dlqFlags{
		namespace: fs.String("namespace", "", "only dead letters of this namespace"),
		handler:   fs.String("handler", "", "only dead letters of this callable"),
		template:  fs.String("template", "", "only dead letters of tasks of this template name"),
		task:      fs.String("task", "", "only dead letters of this task (UUID)"),
		limit:     fs.Int64("limit", 0, "list: page size (default 50); redrive --all: at most this many (default: the server's)"),
	}
	if sub == "list" || sub == "" {
		f.cursor = fs.String("cursor", "", "list: the next page, from the previous page's cursor")
	}
	if sub == "redrive" || sub == "" {
		f.all = fs.Bool("all", false, "redrive every dead letter matching the filters (--namespace, --handler, --template, --task)")
		f.reason = fs.String("reason", "", "recorded in the audit trail")
		f.more = fs.Int64("additional-attempts", 0, "attempts to add (0: the server's default)")
	}
	return f
}

// opt is s, or nil when it is empty.
func opt(s *string) *string {
	if *s == "" {
		return nil
	}
	return s
}

// listDeadLetters prints a page of dead letters.
func listDeadLetters(ctx context.Context, env *cli.Env, c *client.ClientWithResponses, o *clientOptions, f *dlqFlags) error {
	params := client.ListDeadLettersParams{Namespace: opt(f.namespace), Handler: opt(f.handler), Template: opt(f.template), TaskUuid: f.taskID, Cursor: opt(f.cursor)}
	if *f.limit > 0 {
		params.Limit = f.limit
	}
	res, err := c.ListDeadLettersWithResponse(ctx, &params)
	if err != nil {
		return callFailed(err)
	}
	if err := apiError(res.HTTPResponse, res.Body); err != nil {
		return err
	}
	if o.json {
		return printJSON(env.Stdout, res.JSON200)
	}
	tw := newTable(env.Stdout)
	fmt.Fprintln(tw, "STEP\tTASK\tNAMESPACE\tTEMPLATE\tNAME\tHANDLER\tATTEMPTS\tFAILED\tLAST ERROR")
	for _, d := range res.JSON200.Items {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.StepUuid, d.TaskUuid, d.Namespace, d.TemplateName, d.Name, d.Handler,
			fmtAttempts(d.Attempts, d.MaxAttempts, d.Yields), fmtTime(d.LastAttemptedAt), orDash(compactJSON(d.LastError, 80)))
	}
	tw.Flush()
	printMore(env, res.JSON200.NextCursor)
	return nil
}

// redriveRequest is what dlq redrive asks for: the step UUIDs pos, or with
// --all the dead letters the filters match.
func (f *dlqFlags) redriveRequest(pos []string) (client.RedriveRequest, error) {
	var body client.RedriveRequest
	switch {
	case len(pos) > 0 && *f.all:
		return body, fmt.Errorf("%w: give step UUIDs or --all, not both", cli.ErrUsage)
	case len(pos) > 0:
		for _, p := range pos {
			if _, err := uuid.Parse(p); err != nil {
				return body, fmt.Errorf("%w: %q is not a step UUID", cli.ErrUsage, p)
			}
		}
		ids := pos
		body.StepUuids = &ids
	case *f.all:
		body.Filter = &client.DeadLetterFilter{Namespace: opt(f.namespace), Handler: opt(f.handler), Template: opt(f.template), TaskUuid: f.taskID}
		if *f.limit > 0 {
			body.Limit = f.limit
		}
	default:
		return body, fmt.Errorf("%w: give the step UUIDs to redrive, or --all (with filters such as --namespace)", cli.ErrUsage)
	}
	body.Reason = opt(f.reason)
	if *f.more > 0 {
		body.AdditionalAttempts = f.more
	}
	return body, nil
}

// redrive redrives the dead letters body names and prints which.
func redrive(ctx context.Context, env *cli.Env, c *client.ClientWithResponses, o *clientOptions, body client.RedriveRequest) error {
	res, err := c.RedriveDeadLettersWithResponse(ctx, body)
	if err != nil {
		return callFailed(err)
	}
	if err := apiError(res.HTTPResponse, res.Body); err != nil {
		return err
	}
	if o.json {
		return printJSON(env.Stdout, res.JSON200)
	}
	r := res.JSON200
	fmt.Fprintf(env.Stdout, "redriven %d step(s), %d task(s) resumed\n", r.Redriven, len(r.TasksResumed))
	for _, id := range r.StepUuids {
		fmt.Fprintf(env.Stdout, "  %s\n", id)
	}
	if r.More {
		fmt.Fprintln(env.Stdout, "more dead letters match: run it again")
	}
	return nil
}
