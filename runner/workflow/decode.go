package workflow

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/tasker-runner/tasker-runner/contracts"
	"github.com/tasker-runner/tasker-runner/internal/suggest"
)

// Limits protecting the decoder from hostile documents.
const (
	maxNodes = 1_000_000 // nodes visited, counting every alias expansion
	maxDepth = 200       // nesting of mappings and sequences
)

// Keys accepted at each level: the fields of tasker-core's TaskTemplate,
// StepDefinition, HandlerDefinition, RetryConfiguration and
// BatchConfiguration, their serde aliases (step_type, depends_on), and the
// keys Tasker's own templates carry that Tasker ignores (loaded_from,
// task_handler, a step's lifecycle, retry.initial_delay and max_delay),
// which load with a warning. Any other key is an error, with a hint when it
// looks like a misspelling of one of these.
var (
	templateKeys = []string{
		"name", "namespace_name", "version", "description", "input_schema", "steps",
		"metadata", "task_handler", "system_dependencies", "domain_events", "lifecycle", "environments",
		"loaded_from",
	}
	stepKeys = []string{
		"name", "description", "type", "step_type", "handler", "dependencies", "depends_on", "retry", "timeout_seconds",
		"batch_config", "system_dependency", "publishes_events", "result_schema", "lifecycle", "composition",
	}
	handlerKeys = []string{"callable", "method", "resolver", "initialization"}
	retryKeys   = []string{"retryable", "max_attempts", "limit", "backoff", "backoff_base_ms", "max_backoff_ms", "initial_delay", "max_delay"}
	batchKeys   = []string{"batch_size", "parallelism", "cursor_field", "worker_template", "failure_strategy"}
)

// Warnings about keys that load but do nothing here. Each says why, so that
// a Tasker user knows what behaves differently.
const (
	warnLoadedFrom    = "ignored, as Tasker ignores it (it names the file Tasker's loader read the template from)"
	warnTaskHandler   = "ignored, as Tasker ignores it (Tasker dropped task handlers: each step runs its own handler)"
	warnLifecycle     = "has no effect here: tasker-runner applies no per-template staleness thresholds (Tasker moves a task stuck past them to its DLQ or to error)"
	warnEnvironments  = "not applied here: the steps run as defined above whatever the environment (a Tasker worker applies the overrides of the environment it runs in)"
	warnStepLifecycle = "ignored, as Tasker ignores it (lifecycle thresholds belong at the template's top level)"
	warnPublishes     = "has no effect here: tasker-runner publishes no domain events"
	warnResolver      = "has no effect here: handler endpoints are matched by callable alone and the resolver hint is not sent to handlers"
	warnRetryDelay    = "ignored, as Tasker ignores it: the first retry waits about backoff_base_ms and no wait exceeds max_backoff_ms"
	warnLimit         = "read as max_attempts here, but Tasker ignores limit (and makes 3 attempts unless max_attempts is set): write max_attempts"
	warnZeroAttempts  = "0 means one attempt, never retried, as in Tasker (which always runs the first attempt): loads as 1"
	errComposition    = "not supported: tasker-runner runs every step through its handler and cannot execute grammar compositions (Tasker's virtual handlers); remove it and give the step a handler that does the work"
)

// parseDocument turns YAML or JSON text into a yaml node tree. Syntax errors
// come back as a *ValidationError naming the line.
func parseDocument(doc []byte) (*yaml.Node, error) {
	trimmed := bytes.TrimLeft(doc, " \t\r\n\ufeff")
	if len(trimmed) > 0 && trimmed[0] == '{' {
		root, jerr := parseJSON(doc)
		if jerr == nil {
			return root, nil
		}
		// Not JSON after all? A YAML flow mapping also starts with '{'.
		if root, yerr := parseYAML(doc); yerr == nil {
			return root, nil
		}
		return nil, jerr
	}
	return parseYAML(doc)
}

var yamlLineRe = regexp.MustCompile(`^(?:yaml: )?line (\d+): `)

func parseYAML(doc []byte) (*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(doc))
	var n yaml.Node
	if err := dec.Decode(&n); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, newValidationError(subjectTemplate, []Problem{{Message: "empty document"}})
		}
		return nil, yamlSyntaxError(err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		line := extra.Line
		if err != nil {
			return nil, yamlSyntaxError(err)
		}
		return nil, newValidationError(subjectTemplate, []Problem{{Line: line, Message: "invalid YAML: more than one document"}})
	}
	if n.Kind != yaml.DocumentNode || len(n.Content) == 0 {
		return nil, newValidationError(subjectTemplate, []Problem{{Message: "empty document"}})
	}
	return n.Content[0], nil
}

func yamlSyntaxError(err error) error {
	var msgs []string
	var te *yaml.TypeError
	if errors.As(err, &te) {
		msgs = te.Errors
	} else {
		msgs = []string{err.Error()}
	}
	probs := make([]Problem, 0, len(msgs))
	for _, m := range msgs {
		p := Problem{Message: m}
		if sm := yamlLineRe.FindStringSubmatch(m); sm != nil {
			p.Line, _ = strconv.Atoi(sm[1])
			p.Message = m[len(sm[0]):]
		} else {
			p.Message = strings.TrimPrefix(m, "yaml: ")
		}
		p.Message = "invalid YAML: " + p.Message
		probs = append(probs, p)
	}
	return newValidationError(subjectTemplate, probs)
}

// parseJSON builds a yaml node tree from JSON so that one decoder serves both
// formats (yaml.v3 itself rejects some valid JSON, such as the \/ escape).
func parseJSON(doc []byte) (*yaml.Node, error) {
	var nl []int // offsets of newlines
	for i, b := range doc {
		if b == '\n' {
			nl = append(nl, i)
		}
	}
	lineAt := func(off int64) int { return sort.SearchInts(nl, int(off)) + 1 }
	fail := func(off int64, msg string) error {
		return newValidationError(subjectTemplate, []Problem{{Line: lineAt(off), Message: "invalid JSON: " + msg}})
	}

	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var build func(depth int) (*yaml.Node, error)
	build = func(depth int) (*yaml.Node, error) {
		tok, err := dec.Token()
		off := dec.InputOffset()
		if err != nil {
			var se *json.SyntaxError
			if errors.As(err, &se) {
				return nil, fail(se.Offset, se.Error())
			}
			if errors.Is(err, io.EOF) {
				err = io.ErrUnexpectedEOF
			}
			return nil, fail(off, err.Error())
		}
		n := &yaml.Node{Line: lineAt(off - 1)}
		switch v := tok.(type) {
		case json.Delim:
			if depth > maxDepth {
				return nil, fail(off, "nested too deeply")
			}
			closing := json.Delim('}')
			n.Kind, n.Tag = yaml.MappingNode, "!!map"
			if v == '[' {
				n.Kind, n.Tag, closing = yaml.SequenceNode, "!!seq", ']'
			}
			for dec.More() {
				if n.Kind == yaml.MappingNode {
					k, err := build(depth + 1)
					if err != nil {
						return nil, err
					}
					n.Content = append(n.Content, k)
				}
				val, err := build(depth + 1)
				if err != nil {
					return nil, err
				}
				n.Content = append(n.Content, val)
			}
			if end, err := dec.Token(); err != nil || end != closing {
				return nil, fail(dec.InputOffset(), "unterminated "+string(v))
			}
		case string:
			n.Kind, n.Tag, n.Value = yaml.ScalarNode, "!!str", v
		case json.Number:
			n.Kind, n.Tag, n.Value = yaml.ScalarNode, "!!float", string(v)
			if _, err := strconv.ParseInt(string(v), 10, 64); err == nil {
				n.Tag = "!!int"
			}
		case bool:
			n.Kind, n.Tag, n.Value = yaml.ScalarNode, "!!bool", strconv.FormatBool(v)
		case nil:
			n.Kind, n.Tag, n.Value = yaml.ScalarNode, "!!null", "null"
		}
		return n, nil
	}
	root, err := build(0)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fail(dec.InputOffset(), "unexpected data after the top-level value")
	}
	return root, nil
}

// decoder walks a node tree into a Template, collecting problems with paths.
type decoder struct {
	problems []Problem
	warnings []Problem         // keys accepted that have no effect here
	lines    map[string]int    // path -> line, to locate semantic problems
	aliases  map[string]string // canonical path -> path as written (limit, step_type)
	nodes    int
	tooBig   bool
	oneLine  bool // the whole document is on one line: lines carry no information
}

func newDecoder(root *yaml.Node) *decoder {
	d := &decoder{lines: map[string]int{}, aliases: map[string]string{}}
	d.oneLine = root.Line <= 1 && lastLine(root) <= 1
	return d
}

func lastLine(n *yaml.Node) int {
	l := n.Line
	if len(n.Content) > 0 {
		l = max(l, lastLine(n.Content[len(n.Content)-1]))
	}
	return l
}

func (d *decoder) add(path string, n *yaml.Node, format string, args ...any) {
	p := Problem{Path: path, Message: fmt.Sprintf(format, args...)}
	if n != nil {
		p.Line = n.Line
	}
	d.problems = append(d.problems, p)
}

// warn records a warning at path; its line is filled in from the key's.
func (d *decoder) warn(path, msg string) {
	d.warnings = append(d.warnings, Problem{Path: path, Message: msg})
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func index(path string, i int) string { return path + "[" + strconv.Itoa(i) + "]" }

// deref follows aliases, charging the node budget.
func (d *decoder) deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	d.nodes++
	if d.nodes > maxNodes && !d.tooBig {
		d.tooBig = true
		d.add("", nil, "document too complex (more than %d nodes after alias expansion)", maxNodes)
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n == nil || (n.Kind == yaml.ScalarNode && n.Tag == "!!null")
}

type entry struct {
	key  string
	k, v *yaml.Node
}

// entries returns the key/value pairs of a mapping, resolving YAML merge keys
// (`<<: *anchor`); explicit keys win over merged ones. A null node is an empty
// mapping. ok is false (and a problem recorded) when n is not a mapping.
func (d *decoder) entries(n *yaml.Node, path string, depth int) (out []entry, ok bool) {
	n = d.deref(n)
	if isNull(n) || d.tooBig {
		return nil, true
	}
	if n.Kind != yaml.MappingNode {
		d.add(path, n, "must be a mapping, got %s", describe(n))
		return nil, false
	}
	if depth > maxDepth {
		d.add(path, n, "nested too deeply")
		return nil, false
	}
	seen := map[string]bool{}
	var merged []entry
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := d.deref(n.Content[i]), n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.Tag == "!!merge" {
			src := d.deref(v)
			var sources []*yaml.Node
			if src.Kind == yaml.SequenceNode {
				sources = src.Content
			} else {
				sources = []*yaml.Node{src}
			}
			for _, s := range sources {
				es, _ := d.entries(s, path, depth+1)
				merged = append(merged, es...)
			}
			continue
		}
		if k.Kind != yaml.ScalarNode {
			d.add(path, k, "mapping keys must be scalars")
			continue
		}
		if msg := contracts.TextProblem(k.Value); msg != "" {
			d.add(path, k, "a key %s", msg)
			continue
		}
		if seen[k.Value] {
			d.add(join(path, k.Value), k, "duplicate key")
			continue
		}
		seen[k.Value] = true
		out = append(out, entry{k.Value, k, v})
	}
	for _, e := range merged { // earlier merge sources win, as in YAML 1.1
		if !seen[e.key] {
			seen[e.key] = true
			out = append(out, e)
		}
	}
	return out, true
}

// fields decodes a mapping with a closed set of keys.
func (d *decoder) fields(n *yaml.Node, path string, allowed []string, fn func(key string, v *yaml.Node, p string)) bool {
	es, ok := d.entries(n, path, 0)
	for _, e := range es {
		p := join(path, e.key)
		d.lines[p] = e.k.Line
		if path == "" && strings.HasPrefix(e.key, "x-") {
			continue // top-level extension key, e.g. a home for YAML anchors
		}
		if !slices.Contains(allowed, e.key) {
			d.add(p, e.k, "%s", unknownField(e.key, allowed))
			continue
		}
		fn(e.key, e.v, p)
	}
	return ok
}

func unknownField(key string, allowed []string) string {
	if best, dist := suggest.Closest(strings.ToLower(key), allowed); best != "" && dist < 3 {
		return fmt.Sprintf("unknown field; did you mean %q?", best)
	}
	return "unknown field; allowed: " + strings.Join(allowed, ", ")
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	switch n.Tag {
	case "!!null":
		return "null"
	case "!!bool":
		return "a boolean"
	case "!!int", "!!float":
		return "a number"
	case "!!str":
		return "a string"
	}
	// A custom tag is the document's own text: quoted, so a tag that is not
	// valid UTF-8 cannot make the message invalid too.
	return "a value tagged " + strconv.Quote(n.Tag)
}

// str decodes an optional string. set is false for an absent or null value.
func (d *decoder) str(n *yaml.Node, path string) (s string, set bool) {
	n = d.deref(n)
	if isNull(n) {
		return "", false
	}
	if n.Kind != yaml.ScalarNode || n.Tag != "!!str" {
		d.add(path, n, "must be a string, got %s", describe(n))
		return "", false
	}
	if !d.storable(path, n, n.Value) {
		return "", false
	}
	return n.Value, true
}

// storable reports whether the database can store s (no NUL character,
// valid UTF-8), recording a problem when it cannot.
func (d *decoder) storable(path string, n *yaml.Node, s string) bool {
	if msg := contracts.TextProblem(s); msg != "" {
		d.add(path, n, "%s", msg)
		return false
	}
	return true
}

// text decodes a scalar as written, so `version: 1.0` is "1.0".
func (d *decoder) text(n *yaml.Node, path string) string {
	n = d.deref(n)
	if isNull(n) {
		return ""
	}
	if n.Kind != yaml.ScalarNode || n.Tag == "!!bool" {
		d.add(path, n, "must be a string, got %s", describe(n))
		return ""
	}
	if !d.storable(path, n, n.Value) {
		return ""
	}
	return n.Value
}

// integer decodes an optional integer.
func (d *decoder) integer(n *yaml.Node, path string) (v int, set bool) {
	n = d.deref(n)
	if isNull(n) {
		return 0, false
	}
	if n.Kind == yaml.ScalarNode {
		switch n.Tag {
		case "!!int":
			var i int64
			if err := n.Decode(&i); err == nil && i >= math.MinInt32 && i <= math.MaxInt32 {
				return int(i), true
			}
			d.add(path, n, "out of range")
			return 0, false
		case "!!float":
			f, err := strconv.ParseFloat(n.Value, 64)
			if err == nil && f == math.Trunc(f) && f >= math.MinInt32 && f <= math.MaxInt32 {
				return int(f), true
			}
		}
	}
	d.add(path, n, "must be an integer, got %s", describe(n))
	return 0, false
}

// positive decodes an optional integer where an explicit value must be >= 1
// (zero means "unset" in the Go structs, so it must be caught here).
func (d *decoder) positive(n *yaml.Node, path string) int {
	v, set := d.integer(n, path)
	if set && v == 0 {
		d.add(path, d.deref(n), "must be >= 1")
	}
	return v
}

func (d *decoder) boolean(n *yaml.Node, path string) *bool {
	n = d.deref(n)
	if isNull(n) {
		return nil
	}
	var b bool
	if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" || n.Decode(&b) != nil {
		d.add(path, n, "must be a boolean, got %s", describe(n))
		return nil
	}
	return &b
}

func (d *decoder) stringList(n *yaml.Node, path string) []string {
	n = d.deref(n)
	if isNull(n) {
		return []string{}
	}
	if n.Kind != yaml.SequenceNode {
		d.add(path, n, "must be a list, got %s", describe(n))
		return []string{}
	}
	out := make([]string, 0, len(n.Content))
	for i, c := range n.Content {
		p := index(path, i)
		d.lines[p] = c.Line
		if s, ok := d.str(c, p); ok {
			out = append(out, s)
		} else if isNull(d.deref(c)) {
			d.add(p, c, "must be a string, got null")
		}
	}
	return out
}

// value converts a node into plain Go values that encoding/json can write:
// map[string]any, []any, string, int, float64, bool, nil.
func (d *decoder) value(n *yaml.Node, path string, depth int) (any, bool) {
	n = d.deref(n)
	if d.tooBig {
		return nil, false
	}
	if depth > maxDepth {
		d.add(path, n, "nested too deeply")
		return nil, false
	}
	switch n.Kind {
	case yaml.MappingNode:
		es, _ := d.entries(n, path, depth)
		m := make(map[string]any, len(es))
		ok := true
		for _, e := range es {
			v, vok := d.value(e.v, join(path, e.key), depth+1)
			ok = ok && vok
			m[e.key] = v
		}
		return m, ok
	case yaml.SequenceNode:
		s := make([]any, len(n.Content))
		ok := true
		for i, c := range n.Content {
			v, vok := d.value(c, index(path, i), depth+1)
			ok = ok && vok
			s[i] = v
		}
		return s, ok
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!null":
			return nil, true
		case "!!bool":
			var b bool
			if n.Decode(&b) == nil {
				return b, true
			}
		case "!!int":
			var i int64
			if n.Decode(&i) == nil {
				return int(i), true
			}
			var f float64
			if n.Decode(&f) == nil {
				return f, true
			}
		case "!!float":
			var f float64
			if n.Decode(&f) == nil {
				if math.IsInf(f, 0) || math.IsNaN(f) {
					d.add(path, n, "%s cannot be represented in JSON", n.Value)
					return nil, false
				}
				return f, true
			}
		case "!!str", "!!timestamp", "!!binary", "!":
			if !d.storable(path, n, n.Value) {
				return nil, false
			}
			return n.Value, true
		}
		d.add(path, n, "unsupported value %q (tag %s)", n.Value, n.Tag)
		return nil, false
	}
	d.add(path, n, "unsupported YAML node")
	return nil, false
}

// raw converts a node into JSON text, or nil for an absent/null value.
func (d *decoder) raw(n *yaml.Node, path string) json.RawMessage {
	if isNull(d.deref(n)) {
		return nil
	}
	v, ok := d.value(n, path, 0)
	if !ok {
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		d.add(path, n, "cannot be represented as JSON: %v", err)
		return nil
	}
	return b
}

func (d *decoder) template(root *yaml.Node) *Template {
	t := &Template{}
	ok := d.fields(root, "", templateKeys, func(key string, v *yaml.Node, p string) {
		switch key {
		case "name":
			t.Name, _ = d.str(v, p)
		case "namespace_name":
			t.NamespaceName, _ = d.str(v, p)
		case "version":
			t.Version = d.text(v, p)
		case "description":
			t.Description, _ = d.str(v, p)
		case "input_schema":
			t.InputSchema = d.raw(v, p)
		case "steps":
			t.Steps = d.steps(v, p)
		case "metadata":
			t.Metadata = d.raw(v, p)
		case "task_handler":
			t.TaskHandler = d.raw(v, p)
			if !emptyJSON(t.TaskHandler) {
				d.warn(p, warnTaskHandler)
			}
		case "system_dependencies":
			t.SystemDependencies = d.raw(v, p)
		case "domain_events":
			t.DomainEvents = d.raw(v, p)
		case "lifecycle":
			t.Lifecycle = d.raw(v, p)
			if !emptyJSON(t.Lifecycle) {
				d.warn(p, warnLifecycle)
			}
		case "environments":
			t.Environments = d.raw(v, p)
			if !emptyJSON(t.Environments) {
				d.warn(p, warnEnvironments)
			}
		case "loaded_from": // any value: Tasker does not read it
			if !isNull(d.deref(v)) {
				d.warn(p, warnLoadedFrom)
			}
		}
	})
	if !ok {
		return nil
	}
	return t
}

// emptyJSON reports whether raw is absent or an empty object or list.
func emptyJSON(raw json.RawMessage) bool {
	s := string(raw)
	return s == "" || s == "null" || s == "{}" || s == "[]"
}

func (d *decoder) steps(n *yaml.Node, path string) []Step {
	n = d.deref(n)
	if isNull(n) {
		return nil
	}
	if n.Kind != yaml.SequenceNode {
		d.add(path, n, "must be a list, got %s", describe(n))
		return nil
	}
	if len(n.Content) > MaxSteps {
		d.add(path, n, "%d steps; at most %d are allowed", len(n.Content), MaxSteps)
		return nil
	}
	steps := make([]Step, len(n.Content))
	for i, c := range n.Content {
		p := index(path, i)
		d.lines[p] = c.Line
		steps[i] = d.step(c, p)
	}
	return steps
}

func (d *decoder) step(n *yaml.Node, path string) Step {
	s := Step{Dependencies: []string{}}
	var typ, alias string
	var deps, dependsOn []string
	var depsSet, dependsOnSet bool
	d.fields(n, path, stepKeys, func(key string, v *yaml.Node, p string) {
		switch key {
		case "name":
			s.Name, _ = d.str(v, p)
		case "description":
			s.Description, _ = d.str(v, p)
		case "type":
			typ, _ = d.str(v, p)
		case "step_type":
			alias, _ = d.str(v, p)
		case "handler":
			s.Handler = d.handler(v, p)
		case "dependencies":
			deps, depsSet = d.stringList(v, p), true
		case "depends_on": // Tasker's alias (serde alias of dependencies)
			dependsOn, dependsOnSet = d.stringList(v, p), true
		case "retry":
			s.Retry = d.retry(v, p)
		case "timeout_seconds":
			s.TimeoutSeconds = d.positive(v, p)
		case "batch_config":
			if !isNull(d.deref(v)) { // Tasker writes batch_config: null on every step
				s.BatchConfig = d.batchConfig(v, p)
			}
		case "system_dependency":
			s.SystemDependency, _ = d.str(v, p)
		case "publishes_events":
			s.PublishesEvents = d.raw(v, p)
			if !emptyJSON(s.PublishesEvents) {
				d.warn(p, warnPublishes)
			}
		case "result_schema":
			s.ResultSchema = d.raw(v, p)
		case "lifecycle":
			s.Lifecycle = d.raw(v, p)
			if !emptyJSON(s.Lifecycle) {
				d.warn(p, warnStepLifecycle)
			}
		case "composition":
			if !isNull(d.deref(v)) {
				d.add(p, nil, "%s", errComposition)
			}
		}
	})
	switch {
	case depsSet && dependsOnSet && !slices.Equal(deps, dependsOn):
		d.add(join(path, "depends_on"), nil, "conflicts with dependencies; depends_on is an alias of dependencies")
	case depsSet:
		s.Dependencies = deps
	case dependsOnSet:
		s.Dependencies = dependsOn
		d.aliases[join(path, "dependencies")] = join(path, "depends_on")
	}
	switch {
	case typ != "" && alias != "" && typ != alias:
		d.add(join(path, "step_type"), nil, "conflicts with type %q", typ)
	case typ == "" && alias != "":
		typ = alias
		d.aliases[join(path, "type")] = join(path, "step_type")
	}
	switch typ {
	case "":
		typ = string(StepStandard)
	case "deferred": // Tasker's older name
		typ = string(StepDeferredConvergence)
	}
	s.Type = StepType(typ)
	return s
}

func (d *decoder) handler(n *yaml.Node, path string) Handler {
	var h Handler
	d.fields(n, path, handlerKeys, func(key string, v *yaml.Node, p string) {
		switch key {
		case "callable":
			h.Callable, _ = d.str(v, p)
		case "method":
			h.Method, _ = d.str(v, p)
		case "resolver":
			h.Resolver, _ = d.str(v, p)
			if h.Resolver != "" {
				d.warn(p, warnResolver)
			}
		case "initialization":
			if vn := d.deref(v); !isNull(vn) && vn.Kind != yaml.MappingNode {
				d.add(p, vn, "must be a mapping, got %s", describe(vn))
				return
			}
			if val, ok := d.value(v, p, 0); ok {
				if m, _ := val.(map[string]any); len(m) > 0 {
					h.Initialization = m
				}
			}
		}
	})
	return h
}

func (d *decoder) retry(n *yaml.Node, path string) Retry {
	var r Retry
	var limit, maxAttempts int
	var limitSet, maxSet bool
	var limitNode *yaml.Node
	d.fields(n, path, retryKeys, func(key string, v *yaml.Node, p string) {
		switch key {
		case "retryable":
			r.Retryable = d.boolean(v, p)
		case "max_attempts":
			maxAttempts, maxSet = d.integer(v, p)
		case "limit":
			limit, limitSet = d.integer(v, p)
			limitNode = v
		case "backoff":
			s, _ := d.str(v, p)
			r.Strategy = BackoffStrategy(s)
		case "backoff_base_ms":
			r.BackoffBaseMs = d.positive(v, p)
		case "max_backoff_ms":
			r.MaxBackoffMs = d.positive(v, p)
		case "initial_delay", "max_delay": // any value: Tasker does not read them
			if !isNull(d.deref(v)) {
				d.warn(p, warnRetryDelay)
			}
		}
	})
	notRetryable := r.Retryable != nil && !*r.Retryable
	// Tasker always runs the first attempt and retries while attempts <
	// max_attempts, so `max_attempts: 0` means "run once": it loads as 1.
	if maxSet && maxAttempts == 0 {
		maxAttempts = 1
		if !notRetryable {
			d.warn(join(path, "max_attempts"), warnZeroAttempts)
		}
	}
	// limit is the runner's alias of max_attempts (Tasker ignores it); 0
	// is accepted only where it cannot be misread: with retryable false.
	if limitSet && limit == 0 {
		if notRetryable {
			limit = 1
		} else {
			d.add(join(path, "limit"), d.deref(limitNode), "must be >= 1")
		}
	}
	r.MaxAttempts = maxAttempts
	switch {
	case limit != 0 && maxAttempts != 0 && limit != maxAttempts:
		// Tasker reads max_attempts and ignores limit: so does the runner.
		d.warn(join(path, "limit"), fmt.Sprintf("ignored: max_attempts (%d) applies, as in Tasker, which ignores limit", maxAttempts))
	case limit != 0 && maxAttempts == 0:
		r.MaxAttempts = limit
		d.aliases[join(path, "max_attempts")] = join(path, "limit")
		if !notRetryable {
			d.warn(join(path, "limit"), warnLimit)
		}
	}
	return r
}

func (d *decoder) batchConfig(n *yaml.Node, path string) *BatchConfig {
	b := &BatchConfig{}
	var sizeSet, parSet bool
	d.fields(n, path, batchKeys, func(key string, v *yaml.Node, p string) {
		switch key {
		case "batch_size":
			b.BatchSize, sizeSet = d.integer(v, p)
		case "parallelism":
			b.Parallelism, parSet = d.integer(v, p)
		case "cursor_field":
			b.CursorField, _ = d.str(v, p)
		case "worker_template":
			b.WorkerTemplate, _ = d.str(v, p)
		case "failure_strategy":
			s, _ := d.str(v, p)
			b.FailureStrategy = FailureStrategy(s)
		}
	})
	if !sizeSet {
		b.BatchSize = defaultBatchSize
	}
	if !parSet {
		b.Parallelism = defaultParallelism
	}
	if b.CursorField == "" {
		b.CursorField = defaultCursorField
	}
	if b.FailureStrategy == "" {
		b.FailureStrategy = ContinueOnFailure
	}
	return b
}

// dropShadowed removes semantic problems at or below a path that already has
// a decoding problem (a field that failed to decode looks unset, which would
// otherwise be reported a second time as "required").
func (d *decoder) dropShadowed(semantic []Problem) []Problem {
	out := semantic[:0:0]
	for _, sp := range semantic {
		path := d.written(sp.Path)
		shadowed := false
		for _, dp := range d.problems {
			if dp.Path != "" && (path == dp.Path || strings.HasPrefix(path, dp.Path+".") || strings.HasPrefix(path, dp.Path+"[")) {
				shadowed = true
				break
			}
		}
		if !shadowed {
			out = append(out, sp)
		}
	}
	return out
}

// written maps a canonical path to the spelling used in the document
// (steps[0].retry.max_attempts -> steps[0].retry.limit when `limit` was used).
func (d *decoder) written(path string) string {
	for canon, as := range d.aliases {
		if path == canon || strings.HasPrefix(path, canon+".") || strings.HasPrefix(path, canon+"[") {
			return as + path[len(canon):]
		}
	}
	return path
}

// locate rewrites aliased paths, fills in line numbers from the nearest known
// enclosing path, and orders problems by line.
func (d *decoder) locate(probs []Problem) []Problem {
	for i := range probs {
		p := &probs[i]
		p.Path = d.written(p.Path)
		if d.oneLine {
			p.Line = 0
			continue
		}
		for path := p.Path; p.Line == 0 && path != ""; path = parentPath(path) {
			p.Line = d.lines[path]
		}
	}
	sort.SliceStable(probs, func(i, j int) bool {
		li, lj := probs[i].Line, probs[j].Line
		if li == 0 || lj == 0 {
			return li != 0 && lj == 0
		}
		return li < lj
	})
	return probs
}

func parentPath(p string) string {
	i := strings.LastIndexAny(p, ".[")
	if i < 0 {
		return ""
	}
	return p[:i]
}
