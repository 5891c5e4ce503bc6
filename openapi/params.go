package openapi

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/danielgtaylor/huma/v2"
	"github.com/google/uuid"

	"github.com/tasker-runner/tasker-runner/contracts"
)

// The rules of path and query parameters, applied once for both APIs: the
// JSON Schema huma derives from an operation's input struct (lengths,
// patterns, enums, formats, ranges) and the text rule of [unstorable]. Over
// REST huma validates the parameters it parsed against those schemas; the
// mirror hands the parameters of its request message, as text, to
// [Server.checkParams], which validates them against the very same schemas
// (taken from the REST operation), so that the two cannot disagree.

// rawParams are a request's path and query parameters as text, keyed by
// location ("path.task_uuid", "query.state"), as REST receives them. An
// absent query parameter has no key (or no values).
type rawParams map[string][]string

// opt is a query parameter's values: none for "" (proto3's unset string).
func opt(v string) []string {
	if v == "" {
		return nil
	}
	return []string{v}
}

// one is a path parameter's value.
func one(v string) []string { return []string{v} }

// optInt is an integer query parameter's values: none for 0 (unset).
func optInt(v int32) []string {
	if v == 0 {
		return nil
	}
	return []string{strconv.Itoa(int(v))}
}

// operationsByID indexes the operations of o by id, once when the
// [Server] is built rather than on every mirror call.
func operationsByID(o *huma.OpenAPI) map[string]*huma.Operation {
	out := map[string]*huma.Operation{}
	for _, item := range o.Paths {
		for _, op := range []*huma.Operation{item.Get, item.Put, item.Post, item.Delete, item.Patch} {
			if op != nil {
				out[op.OperationID] = op
			}
		}
	}
	return out
}

// paramText returns the problem with the first parameter value of op the
// database could not store (see [contracts.TextProblem]), or nil; values
// gives a parameter's values.
func paramText(op *huma.Operation, values func(p *huma.Param) []string) *huma.ErrorDetail {
	for _, p := range op.Parameters {
		if p == nil {
			continue
		}
		for _, v := range values(p) {
			if msg := contracts.TextProblem(v); msg != "" {
				return fieldError(p.In+"."+p.Name, msg)
			}
		}
	}
	return nil
}

// checkParams validates the parameters raw of the REST operation
// operationID as REST does: the text rule first (the first problem only,
// as [unstorable]), then each parameter's schema. A path parameter must be
// present and not empty (a URL's path segment cannot be). Problems are at
// the REST locations (query.namespace), with REST's wording of ranges.
func (s *Server) checkParams(operationID string, raw rawParams) error {
	op := s.ops[operationID]
	if op == nil {
		return fmt.Errorf("openapi: no operation %q", operationID)
	}
	if d := paramText(op, func(p *huma.Param) []string { return raw[p.In+"."+p.Name] }); d != nil {
		return invalid("validation failed", d)
	}
	registry := s.api.OpenAPI().Components.Schemas
	res := &huma.ValidateResult{}
	for _, p := range op.Parameters {
		if p == nil || (p.In != "path" && p.In != "query") {
			continue
		}
		loc := p.In + "." + p.Name
		values := raw[loc]
		if p.In == "path" && (len(values) == 0 || values[0] == "") {
			res.Add(huma.NewPathBuffer([]byte(loc), len(loc)), "", "expected length >= 1")
			continue
		}
		if p.Schema.Type != huma.TypeArray || p.Schema.Items == nil {
			for _, v := range values {
				validateParam(registry, p.Schema, loc, v, res)
			}
			continue
		}
		for i, v := range values { // as huma: query.state[1]
			validateParam(registry, p.Schema.Items, loc+"["+strconv.Itoa(i)+"]", v, res)
		}
	}
	return validationProblem(res, "")
}

// validationProblem is the problem listing the errors of res (REST's
// wording of ranges; an error that is not an [huma.ErrorDetail] is at
// loc), or nil when there are none. Parameters and mirrored bodies share
// it.
func validationProblem(res *huma.ValidateResult, loc string) error {
	if len(res.Errors) == 0 {
		return nil
	}
	details := make([]*huma.ErrorDetail, 0, len(res.Errors))
	for _, e := range res.Errors {
		var d *huma.ErrorDetail
		if errors.As(e, &d) {
			details = append(details, d)
		} else {
			details = append(details, fieldError(loc, e.Error()))
		}
	}
	rewordRanges(details)
	return invalid("validation failed", details...)
}

// validateParam validates one text value of a parameter at loc against
// its (item) schema, parsed first as huma parses it: integers, and uuids
// (fields of type uuid.UUID, which huma parses with their UnmarshalText
// and refuses with "invalid value: ...").
func validateParam(registry huma.Registry, schema *huma.Schema, loc, v string, res *huma.ValidateResult) {
	pb := huma.NewPathBuffer([]byte(loc), len(loc))
	var value any = v
	switch {
	case schema.Type == huma.TypeInteger:
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			res.Add(pb, v, "invalid integer")
			return
		}
		value = float64(n)
	case schema.Format == "uuid":
		if _, err := uuid.Parse(v); err != nil {
			res.Add(pb, v, "invalid value: "+err.Error())
			return
		}
	}
	huma.Validate(registry, schema, pb, huma.ModeWriteToServer, value, res)
}
