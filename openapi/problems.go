package openapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/tasker-runner/tasker-runner/runner"
	"github.com/tasker-runner/tasker-runner/runner/workflow"
)

// Every error answered is a *huma.ErrorModel: an RFC 9457 problem document
// (application/problem+json) with huma's errors[] extension for field
// problems (message, location, value).

// problem returns a problem document for status.
func problem(status int, detail string, errs ...*huma.ErrorDetail) error {
	return &huma.ErrorModel{Status: status, Title: http.StatusText(status), Detail: detail, Errors: errs}
}

// invalid is a 422 problem listing field problems.
func invalid(detail string, errs ...*huma.ErrorDetail) error {
	return problem(http.StatusUnprocessableEntity, detail, errs...)
}

// fieldError is one field problem.
func fieldError(location, message string) *huma.ErrorDetail {
	return &huma.ErrorDetail{Location: location, Message: message}
}

// problemsAt turns workflow problems into field problems under prefix:
// "steps[2].dependencies[0]" under "body.template" is
// "body.template.steps[2].dependencies[0]". A problem's path that already
// starts with the prefix's last segment (task contexts: "context.order.id")
// is put under the prefix's parent instead.
func problemsAt(prefix string, probs []workflow.Problem) []*huma.ErrorDetail {
	parent, last := "", prefix
	if i := strings.LastIndex(prefix, "."); i >= 0 {
		parent, last = prefix[:i], prefix[i+1:]
	}
	out := make([]*huma.ErrorDetail, 0, len(probs))
	for _, p := range probs {
		loc := prefix
		switch {
		case p.Path == "":
		case p.Path == last || strings.HasPrefix(p.Path, last+".") || strings.HasPrefix(p.Path, last+"["):
			loc = parent + "." + p.Path
		case strings.HasPrefix(p.Path, "["):
			loc = prefix + p.Path
		default:
			loc = prefix + "." + p.Path
		}
		msg := p.Message
		if p.Line > 0 {
			msg = fmt.Sprintf("%s (line %d)", msg, p.Line)
		}
		out = append(out, fieldError(loc, msg))
	}
	return out
}

// fail turns an error from the store or the runner into a problem: 404 for
// unknown ids, 409 for refused state changes and template version
// conflicts, 503 when the database is unreachable, and 500 (logged, no
// details) for anything else.
func (s *Server) fail(ctx context.Context, err error) error {
	var (
		se        huma.StatusError
		conflict  *runner.StateConflictError
		illegal   *runner.TransitionError
		missing   *runner.MissingError
		validated *workflow.ValidationError
	)
	switch {
	case errors.As(err, &se):
		return err
	case errors.As(err, &missing):
		return problem(http.StatusNotFound, strings.TrimPrefix(missing.Error(), "store: "))
	case errors.Is(err, runner.ErrNotFound):
		return problem(http.StatusNotFound, lastPart(err))
	case errors.As(err, &conflict):
		return problem(http.StatusConflict, strings.TrimPrefix(conflict.Error(), "store: "))
	case errors.As(err, &illegal):
		return problem(http.StatusConflict, "the state change was refused: "+illegal.Message)
	case errors.Is(err, runner.ErrTemplateConflict):
		return problem(http.StatusConflict, lastPart(err))
	case errors.As(err, &validated):
		return invalid("validation failed", problemsAt("body", validated.Problems)...)
	case errors.Is(err, context.Canceled) && ctx.Err() != nil:
		// The client went away; nobody reads this.
		return problem(499, "request cancelled")
	case runner.IsUnavailable(err):
		s.cfg.Logger.Warn("management API: the database is unavailable", "err", err)
		return unavailable()
	}
	s.cfg.Logger.Error("management API: unexpected error", "err", err)
	return problem(http.StatusInternalServerError, "internal error; the server log has the details")
}

// RetryAfterUnavailable is the Retry-After of a 503 answered because the
// database is unreachable (see [runner.IsUnavailable]).
const RetryAfterUnavailable = 2 * time.Second

// unavailable is the problem answered while the database is unreachable:
// 503 with a Retry-After header. A write may have committed although its
// answer was lost; a client retrying with the same idempotency key gets
// the task created first.
func unavailable() error {
	return huma.ErrorWithHeaders(
		problem(http.StatusServiceUnavailable, "the database is unavailable; retry later"),
		http.Header{"Retry-After": {strconv.Itoa(int(RetryAfterUnavailable / time.Second))}})
}

// lastPart drops the "store: ...: " context of an error message, keeping
// what a client can act on.
func lastPart(err error) string {
	msg := err.Error()
	for strings.HasPrefix(msg, "store: ") || strings.HasPrefix(msg, "runner: ") {
		msg = msg[strings.Index(msg, ": ")+2:]
	}
	return msg
}

// errNoDatabase answers operations of a server built without a database
// (as for exporting the spec).
var errNoDatabase = problem(http.StatusServiceUnavailable, "this server has no database configured")

// maxProblemValue bounds the value echoed back in a problem's errors[]:
// huma echoes a whole malformed body, which may be a megabyte.
const maxProblemValue = 256

// polishProblems is a response transformer for huma's own problems: it
// says plainly when a body is not JSON, and shortens long string values
// echoed back.
func polishProblems(_ huma.Context, _ string, v any) (any, error) {
	em, ok := v.(*huma.ErrorModel)
	if !ok {
		return v, nil
	}
	for _, d := range em.Errors {
		if d == nil {
			continue
		}
		if em.Status == http.StatusBadRequest && d.Location == "body" && em.Detail == "validation failed" {
			em.Detail = "the request body is not valid JSON"
		}
		if str, ok := d.Value.(string); ok && len(str) > maxProblemValue {
			d.Value = strings.ToValidUTF8(str[:maxProblemValue], "") + "…"
		}
	}
	return v, nil
}
