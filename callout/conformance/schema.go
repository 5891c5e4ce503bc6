package conformance

import (
	"bytes"
	"embed"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// The JSON Schemas of the answers, copied from contracts/schema (a test
// fails when the copies drift): the suite runs wherever the command does,
// without the source tree.
//
//go:embed schema/*.schema.json
var schemaFS embed.FS

const (
	schemaBase   = "https://raw.githubusercontent.com/tasker-runner/tasker-runner/main/contracts/schema/"
	resultSchema = "step-result.schema.json"
	batchSchema  = "batch-response.schema.json"
)

var schemas = sync.OnceValues(func() (map[string]*jsonschema.Schema, error) {
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	names := []string{resultSchema, batchSchema}
	for _, n := range names {
		raw, err := schemaFS.ReadFile("schema/" + n)
		if err != nil {
			return nil, err
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", n, err)
		}
		if err := c.AddResource(schemaBase+n, doc); err != nil {
			return nil, err
		}
	}
	out := map[string]*jsonschema.Schema{}
	for _, n := range names {
		s, err := c.Compile(schemaBase + n)
		if err != nil {
			return nil, err
		}
		out[n] = s
	}
	return out, nil
})

var printer = message.NewPrinter(language.English)

// schemaProblems validates body against the named schema and returns every
// problem as "at /path: what" (nil when valid).
func schemaProblems(name string, body []byte) []string {
	all, err := schemas()
	if err != nil {
		return []string{"the suite's schemas do not compile: " + err.Error()}
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return []string{"not JSON: " + err.Error()}
	}
	err = all[name].Validate(inst)
	if err == nil {
		return nil
	}
	var ve *jsonschema.ValidationError
	if !errors.As(err, &ve) {
		return []string{err.Error()}
	}
	var out []string
	var walk func(e *jsonschema.ValidationError)
	walk = func(e *jsonschema.ValidationError) {
		if len(e.Causes) == 0 {
			loc := "/" + strings.Join(e.InstanceLocation, "/")
			out = append(out, fmt.Sprintf("at %s: %s", loc, e.ErrorKind.LocalizedString(printer)))
			return
		}
		for _, c := range e.Causes {
			walk(c)
		}
	}
	walk(ve)
	slices.Sort(out)
	return slices.Compact(out)
}
