package workflow

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"github.com/santhosh-tekuri/jsonschema/v6/kind"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

const schemaURL = "mem:///input_schema.json"

var printer = message.NewPrinter(language.English)

// noLoader refuses every external $ref: an input schema must be
// self-contained, and the runner must not read files or the network on behalf
// of a template.
type noLoader struct{}

func (noLoader) Load(url string) (any, error) {
	return nil, fmt.Errorf("external reference %q not allowed: input_schema must be self-contained", url)
}

// compileSchema compiles an input schema, reporting problems under
// "input_schema".
func compileSchema(raw json.RawMessage) (*jsonschema.Schema, []Problem) {
	const path = "input_schema"
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, []Problem{{Path: path, Message: "invalid JSON: " + err.Error()}}
	}
	switch doc.(type) {
	case map[string]any, bool:
	default:
		return nil, []Problem{{Path: path, Message: "invalid JSON Schema: must be an object or a boolean"}}
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.UseLoader(noLoader{})
	if err := c.AddResource(schemaURL, doc); err != nil {
		return nil, []Problem{{Path: path, Message: "invalid JSON Schema: " + err.Error()}}
	}
	sch, err := c.Compile(schemaURL)
	if err == nil {
		return sch, nil
	}
	var sve *jsonschema.SchemaValidationError
	var ve *jsonschema.ValidationError
	if errors.As(err, &sve) && errors.As(sve.Err, &ve) {
		probs := flatten(ve, path, doc)
		for i := range probs {
			probs[i].Message = "invalid JSON Schema: " + probs[i].Message
		}
		return nil, probs
	}
	return nil, []Problem{{Path: path, Message: "invalid JSON Schema: " + strings.ReplaceAll(err.Error(), schemaURL, "input_schema")}}
}

// ValidateContext checks a task context against the template's input_schema.
// The context must be a JSON object; empty input and null count as {}. Without
// an input_schema any object is valid. Problems name paths such as
// "context.order.id" in a [*ValidationError].
func (t *Template) ValidateContext(ctx json.RawMessage) error {
	c, err := t.prepared()
	if err != nil {
		return err
	}
	fail := func(path, msg string) error {
		return newValidationError(subjectContext, []Problem{{Path: path, Message: msg}})
	}
	var v any = map[string]any{}
	if len(bytes.TrimSpace(ctx)) > 0 {
		v, err = jsonschema.UnmarshalJSON(bytes.NewReader(ctx))
		if err != nil {
			return fail("context", "invalid JSON: "+err.Error())
		}
		if v == nil {
			v = map[string]any{}
		}
	}
	if _, ok := v.(map[string]any); !ok {
		return fail("context", "must be a JSON object")
	}
	if c.schema == nil {
		return nil
	}
	err = c.schema.Validate(v)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return fail("context", err.Error())
	}
	return newValidationError(subjectContext, flatten(ve, "context", v))
}

// flatten turns a jsonschema error tree into one problem per leaf, with
// instance paths rendered as prefix.a.b[0].
func flatten(ve *jsonschema.ValidationError, prefix string, instance any) []Problem {
	var out []Problem
	seen := map[Problem]bool{}
	emit := func(p Problem) {
		if !seen[p] {
			seen[p] = true
			out = append(out, p)
		}
	}
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) > 0 {
			for _, c := range e.Causes {
				walk(c)
			}
			return
		}
		path := instancePath(prefix, e.InstanceLocation, instance)
		switch k := e.ErrorKind.(type) {
		case *kind.Required:
			for _, m := range k.Missing {
				emit(Problem{Path: path + pathSegment(m), Message: "required"})
			}
		case *kind.AdditionalProperties:
			for _, m := range k.Properties {
				emit(Problem{Path: path + pathSegment(m), Message: "not allowed (additional property)"})
			}
		case *kind.Type:
			emit(Problem{Path: path, Message: fmt.Sprintf("must be %s, got %s", strings.Join(k.Want, " or "), k.Got)})
		default:
			emit(Problem{Path: path, Message: e.ErrorKind.LocalizedString(printer)})
		}
	}
	walk(ve)
	return out
}

var identPattern = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

func pathSegment(key string) string {
	if identPattern.MatchString(key) {
		return "." + key
	}
	return "[" + strconv.Quote(key) + "]"
}

// instancePath renders JSON pointer tokens, using the instance to tell array
// indices from object keys.
func instancePath(prefix string, tokens []string, instance any) string {
	var b strings.Builder
	b.WriteString(prefix)
	cur := instance
	for _, tok := range tokens {
		switch v := cur.(type) {
		case []any:
			b.WriteString("[" + tok + "]")
			if i, err := strconv.Atoi(tok); err == nil && i >= 0 && i < len(v) {
				cur = v[i]
			} else {
				cur = nil
			}
		case map[string]any:
			b.WriteString(pathSegment(tok))
			cur = v[tok]
		default:
			b.WriteString(pathSegment(tok))
			cur = nil
		}
	}
	return b.String()
}
