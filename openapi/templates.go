package openapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"

	"github.com/tasker-runner/tasker-runner/contracts"
	"github.com/tasker-runner/tasker-runner/runner"
	"github.com/tasker-runner/tasker-runner/runner/workflow"
)

// TemplateDocument carries a task template as text. The template is sent
// as a string (YAML or JSON) rather than as a JSON object so that YAML
// templates travel unchanged and problems can name their lines.
type TemplateDocument struct {
	Template string `json:"template" minLength:"1" doc:"the task template in Tasker's format, as YAML or JSON text" example:"name: order_fulfillment\nnamespace_name: shop\nversion: 1.0.0\nsteps:\n  - name: charge\n    handler: {callable: payments.charge}\n"`
}

// TemplateSummary describes a registered template version.
type TemplateSummary struct {
	TemplateID  int64     `json:"template_id"`
	Namespace   string    `json:"namespace"`
	Name        string    `json:"name"`
	Version     string    `json:"version"`
	Description string    `json:"description,omitempty"`
	Steps       int       `json:"steps" doc:"steps the template declares"`
	CreatedAt   time.Time `json:"created_at" doc:"when this version was registered"`
}

// Template is a registered template version with its definition.
type Template struct {
	TemplateSummary
	Definition json.RawMessage `json:"definition" doc:"the validated template as JSON (defaults filled in)"`
}

// TemplateRegistration is the answer of registerTemplate: the stored
// template and what its document has that has no effect.
type TemplateRegistration struct {
	Template
	Warnings []TemplateProblem `json:"warnings" nullable:"false" doc:"keys of the document that load but have no effect, each with the reason: keys Tasker ignores too (loaded_from, retry.initial_delay) and keys Tasker acts on that tasker-runner does not (environments, publishes_events)"`
}

// TemplateList is a page of templates.
type TemplateList struct {
	Items      []TemplateSummary `json:"items" nullable:"false"`
	NextCursor string            `json:"next_cursor,omitempty" doc:"pass as cursor for the next page; absent on the last page"`
}

// TemplateProblem is one thing wrong with a template.
type TemplateProblem struct {
	Path    string `json:"path" doc:"where, e.g. steps[2].dependencies[0]; empty for the whole document"`
	Message string `json:"message"`
	Line    int    `json:"line,omitempty" doc:"1-based line in the document, when known"`
}

// TemplateValidation is the answer of validateTemplate.
type TemplateValidation struct {
	Valid      bool              `json:"valid"`
	Problems   []TemplateProblem `json:"problems" nullable:"false" doc:"every problem found, with its path"`
	Warnings   []TemplateProblem `json:"warnings" nullable:"false" doc:"keys that load but have no effect, with the reason (see registerTemplate); given for an invalid template too"`
	Namespace  string            `json:"namespace,omitempty"`
	Name       string            `json:"name,omitempty"`
	Version    string            `json:"version,omitempty"`
	Steps      int               `json:"steps,omitempty"`
	Registered string            `json:"registered,omitempty" enum:"new,identical,conflict" doc:"for a valid template: new (registering would create it), identical (this version is registered with the same definition), conflict (this version is registered with a different definition; registering would fail with 409)"`
}

type templateBodyInput struct {
	Body TemplateDocument
}

type templateOutput struct {
	Status int
	Body   Template
}

type registerTemplateOutput struct {
	Status int
	Body   TemplateRegistration
}

type getTemplateInput struct {
	Namespace string `path:"namespace" maxLength:"56"`
	Name      string `path:"name" maxLength:"128"`
	Version   string `query:"version" maxLength:"64" doc:"the version; absent: the most recently registered"`
}

type deleteTemplateInput struct {
	Namespace string `path:"namespace" maxLength:"56"`
	Name      string `path:"name" maxLength:"128"`
	Version   string `path:"version" maxLength:"64"`
}

type deleteTemplateOutput struct{}

type listTemplatesInput struct {
	Namespace string `query:"namespace" maxLength:"56"`
	Name      string `query:"name" maxLength:"128"`
	Cursor    string `query:"cursor" maxLength:"64" doc:"next_cursor of the previous page"`
	Limit     int    `query:"limit" minimum:"1" maximum:"500" default:"50" doc:"page size"`
}

type listTemplatesOutput struct {
	Body TemplateList
}

type validateTemplateOutput struct {
	Body TemplateValidation
}

func (s *Server) registerTemplates() {
	tags := []string{"templates"}
	bodyLimit := max(s.cfg.MaxRequestBytes, TemplateRequestBytes)
	huma.Register(s.api, huma.Operation{
		OperationID: "listTemplates",
		Method:      http.MethodGet,
		Path:        "/v1/templates",
		Summary:     "List templates",
		Description: "Registered template versions, most recently registered first.",
		Tags:        tags,
		Errors:      []int{http.StatusUnprocessableEntity, http.StatusServiceUnavailable},
	}, s.listTemplates)
	huma.Register(s.api, huma.Operation{
		OperationID: "getTemplate",
		Method:      http.MethodGet,
		Path:        "/v1/templates/{namespace}/{name}",
		Summary:     "Get a template",
		Description: "One version of a template (the latest unless version is given) with its definition.",
		Tags:        tags,
		Errors:      []int{http.StatusNotFound, http.StatusUnprocessableEntity, http.StatusServiceUnavailable},
	}, s.getTemplate)
	huma.Register(s.api, huma.Operation{
		OperationID: "deleteTemplate",
		Method:      http.MethodDelete,
		Path:        "/v1/templates/{namespace}/{name}/{version}",
		Summary:     "Delete a template version",
		Description: "Removes the template version together with its finished tasks (complete, cancelled, resolved_manually), " +
			"their steps and their history, in one transaction. A version with unfinished tasks (pending, steps_in_process, " +
			"blocked_by_failures) answers 409: cancel them or let them finish first.",
		Tags:          tags,
		DefaultStatus: http.StatusNoContent,
		Errors:        []int{http.StatusNotFound, http.StatusConflict, http.StatusUnprocessableEntity, http.StatusServiceUnavailable},
	}, s.deleteTemplate)
	huma.Register(s.api, huma.Operation{
		OperationID: "registerTemplate",
		Method:      http.MethodPost,
		Path:        "/v1/templates",
		Summary:     "Register a template",
		Description: "Parses and validates the template, then stores it: 201 when the version is new, 200 when the identical " +
			"version was already registered. Versions are immutable: a different definition under a registered version is " +
			"refused with 409. An invalid template answers 422 listing every problem at body.template.<path> (body.<path> " +
			"when the body is the template itself). " + templateBodyDoc,
		Tags:          tags,
		DefaultStatus: http.StatusCreated,
		MaxBodyBytes:  bodyLimit,
		RequestBody:   templateRequestBody(),
		Middlewares:   huma.Middlewares{s.templateDocumentBody},
		Responses: map[string]*huma.Response{
			"200": {Description: "Already registered", Content: map[string]*huma.MediaType{"application/json": {Schema: s.api.OpenAPI().Components.Schemas.Schema(reflect.TypeFor[TemplateRegistration](), true, "")}}},
		},
		Errors: []int{http.StatusBadRequest, http.StatusConflict, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType, http.StatusUnprocessableEntity, http.StatusServiceUnavailable},
	}, s.registerTemplate)
	huma.Register(s.api, huma.Operation{
		OperationID: "validateTemplate",
		Method:      http.MethodPost,
		Path:        "/v1/templates/validate",
		Summary:     "Validate a template (dry run)",
		Description: "Parses and validates the template without storing it. Answers 200 with valid false and every problem when it is invalid. " +
			templateBodyDoc,
		Tags:         tags,
		MaxBodyBytes: bodyLimit,
		RequestBody:  templateRequestBody(),
		Middlewares:  huma.Middlewares{s.templateDocumentBody},
		Errors:       []int{http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnsupportedMediaType, http.StatusUnprocessableEntity},
	}, s.validateTemplate)
}

// templateBodyDoc describes the two ways to send a template.
var templateBodyDoc = fmt.Sprintf("The body is either a JSON object whose template field holds the document as text, "+
	"or the document itself (YAML or JSON) with Content-Type application/yaml, application/x-yaml or text/yaml, "+
	"of at most %d bytes (413 beyond).", workflow.MaxTemplateBytes)

// templateMediaTypes are the content types in which registerTemplate and
// validateTemplate take the template document itself as the body.
var templateMediaTypes = []string{"application/yaml", "application/x-yaml", "text/yaml"}

// templateRequestBody documents the YAML bodies; huma adds the JSON one
// from the input type.
func templateRequestBody() *huma.RequestBody {
	rb := &huma.RequestBody{Content: map[string]*huma.MediaType{}}
	for _, ct := range templateMediaTypes {
		rb.Content[ct] = &huma.MediaType{Schema: &huma.Schema{
			Type:        "string",
			Description: fmt.Sprintf("the task template in Tasker's format, YAML or JSON, as it is written in its file (at most %d bytes)", workflow.MaxTemplateBytes),
			MinLength:   ptr(1),
			Examples:    []any{"name: order_fulfillment\nnamespace_name: shop\nversion: 1.0.0\nsteps:\n  - name: charge\n    handler: {callable: payments.charge}\n"},
		}}
	}
	return rb
}

func ptr[T any](v T) *T { return &v }

// templateDocumentKey marks, in a request's context, a template operation
// whose body was the template document itself (problems are then located
// at body.<path>, not body.template.<path>).
type templateDocumentKey struct{}

// templateDocumentBody is the middleware of registerTemplate and
// validateTemplate that takes the template document itself as the body
// (Content-Type application/yaml, application/x-yaml or text/yaml): it
// wraps the document into the JSON body the operation declares,
// {"template": "<document>"}, and marks the request so that problems name
// body.<path>. The document is limited to workflow.MaxTemplateBytes (413)
// and must be UTF-8 text (422); a charset other than UTF-8 answers 415.
func (s *Server) templateDocumentBody(ctx huma.Context, next func(huma.Context)) {
	mt, params, err := mime.ParseMediaType(ctx.Header("Content-Type"))
	if err != nil || !slices.Contains(templateMediaTypes, mt) {
		next(ctx)
		return
	}
	fail := func(status int, detail string, errs ...error) {
		_ = huma.WriteErr(s.api, ctx, status, detail, errs...)
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		fail(http.StatusUnsupportedMediaType, fmt.Sprintf("charset %q is not supported: templates are UTF-8", cs))
		return
	}
	r, _ := humago.Unwrap(ctx)
	tooLarge := func() {
		fail(http.StatusRequestEntityTooLarge, fmt.Sprintf("the template is larger than %d bytes", workflow.MaxTemplateBytes),
			fieldError("body", fmt.Sprintf("a template document is at most %d bytes", workflow.MaxTemplateBytes)))
	}
	if r.ContentLength > workflow.MaxTemplateBytes {
		tooLarge()
		return
	}
	doc, err := io.ReadAll(io.LimitReader(r.Body, workflow.MaxTemplateBytes+1))
	switch {
	case err != nil:
		fail(http.StatusBadRequest, "cannot read the request body: "+err.Error())
		return
	case len(doc) > workflow.MaxTemplateBytes:
		tooLarge()
		return
	}
	if len(bytes.TrimSpace(doc)) == 0 {
		fail(http.StatusUnprocessableEntity, "the template is not valid: 1 problem(s)", fieldError("body", "empty document: the body is the template"))
		return
	}
	if msg := contracts.TextProblem(string(doc)); msg != "" {
		fail(http.StatusUnprocessableEntity, "the template is not text", fieldError("body", msg))
		return
	}
	// YAML allows no control character but tab, line feed and carriage
	// return (nor does JSON, raw): refusing them here also bounds the JSON
	// wrapping below to twice the document.
	if i := bytes.IndexFunc(doc, func(r rune) bool { return r < 0x20 && r != '\t' && r != '\n' && r != '\r' }); i >= 0 {
		line := bytes.Count(doc[:i], []byte("\n")) + 1
		fail(http.StatusUnprocessableEntity, "the template is not valid: 1 problem(s)",
			fieldError("body", fmt.Sprintf("control character %U is not allowed in a template (line %d)", doc[i], line)))
		return
	}
	var body bytes.Buffer
	enc := json.NewEncoder(&body)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(TemplateDocument{Template: string(doc)}); err != nil {
		fail(http.StatusInternalServerError, "internal error")
		return
	}
	r.Body = io.NopCloser(&body)
	r.ContentLength = int64(body.Len())
	r.Header.Set("Content-Type", "application/json")
	next(huma.WithValue(ctx, templateDocumentKey{}, true))
}

// templateLocation is where problems of the template of a request are:
// body.template, or body when the body was the document itself.
func templateLocation(ctx context.Context) string {
	if ctx.Value(templateDocumentKey{}) != nil {
		return "body"
	}
	return "body.template"
}

// templateProblems converts workflow problems; never nil.
func templateProblems(ps []workflow.Problem) []TemplateProblem {
	out := make([]TemplateProblem, 0, len(ps))
	for _, p := range ps {
		out = append(out, TemplateProblem{Path: p.Path, Message: p.Message, Line: p.Line})
	}
	return out
}

func templateSummary(t runner.TemplateSummary) TemplateSummary {
	return TemplateSummary{TemplateID: t.ID, Namespace: t.Namespace, Name: t.Name, Version: t.Version, Description: t.Description, Steps: t.Steps, CreatedAt: t.CreatedAt}
}

func templateFromRow(t runner.Template) Template {
	steps := 0
	var def struct {
		Steps []json.RawMessage `json:"steps"`
	}
	if json.Unmarshal(t.Definition, &def) == nil {
		steps = len(def.Steps)
	}
	return Template{
		TemplateSummary: TemplateSummary{TemplateID: t.ID, Namespace: t.Namespace, Name: t.Name, Version: t.Version, Description: t.Description, Steps: steps, CreatedAt: t.CreatedAt},
		Definition:      json.RawMessage(t.Definition),
	}
}

func (s *Server) listTemplates(ctx context.Context, in *listTemplatesInput) (*listTemplatesOutput, error) {
	if s.cfg.Client == nil {
		return nil, errNoDatabase
	}
	f := runner.TemplateFilter{Namespace: in.Namespace, Name: in.Name, Limit: in.Limit}
	if in.Cursor != "" {
		id, err := decodeIDCursor(in.Cursor)
		if err != nil {
			return nil, err
		}
		f.Before = id
	}
	rows, more, err := s.cfg.Client.ListTemplates(ctx, f)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	out := &listTemplatesOutput{Body: TemplateList{Items: make([]TemplateSummary, 0, len(rows))}}
	for _, r := range rows {
		out.Body.Items = append(out.Body.Items, templateSummary(r))
	}
	if more {
		out.Body.NextCursor = encodeIDCursor(rows[len(rows)-1].ID)
	}
	return out, nil
}

func (s *Server) getTemplate(ctx context.Context, in *getTemplateInput) (*templateOutput, error) {
	if s.cfg.Client == nil {
		return nil, errNoDatabase
	}
	row, err := s.cfg.Client.GetTemplate(ctx, in.Namespace, in.Name, in.Version)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	return &templateOutput{Status: http.StatusOK, Body: templateFromRow(row)}, nil
}

func (s *Server) deleteTemplate(ctx context.Context, in *deleteTemplateInput) (*deleteTemplateOutput, error) {
	if s.cfg.Client == nil {
		return nil, errNoDatabase
	}
	_, err := s.cfg.Client.DeleteTemplate(ctx, in.Namespace, in.Name, in.Version)
	switch {
	case err == nil:
		return &deleteTemplateOutput{}, nil
	case errors.As(err, new(*runner.TemplateInUseError)):
		return nil, problem(http.StatusConflict, lastPart(err))
	case errors.Is(err, runner.ErrNotFound):
		return nil, problem(http.StatusNotFound, fmt.Sprintf("template %s/%s@%s is not registered", in.Namespace, in.Name, in.Version))
	}
	return nil, s.fail(ctx, err)
}

// templateError turns a template parse error into a problem, located
// under loc (body.template, or body).
func templateError(err error, loc string) error {
	var ve *workflow.ValidationError
	switch {
	case errors.As(err, &ve):
		return invalid(fmt.Sprintf("the template is not valid: %d problem(s)", len(ve.Problems)), problemsAt(loc, ve.Problems)...)
	case errors.As(err, new(*workflow.DefinitionTooLargeError)):
		return invalid(fmt.Sprintf("the template is too large to store: its definition is limited to %d bytes", workflow.MaxDefinitionBytes),
			fieldError(loc, strings.TrimPrefix(err.Error(), "workflow: ")+"; use fewer or shorter steps"))
	case errors.Is(err, workflow.ErrTemplateTooLarge):
		return problem(http.StatusRequestEntityTooLarge, fmt.Sprintf("the template is larger than %d bytes", workflow.MaxTemplateBytes),
			fieldError(loc, err.Error()))
	}
	return nil
}

func (s *Server) registerTemplate(ctx context.Context, in *templateBodyInput) (*registerTemplateOutput, error) {
	if s.cfg.Client == nil {
		return nil, errNoDatabase
	}
	info, err := s.cfg.Client.RegisterTemplate(ctx, []byte(in.Body.Template))
	if err != nil {
		if p := templateError(err, templateLocation(ctx)); p != nil {
			return nil, p
		}
		return nil, s.fail(ctx, err)
	}
	row, err := s.cfg.Client.GetTemplateByID(ctx, info.ID)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	out := &registerTemplateOutput{Status: http.StatusOK, Body: TemplateRegistration{Template: templateFromRow(row), Warnings: templateProblems(info.Warnings)}}
	if info.Created {
		out.Status = http.StatusCreated
	}
	return out, nil
}

func (s *Server) validateTemplate(ctx context.Context, in *templateBodyInput) (*validateTemplateOutput, error) {
	out := &validateTemplateOutput{Body: TemplateValidation{Problems: []TemplateProblem{}, Warnings: []TemplateProblem{}}}
	tpl, err := workflow.Parse([]byte(in.Body.Template))
	if err != nil {
		var ve *workflow.ValidationError
		if !errors.As(err, &ve) {
			if p := templateError(err, templateLocation(ctx)); p != nil {
				return nil, p
			}
			return nil, s.fail(ctx, err)
		}
		out.Body.Problems = templateProblems(ve.Problems)
		out.Body.Warnings = templateProblems(ve.Warnings)
		return out, nil
	}
	out.Body.Valid = true
	out.Body.Warnings = templateProblems(tpl.Warnings())
	out.Body.Namespace, out.Body.Name, out.Body.Version, out.Body.Steps = tpl.NamespaceName, tpl.Name, tpl.Version, len(tpl.Steps)
	if s.cfg.Client != nil {
		row, err := s.cfg.Client.GetTemplate(ctx, tpl.NamespaceName, tpl.Name, tpl.Version)
		switch {
		case errors.Is(err, runner.ErrNotFound):
			out.Body.Registered = "new"
		case err != nil:
			return nil, s.fail(ctx, err)
		default:
			def, err := json.Marshal(tpl)
			if err != nil {
				return nil, s.fail(ctx, err)
			}
			out.Body.Registered = "conflict"
			if sameJSON(def, row.Definition) {
				out.Body.Registered = "identical"
			}
		}
	}
	return out, nil
}

// sameJSON reports whether two JSON documents hold the same value.
func sameJSON(a, b []byte) bool {
	var va, vb any
	if json.Unmarshal(a, &va) != nil || json.Unmarshal(b, &vb) != nil {
		return false
	}
	return reflect.DeepEqual(va, vb)
}
