package apiclient

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/tasker-runner/tasker-runner/cmd/tasker-runner/internal/cli"
	"github.com/tasker-runner/tasker-runner/openapi/client"
)

// errTaskFailed marks a task that ended blocked_by_failures (exit 1).
var errTaskFailed = errors.New("the task ended blocked_by_failures")

// SubmitCommand submits a task to a running server.
var SubmitCommand = cli.Command{
	Name: "submit", Run: runSubmit,
	Summary: "submit a task to a running server (--wait: follow it to the end)",
	Usage:   "--namespace NS --name NAME [--version V] [--context JSON|@file] [--idempotency-key K] [--wait] [--timeout D] [--poll D] [--api URL] [--api-key KEY] [--json]",
}

func runSubmit(ctx context.Context, env *cli.Env, args []string) error {
	fs := cli.NewFlagSet("submit")
	o := addClientFlags(env, fs)
	namespace := fs.String("namespace", "", "the template's namespace (required)")
	name := fs.String("name", "", "the template's name (required)")
	version := fs.String("version", "", "the template's version (default: the most recently registered)")
	ctxArg := fs.String("context", "{}", "the task's context: a JSON object, or @file (@- reads stdin)")
	idem := fs.String("idempotency-key", "", "submit at most once under this key (default: a generated one, so that retries never submit twice)")
	wait := fs.Bool("wait", false, "wait for the task to finish, showing step progress, then print the results (exit 1 if it ends blocked_by_failures)")
	timeout := fs.Duration("timeout", 10*time.Minute, "with --wait: how long to wait at most")
	interval := fs.Duration("poll", 500*time.Millisecond, "with --wait: how often to poll the task")
	pos, err := parseInterspersed(env, fs, args)
	if err != nil {
		return err
	}
	if err := noArguments(pos); err != nil {
		return err
	}
	if *namespace == "" || *name == "" {
		return fmt.Errorf("%w: --namespace and --name are required", cli.ErrUsage)
	}
	taskCtx, err := readJSONArg(*ctxArg, os.Stdin)
	if err != nil {
		return fmt.Errorf("%w: --context: %v", cli.ErrUsage, err)
	}
	c, err := o.client()
	if err != nil {
		return err
	}
	body := client.SubmitTaskRequest{Namespace: *namespace, Name: *name, Context: taskCtx}
	if *version != "" {
		body.Version = version
	}
	var params client.SubmitTaskParams
	if *idem != "" {
		params.IdempotencyKey = idem
	}
	task, again, err := submitTask(ctx, c, &params, body)
	if err != nil {
		return err
	}
	if !*wait {
		if o.json {
			return printJSON(env.Stdout, task)
		}
		existing := ""
		if again && *idem != "" {
			// Without --idempotency-key, a 200 is this run's own
			// submission, found again by a retry.
			existing = " (already submitted under this idempotency key)"
		}
		fmt.Fprintf(env.Stdout, "submitted task %s%s: %s/%s %s, %s\n", task.TaskUuid, existing, task.Namespace, task.Name, task.Version, task.State)
		return nil
	}
	return followTask(ctx, env, c, o, task, *timeout, *interval)
}

// submitTask submits body; again says the server answered with an earlier
// submission under the same idempotency key (200, not 201).
func submitTask(ctx context.Context, c *client.ClientWithResponses, params *client.SubmitTaskParams, body client.SubmitTaskRequest) (task *client.Task, again bool, err error) {
	res, err := c.SubmitTaskWithResponse(ctx, params, body)
	if err != nil {
		return nil, false, callFailed(err)
	}
	if err := apiError(res.HTTPResponse, res.Body); err != nil {
		return nil, false, err
	}
	task = res.JSON201
	if task == nil {
		task = res.JSON200 // an earlier submission under the same key
	}
	if task == nil {
		return nil, false, fmt.Errorf("unexpected response %s", res.Status())
	}
	return task, res.JSON200 != nil, nil
}

// followTask is submit --wait: it shows the task's progress until it
// finishes (within timeout, polling every interval), then its results.
func followTask(ctx context.Context, env *cli.Env, c *client.ClientWithResponses, o *clientOptions, task *client.Task, timeout, interval time.Duration) error {
	progress := env.Stdout
	if o.json {
		progress = env.Stderr // stdout is for the JSON
	}
	fmt.Fprintf(progress, "task %s: %s/%s %s\n", task.TaskUuid, task.Namespace, task.Name, task.Version)
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	final, err := waitTask(wctx, c, task.TaskUuid, interval, progress)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			return fmt.Errorf("task %s did not finish within %s", task.TaskUuid, timeout)
		}
		return err
	}
	if o.json {
		err = printJSON(env.Stdout, final)
	} else {
		printTask(env.Stdout, final)
	}
	if err == nil && final.State == client.TaskStateBlockedByFailures {
		return fmt.Errorf("task %s: %w", final.TaskUuid, errTaskFailed)
	}
	return err
}

// waitTask waits for the task to finish ([client.WaitTask]), printing each
// step's state changes to w.
func waitTask(ctx context.Context, c *client.ClientWithResponses, id uuid.UUID, interval time.Duration, w io.Writer) (*client.Task, error) {
	p := taskProgress{w: w, seen: map[uuid.UUID]client.StepState{}}
	t, err := client.WaitTask(ctx, c, id, &client.WaitOptions{Interval: interval, OnPoll: p.show})
	var problem *client.Problem
	switch {
	case err == nil, ctx.Err() != nil:
		return t, err
	case errors.As(err, &problem):
		return nil, &problemError{problem}
	}
	return nil, callFailed(err)
}

// taskProgress prints what changed in a task since its last read.
type taskProgress struct {
	w         io.Writer
	seen      map[uuid.UUID]client.StepState
	taskState client.TaskState
}

func (p *taskProgress) show(t *client.Task) {
	for _, s := range t.Steps {
		if prev, ok := p.seen[s.StepUuid]; !ok || prev != s.State {
			line := fmt.Sprintf("  %s  step %-24s %s", time.Now().Format(time.TimeOnly), s.Name, s.State)
			if s.Attempts > 0 {
				line += " (attempt " + fmtAttempts(s.Attempts, s.MaxAttempts, s.Yields) + ")"
			}
			if s.LastError != nil && s.State != client.StepStateComplete {
				line += "  " + compactJSON(s.LastError, 120)
			}
			fmt.Fprintln(p.w, line)
			p.seen[s.StepUuid] = s.State
		}
	}
	if t.State != p.taskState {
		fmt.Fprintf(p.w, "  %s  task %s (%d/%d steps done)\n", time.Now().Format(time.TimeOnly), t.State, t.StepsDone, t.StepsTotal)
		p.taskState = t.State
	}
}

// printTask prints a task and its steps with their results.
func printTask(w io.Writer, t *client.Task) {
	tw := newTable(w)
	fmt.Fprintf(tw, "task\t%s\n", t.TaskUuid)
	fmt.Fprintf(tw, "template\t%s/%s %s\n", t.Namespace, t.Name, t.Version)
	fmt.Fprintf(tw, "state\t%s (%d/%d steps done)\n", t.State, t.StepsDone, t.StepsTotal)
	fmt.Fprintf(tw, "created\t%s\n", fmtTime(&t.CreatedAt))
	fmt.Fprintf(tw, "completed\t%s\n", fmtTime(t.CompletedAt))
	fmt.Fprintf(tw, "context\t%s\n", compactJSON(t.Context, 200))
	tw.Flush()
	fmt.Fprintln(w)
	tw = newTable(w)
	fmt.Fprintln(tw, "STEP\tHANDLER\tSTATE\tATTEMPTS\tRESULT / LAST ERROR")
	for _, s := range t.Steps {
		detail := compactJSON(s.Results, 100)
		if s.State != client.StepStateComplete && s.State != client.StepStateResolvedManually && s.LastError != nil {
			detail = compactJSON(s.LastError, 100)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.Name, s.Handler, s.State, fmtAttempts(s.Attempts, s.MaxAttempts, s.Yields), orDash(detail))
	}
	tw.Flush()
}

// StatusCommand shows a running server's status.
var StatusCommand = cli.Command{
	Name: "status", Run: runStatus,
	Summary: "show a running server's status: tasks, queues, workers, endpoints",
	Usage:   "[--api URL] [--api-key KEY] [--json]",
}

func runStatus(ctx context.Context, env *cli.Env, args []string) error {
	fs := cli.NewFlagSet("status")
	o := addClientFlags(env, fs)
	pos, err := parseInterspersed(env, fs, args)
	if err != nil {
		return err
	}
	if err := noArguments(pos); err != nil {
		return err
	}
	c, err := o.client()
	if err != nil {
		return err
	}
	res, err := c.GetStatusWithResponse(ctx)
	if err != nil {
		return callFailed(err)
	}
	if err := apiError(res.HTTPResponse, res.Body); err != nil {
		return err
	}
	s := res.JSON200
	if o.json {
		return printJSON(env.Stdout, s)
	}
	fmt.Fprintf(env.Stdout, "server %s at %s\n\n", s.Version, fmtTime(&s.Time))
	states := make([]string, 0, len(s.Tasks))
	for k := range s.Tasks {
		states = append(states, k)
	}
	slices.Sort(states)
	tw := newTable(env.Stdout)
	fmt.Fprintf(tw, "TASKS (last %s)\tCOUNT\n", time.Duration(s.TasksWindowSeconds*float64(time.Second)))
	for _, k := range states {
		fmt.Fprintf(tw, "%s\t%d\n", k, s.Tasks[k])
	}
	tw.Flush()
	fmt.Fprintln(env.Stdout)
	tw = newTable(env.Stdout)
	fmt.Fprintln(tw, "NAMESPACE\tREADY\tSCHEDULED\tIN PROGRESS\tDEAD LETTERS\tOLDEST READY")
	for _, n := range s.Namespaces {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t%.1fs\n", n.Name, n.Ready, n.Scheduled, n.InProgress, n.DeadLetters, n.OldestReadySeconds)
	}
	tw.Flush()
	fmt.Fprintln(env.Stdout)
	tw = newTable(env.Stdout)
	fmt.Fprintln(tw, "WORKER\tHOST\tVERSION\tSTATUS\tNAMESPACES\tHEARTBEAT")
	for _, wk := range s.Workers {
		ns := "*"
		if wk.Namespaces != nil && len(*wk.Namespaces) > 0 {
			ns = strings.Join(*wk.Namespaces, ",")
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", wk.WorkerId, wk.Hostname, wk.Version, wk.Status, ns, fmtTime(&wk.HeartbeatAt))
	}
	tw.Flush()
	if s.Endpoints != nil && len(*s.Endpoints) > 0 {
		fmt.Fprintln(env.Stdout)
		tw = newTable(env.Stdout)
		fmt.Fprintln(tw, "ENDPOINT\tNAMESPACE\tPROTOCOL\tBREAKER\tCALLS\tFAULTS\tREJECTED\tIN FLIGHT")
		for _, e := range *s.Endpoints {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%d\n", e.Pattern, orDash(e.Namespace), e.Protocol, e.BreakerState, e.Calls, e.Faults, e.Rejected, e.InFlight)
		}
		tw.Flush()
		for _, e := range *s.Endpoints {
			if e.Error != nil && *e.Error != "" {
				fmt.Fprintf(env.Stdout, "UNUSABLE %s (namespace %s), its steps wait: %s\n", e.Pattern, orDash(e.Namespace), *e.Error)
			}
		}
	}
	return nil
}

// TasksCommand shows or lists tasks.
var TasksCommand = cli.Command{
	Name: "tasks", Run: runTasks,
	Summary: "show a task with its steps, or list tasks",
	Usage:   "get TASK_UUID | list [--state S,...] [--namespace NS] [--template NAME] [--correlation-id UUID] [--limit N] [--cursor C] [--api URL] [--api-key KEY] [--json]",
}

func runTasks(ctx context.Context, env *cli.Env, args []string) error {
	var f taskListFlags
	sub, o, pos, err := parseSubcommand(env, "tasks", args, []string{"get", "list"}, func(fs *flag.FlagSet, sub string) {
		if sub == "list" || sub == "" {
			f.state = fs.String("state", "", "only tasks in these states (comma-separated: pending, steps_in_process, complete, blocked_by_failures, cancelled, resolved_manually)")
			f.namespace = fs.String("namespace", "", "only tasks of this namespace")
			f.template = fs.String("template", "", "only tasks of this template name")
			f.correlationID = fs.String("correlation-id", "", "only tasks with this correlation id (a UUID)")
			f.cursor = fs.String("cursor", "", "the next page, from the previous page's cursor")
			f.limit = fs.Int64("limit", 50, "page size (at most 500)")
		}
	})
	if err != nil {
		return err
	}
	c, err := o.client()
	if err != nil {
		return err
	}
	if sub == "get" {
		if len(pos) != 1 {
			return fmt.Errorf("%w: tasks get takes one task UUID", cli.ErrUsage)
		}
		return getTask(ctx, env, c, o, pos[0])
	}
	if err := noArguments(pos); err != nil {
		return err
	}
	return listTasks(ctx, env, c, o, f)
}

// getTask prints the task arg names, with its steps.
func getTask(ctx context.Context, env *cli.Env, c *client.ClientWithResponses, o *clientOptions, arg string) error {
	id, err := uuid.Parse(arg)
	if err != nil {
		return fmt.Errorf("%w: %q is not a UUID", cli.ErrUsage, arg)
	}
	res, err := c.GetTaskWithResponse(ctx, id, nil)
	if err != nil {
		return callFailed(err)
	}
	if err := apiError(res.HTTPResponse, res.Body); err != nil {
		return err
	}
	if o.json {
		return printJSON(env.Stdout, res.JSON200)
	}
	printTask(env.Stdout, res.JSON200)
	return nil
}

// taskListFlags are the filters of tasks list.
type taskListFlags struct {
	state, namespace, template, correlationID, cursor *string
	limit                                             *int64
}

// listTasks prints a page of the tasks the filters match.
func listTasks(ctx context.Context, env *cli.Env, c *client.ClientWithResponses, o *clientOptions, f taskListFlags) error {
	params := client.ListTasksParams{Limit: f.limit}
	if *f.correlationID != "" {
		id, err := uuid.Parse(*f.correlationID)
		if err != nil {
			return fmt.Errorf("%w: --correlation-id: %q is not a UUID", cli.ErrUsage, *f.correlationID)
		}
		params.CorrelationId = &id
	}
	if *f.state != "" {
		var states []client.ListTasksParamsState
		for s := range strings.SplitSeq(*f.state, ",") {
			states = append(states, client.ListTasksParamsState(strings.TrimSpace(s)))
		}
		params.State = &states
	}
	if *f.namespace != "" {
		params.Namespace = f.namespace
	}
	if *f.template != "" {
		params.Template = f.template
	}
	if *f.cursor != "" {
		params.Cursor = f.cursor
	}
	res, err := c.ListTasksWithResponse(ctx, &params)
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
	fmt.Fprintln(tw, "TASK\tNAMESPACE\tNAME\tVERSION\tSTATE\tSTEPS\tCREATED")
	for _, t := range res.JSON200.Items {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d/%d\t%s\n", t.TaskUuid, t.Namespace, t.Name, t.Version, t.State, t.StepsDone, t.StepsTotal, fmtTime(&t.CreatedAt))
	}
	tw.Flush()
	printMore(env, res.JSON200.NextCursor)
	return nil
}
