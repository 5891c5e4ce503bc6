package openapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/tasker-runner/tasker-runner/runner/store"
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
			"refused with 409. An invalid template answers 422 listing every problem at body.template.<path>.",
		Tags:          tags,
		DefaultStatus: http.StatusCreated,
		MaxBodyBytes:  bodyLimit,
		Responses: map[string]*huma.Response{
			"200": {Description: "Already registered", Content: map[string]*huma.MediaType{"application/json": {Schema: s.api.OpenAPI().Components.Schemas.Schema(reflect.TypeFor[Template](), true, "")}}},
		},
		Errors: []int{http.StatusBadRequest, http.StatusConflict, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity, http.StatusServiceUnavailable},
	}, s.registerTemplate)
	huma.Register(s.api, huma.Operation{
		OperationID:  "validateTemplate",
		Method:       http.MethodPost,
		Path:         "/v1/templates/validate",
		Summary:      "Validate a template (dry run)",
		Description:  "Parses and validates the template without storing it. Answers 200 with valid false and every problem when it is invalid.",
		Tags:         tags,
		MaxBodyBytes: bodyLimit,
		Errors:       []int{http.StatusBadRequest, http.StatusRequestEntityTooLarge, http.StatusUnprocessableEntity},
	}, s.validateTemplate)
}

func templateSummary(t store.TemplateSummary) TemplateSummary {
	return TemplateSummary{TemplateID: t.ID, Namespace: t.Namespace, Name: t.Name, Version: t.Version, Description: t.Description, Steps: t.Steps, CreatedAt: t.CreatedAt}
}

func templateFromRow(t store.Template) Template {
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
	if s.cfg.DB == nil {
		return nil, errNoDatabase
	}
	f := store.TemplateFilter{Namespace: in.Namespace, Name: in.Name, Limit: in.Limit}
	if in.Cursor != "" {
		id, err := decodeIDCursor(in.Cursor)
		if err != nil {
			return nil, err
		}
		f.Before = id
	}
	rows, more, err := store.ListTemplates(ctx, s.cfg.DB, f)
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
	if s.cfg.DB == nil {
		return nil, errNoDatabase
	}
	row, err := store.GetTemplate(ctx, s.cfg.DB, in.Namespace, in.Name, in.Version)
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
	case errors.As(err, new(*store.TemplateInUseError)):
		return nil, problem(http.StatusConflict, lastPart(err))
	case errors.Is(err, store.ErrNotFound):
		return nil, problem(http.StatusNotFound, fmt.Sprintf("template %s/%s@%s is not registered", in.Namespace, in.Name, in.Version))
	}
	return nil, s.fail(ctx, err)
}

// templateError turns a template parse error into a problem.
func templateError(err error) error {
	var ve *workflow.ValidationError
	switch {
	case errors.As(err, &ve):
		return invalid(fmt.Sprintf("the template is not valid: %d problem(s)", len(ve.Problems)), problemsAt("body.template", ve.Problems)...)
	case errors.As(err, new(*workflow.DefinitionTooLargeError)):
		return invalid(fmt.Sprintf("the template is too large to store: its definition is limited to %d bytes", workflow.MaxDefinitionBytes),
			fieldError("body.template", strings.TrimPrefix(err.Error(), "workflow: ")+"; use fewer or shorter steps"))
	case errors.Is(err, workflow.ErrTemplateTooLarge):
		return problem(http.StatusRequestEntityTooLarge, fmt.Sprintf("the template is larger than %d bytes", workflow.MaxTemplateBytes),
			fieldError("body.template", err.Error()))
	}
	return nil
}

func (s *Server) registerTemplate(ctx context.Context, in *templateBodyInput) (*templateOutput, error) {
	if s.cfg.Client == nil {
		return nil, errNoDatabase
	}
	info, err := s.cfg.Client.RegisterTemplate(ctx, []byte(in.Body.Template))
	if err != nil {
		if p := templateError(err); p != nil {
			return nil, p
		}
		return nil, s.fail(ctx, err)
	}
	row, err := store.GetTemplateByID(ctx, s.cfg.DB, info.ID)
	if err != nil {
		return nil, s.fail(ctx, err)
	}
	out := &templateOutput{Status: http.StatusOK, Body: templateFromRow(row)}
	if info.Created {
		out.Status = http.StatusCreated
	}
	return out, nil
}

func (s *Server) validateTemplate(ctx context.Context, in *templateBodyInput) (*validateTemplateOutput, error) {
	out := &validateTemplateOutput{Body: TemplateValidation{Problems: []TemplateProblem{}}}
	tpl, err := workflow.Parse([]byte(in.Body.Template))
	if err != nil {
		var ve *workflow.ValidationError
		if !errors.As(err, &ve) {
			if p := templateError(err); p != nil {
				return nil, p
			}
			return nil, s.fail(ctx, err)
		}
		for _, p := range ve.Problems {
			out.Body.Problems = append(out.Body.Problems, TemplateProblem{Path: p.Path, Message: p.Message, Line: p.Line})
		}
		return out, nil
	}
	out.Body.Valid = true
	out.Body.Namespace, out.Body.Name, out.Body.Version, out.Body.Steps = tpl.NamespaceName, tpl.Name, tpl.Version, len(tpl.Steps)
	if s.cfg.DB != nil {
		row, err := store.GetTemplate(ctx, s.cfg.DB, tpl.NamespaceName, tpl.Name, tpl.Version)
		switch {
		case errors.Is(err, store.ErrNotFound):
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
