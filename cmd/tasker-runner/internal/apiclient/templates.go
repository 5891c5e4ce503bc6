package apiclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"

	"go.yaml.in/yaml/v3"

	"github.com/tasker-runner/tasker-runner/cmd/tasker-runner/internal/cli"
	"github.com/tasker-runner/tasker-runner/contracts"
	"github.com/tasker-runner/tasker-runner/openapi/client"
	"github.com/tasker-runner/tasker-runner/runner/workflow"
)

// templateContentType is how the CLI sends a template: the document itself
// (YAML, or JSON, which is YAML too), as the API takes it.
const templateContentType = "application/yaml"

// TemplatesCommand registers, validates, lists or prints task templates.
var TemplatesCommand = cli.Command{
	Name: "templates", Run: runTemplates,
	Summary: "register, validate, list or print task templates (Tasker's YAML format)",
	Usage:   "register FILE|- | validate FILE|- | list [--namespace NS] [--name NAME] [--limit N] [--cursor C] | get NS NAME [VERSION] [--api URL] [--api-key KEY] [--json]",
}

func runTemplates(ctx context.Context, env *cli.Env, args []string) error {
	var namespace, name, cursor *string
	var limit *int64
	sub, o, pos, err := parseSubcommand(env, "templates", args, []string{"register", "validate", "list", "get"}, func(fs *flag.FlagSet, sub string) {
		if sub == "list" || sub == "" {
			namespace = fs.String("namespace", "", "list: only templates of this namespace")
			name = fs.String("name", "", "list: only the versions of this template name")
			limit = fs.Int64("limit", 0, "list: page size (default 50)")
			cursor = fs.String("cursor", "", "list: the next page, from the previous page's cursor")
		}
	})
	if err != nil {
		return err
	}
	// Arguments are checked, and a file read, before any call.
	var doc []byte
	switch sub {
	case "register", "validate":
		if len(pos) != 1 {
			return fmt.Errorf("%w: templates %s takes one template file, or - for the standard input", cli.ErrUsage, sub)
		}
		if doc, err = readTemplate(pos[0], env.Stdin); err != nil {
			return err
		}
	case "list":
		if err := noArguments(pos); err != nil {
			return err
		}
	case "get":
		if len(pos) < 2 || len(pos) > 3 {
			return fmt.Errorf("%w: templates get takes a namespace, a name and optionally a version (default the latest)", cli.ErrUsage)
		}
	}
	c, err := o.client()
	if err != nil {
		return err
	}
	switch sub {
	case "register":
		return registerTemplate(ctx, env, o, c, doc)
	case "validate":
		return validateTemplate(ctx, env, o, c, doc)
	case "list":
		params := client.ListTemplatesParams{}
		for _, f := range []struct{ v, dst **string }{{&namespace, &params.Namespace}, {&name, &params.Name}, {&cursor, &params.Cursor}} {
			if **f.v != "" {
				*f.dst = *f.v
			}
		}
		if *limit > 0 {
			params.Limit = limit
		}
		return listTemplates(ctx, env, o, c, params)
	}
	var version *string
	if len(pos) == 3 {
		version = &pos[2]
	}
	return getTemplate(ctx, env, o, c, pos[0], pos[1], version)
}

// readTemplate reads a template document from a file, or from stdin for
// "-", refusing one larger than the API takes.
func readTemplate(name string, stdin io.Reader) ([]byte, error) {
	var r io.Reader
	if name == "-" {
		if stdin == nil {
			stdin = bytes.NewReader(nil)
		}
		r, name = stdin, "the standard input"
	} else {
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		r = f
	}
	doc, err := io.ReadAll(io.LimitReader(r, contracts.MaxTemplateBytes+1))
	switch {
	case err != nil:
		return nil, fmt.Errorf("reading %s: %w", name, err)
	case len(doc) > contracts.MaxTemplateBytes:
		return nil, fmt.Errorf("the template in %s is larger than %d bytes, the most the API takes", name, contracts.MaxTemplateBytes)
	}
	return doc, nil
}

func registerTemplate(ctx context.Context, env *cli.Env, o *clientOptions, c *client.ClientWithResponses, doc []byte) error {
	res, err := c.RegisterTemplateWithBodyWithResponse(ctx, templateContentType, bytes.NewReader(doc))
	if err != nil {
		return callFailed(err)
	}
	if err := apiError(res.HTTPResponse, res.Body); err != nil {
		return err
	}
	reg, verb := res.JSON201, "registered"
	if reg == nil {
		reg, verb = res.JSON200, "already registered, identical:"
	}
	if reg == nil {
		return fmt.Errorf("unexpected response %s", res.Status())
	}
	if o.json {
		return printJSON(env.Stdout, reg)
	}
	printWarnings(env, reg.Warnings)
	fmt.Fprintf(env.Stdout, "%s template %s/%s@%s (%d steps)\n", verb, reg.Namespace, reg.Name, reg.Version, reg.Steps)
	return nil
}

// errInvalidTemplate ends validate with exit 1 once the problems are printed.
var errInvalidTemplate = errors.New("the template is not valid")

func validateTemplate(ctx context.Context, env *cli.Env, o *clientOptions, c *client.ClientWithResponses, doc []byte) error {
	res, err := c.ValidateTemplateWithBodyWithResponse(ctx, templateContentType, bytes.NewReader(doc))
	if err != nil {
		return callFailed(err)
	}
	if err := apiError(res.HTTPResponse, res.Body); err != nil {
		return err
	}
	v := res.JSON200
	if v == nil {
		return fmt.Errorf("unexpected response %s", res.Status())
	}
	if o.json {
		if err := printJSON(env.Stdout, v); err != nil {
			return err
		}
	} else {
		printWarnings(env, v.Warnings)
		if v.Valid {
			what := fmt.Sprintf("%s/%s@%s (%d steps)", deref(v.Namespace), deref(v.Name), deref(v.Version), deref(v.Steps))
			switch deref(v.Registered) {
			case client.TemplateValidationRegisteredIdentical:
				fmt.Fprintf(env.Stdout, "valid: %s, registered with this same definition\n", what)
			case client.TemplateValidationRegisteredConflict:
				fmt.Fprintf(env.Stdout, "valid: %s, but this version is registered with a different definition: registering it would fail (409)\n", what)
			default:
				fmt.Fprintf(env.Stdout, "valid: %s, not registered yet\n", what)
			}
		} else {
			fmt.Fprintf(env.Stdout, "invalid: %d problem(s)\n", len(v.Problems))
			for _, p := range v.Problems {
				fmt.Fprintf(env.Stdout, "  %s\n", problemLine(p))
			}
		}
	}
	if !v.Valid {
		return errInvalidTemplate
	}
	return nil
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// problemLine formats a template problem as "path: message (line N)".
func problemLine(p client.TemplateProblem) string {
	return workflow.Problem{Path: p.Path, Message: p.Message, Line: int(deref(p.Line))}.String()
}

// printWarnings tells on stderr what the template has that has no effect.
func printWarnings(env *cli.Env, ws []client.TemplateProblem) {
	for _, w := range ws {
		fmt.Fprintf(env.Stderr, "warning: %s\n", problemLine(w))
	}
}

func listTemplates(ctx context.Context, env *cli.Env, o *clientOptions, c *client.ClientWithResponses, params client.ListTemplatesParams) error {
	res, err := c.ListTemplatesWithResponse(ctx, &params)
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
	fmt.Fprintln(tw, "NAMESPACE\tNAME\tVERSION\tSTEPS\tREGISTERED\tDESCRIPTION")
	for _, t := range res.JSON200.Items {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", t.Namespace, t.Name, t.Version, t.Steps, fmtTime(&t.CreatedAt), orDash(compactText(deref(t.Description), 60)))
	}
	tw.Flush()
	printMore(env, res.JSON200.NextCursor)
	return nil
}

// compactText puts s on one line, shortened to max runes.
func compactText(s string, max int) string {
	return shorten(string(bytes.Join(bytes.Fields([]byte(s)), []byte(" "))), max)
}

// getTemplate prints a registered template as YAML (its definition: the
// template as validated, defaults filled in), which registers back as the
// same version; --json prints the API's answer.
func getTemplate(ctx context.Context, env *cli.Env, o *clientOptions, c *client.ClientWithResponses, namespace, name string, version *string) error {
	res, err := c.GetTemplateWithResponse(ctx, namespace, name, &client.GetTemplateParams{Version: version})
	if err != nil {
		return callFailed(err)
	}
	if err := apiError(res.HTTPResponse, res.Body); err != nil {
		return err
	}
	if o.json {
		return printJSON(env.Stdout, res.JSON200)
	}
	var body struct {
		Definition json.RawMessage `json:"definition"`
	}
	if err := json.Unmarshal(res.Body, &body); err != nil {
		return fmt.Errorf("reading the answer: %w", err)
	}
	def := body.Definition
	// The database keeps JSON objects in its own key order: a parsed
	// template is written in the template's order (name, namespace_name,
	// version, ..., steps), as people write templates.
	if tpl, err := workflow.Parse(def); err == nil {
		if b, err := json.Marshal(tpl); err == nil {
			def = b
		}
	}
	out, err := jsonToYAML(def)
	if err != nil {
		return fmt.Errorf("printing the definition as YAML: %w", err)
	}
	_, err = env.Stdout.Write(out)
	return err
}

// yaml11Special matches the plain scalars YAML 1.1 reads as booleans or
// sexagesimal numbers, which YAML 1.2 reads as strings.
var yaml11Special = regexp.MustCompile(`^(?:[yYnN]|[yY]es|YES|[nN]o|NO|[oO]n|ON|[oO]ff|OFF|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?)$`)

// jsonToYAML re-encodes a JSON document as YAML, keeping the order of
// object keys and the type of every scalar (a string such as "1.10" or
// "true" stays a string).
func jsonToYAML(doc []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var build func() (*yaml.Node, error)
	build = func() (*yaml.Node, error) {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		switch v := tok.(type) {
		case json.Delim:
			n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
			end := json.Delim('}')
			if v == '[' {
				n.Kind, n.Tag, end = yaml.SequenceNode, "!!seq", ']'
			}
			for dec.More() {
				if n.Kind == yaml.MappingNode {
					k, err := build()
					if err != nil {
						return nil, err
					}
					n.Content = append(n.Content, k)
				}
				val, err := build()
				if err != nil {
					return nil, err
				}
				n.Content = append(n.Content, val)
			}
			if t, err := dec.Token(); err != nil || t != end {
				return nil, fmt.Errorf("unterminated %s", v)
			}
			return n, nil
		case string:
			n := &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v}
			if yaml11Special.MatchString(v) {
				// yaml.v3 writes these plain, but YAML 1.1 parsers (Ruby's,
				// Python's) read them as booleans or numbers.
				n.Style = yaml.DoubleQuotedStyle
			}
			return n, nil
		case json.Number:
			tag := "!!float"
			if _, err := strconv.ParseInt(string(v), 10, 64); err == nil {
				tag = "!!int"
			}
			return &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: string(v)}, nil
		case bool:
			return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(v)}, nil
		default:
			return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null"}, nil
		}
	}
	root, err := build()
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	enc := yaml.NewEncoder(&out)
	enc.SetIndent(2)
	if err := enc.Encode(root); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}
