package openapi_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"go.yaml.in/yaml/v3"
)

// Environment variables of TestAPISweep.
const (
	sweepSeedEnv     = "TASKER_SWEEP_SEED"     // the random seed; default sweepSeedDefault
	sweepRequestsEnv = "TASKER_SWEEP_REQUESTS" // how many requests; default sweepRequestsDefault
)

const (
	sweepSeedDefault     = 14
	sweepRequestsDefault = 6000
	sweepMaxRequestBytes = 256 << 10
)

// TestAPISweep sends thousands of requests built from openapi.yaml to a
// real API (real PostgreSQL, real HTTP on loopback) holding templates,
// handler endpoints, tasks and steps: for every operation, requests with
// valid-shaped values, then the same mutated (wrong types, huge, negative
// and overflowing integers, NUL bytes, invalid UTF-8, lone surrogates, very
// long strings, deep nesting, missing and extra fields, empty and non-JSON
// bodies, wrong content types, trailing slashes, unknown methods...). It
// fails on any answer of 500 or more, or no answer at all (a panic drops
// the connection), listing each distinct (method, path, mutation, status)
// once with a request that shows it, so that one run shows them all. The
// seed is fixed and printed; TASKER_SWEEP_SEED and TASKER_SWEEP_REQUESTS
// change it and the number of requests.
func TestAPISweep(t *testing.T) {
	t.Parallel()
	seed := uint64(sweepSeedDefault)
	if v := os.Getenv(sweepSeedEnv); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("%s=%q: %v", sweepSeedEnv, v, err)
		}
		seed = n
	}
	count := sweepRequestsDefault
	if v := os.Getenv(sweepRequestsEnv); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("%s=%q: want a positive number", sweepRequestsEnv, v)
		}
		count = n
	}
	t.Logf("sweep seed %d, %d requests (%s=%d to reproduce)", seed, count, sweepSeedEnv, seed)

	ops := loadSpecOps(t)
	e := newAPIEnv(t, envOptions{maxRequestBytes: sweepMaxRequestBytes, env: map[string]string{"SWEEP_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}})
	g := &sweepGen{rnd: rand.New(rand.NewPCG(seed, seed^0x5eed)), known: sweepFixtures(t, e)}

	reqs := make([]sweepRequest, 0, count)
	for i := range count {
		op := ops[i%len(ops)] // every operation gets its share
		reqs = append(reqs, g.request(op, i < len(ops)*3))
	}

	type failure struct {
		sweepRequest
		status int
		body   string
		n      int
	}
	failures := map[string]*failure{}
	statuses := map[int]int{}
	client := e.srv.Client()
	client.Timeout = 30 * time.Second
	start := time.Now()
	var slow []string
	for _, r := range reqs {
		began := time.Now()
		status, body := r.send(t, client, e.srv.URL)
		if d := time.Since(began); d > time.Second {
			slow = append(slow, fmt.Sprintf("%s %s [%s] -> %d in %s", r.method, r.template, r.mutation, status, d.Round(time.Millisecond)))
		}
		statuses[status]++
		if status != 0 && status < 500 {
			continue
		}
		key := fmt.Sprintf("%s %s [%s] -> %d", r.method, r.template, r.mutation, status)
		if f, ok := failures[key]; ok {
			f.n++
			continue
		}
		failures[key] = &failure{sweepRequest: r, status: status, body: body, n: 1}
	}
	codes := slices.Sorted(mapsKeys(statuses))
	var counts []string
	for _, c := range codes {
		counts = append(counts, fmt.Sprintf("%d: %d", c, statuses[c]))
	}
	t.Logf("%d requests in %s; statuses %s", len(reqs), time.Since(start).Round(time.Millisecond), strings.Join(counts, ", "))
	if len(slow) > 0 {
		t.Logf("%d requests took over a second:\n  %s", len(slow), strings.Join(slow, "\n  "))
	}
	if len(failures) == 0 {
		return
	}
	keys := slices.Sorted(mapsKeys(failures))
	var b strings.Builder
	fmt.Fprintf(&b, "%d distinct failing requests (seed %d; status 0 = no answer, the connection dropped):", len(keys), seed)
	for _, k := range keys {
		f := failures[k]
		fmt.Fprintf(&b, "\n  %s (x%d)\n      %s %s", k, f.n, f.method, f.target)
		if f.contentType != "" {
			fmt.Fprintf(&b, "  Content-Type: %q", f.contentType)
		}
		if len(f.body) > 0 || f.hasBody {
			fmt.Fprintf(&b, "\n      body %s", quoteExcerpt(f.reqBody, 200))
		}
		fmt.Fprintf(&b, "\n      answer %s", quoteExcerpt([]byte(f.body), 200))
	}
	t.Error(b.String())
}

func mapsKeys[K comparable, V any](m map[K]V) func(func(K) bool) {
	return func(yield func(K) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func quoteExcerpt(b []byte, n int) string {
	if len(b) > n {
		return strconv.Quote(string(b[:n])) + fmt.Sprintf("... (%d bytes)", len(b))
	}
	return strconv.Quote(string(b))
}

// sweepRequest is one request of the sweep.
type sweepRequest struct {
	method      string
	template    string // the spec's path, e.g. /v1/tasks/{task_uuid}
	mutation    string // what was done to the valid request; "valid" for nothing
	target      string // escaped path and query
	header      http.Header
	contentType string
	hasBody     bool
	reqBody     []byte
}

func (r sweepRequest) send(t *testing.T, client *http.Client, base string) (int, string) {
	t.Helper()
	var body io.Reader
	if r.hasBody {
		body = bytes.NewReader(r.reqBody)
	}
	req, err := http.NewRequest(r.method, base+r.target, body)
	if err != nil {
		t.Fatalf("building %s %s (%s): %v", r.method, r.target, r.mutation, err)
	}
	for k, v := range r.header {
		req.Header[k] = v
	}
	if r.contentType != "" {
		req.Header.Set("Content-Type", r.contentType)
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
	if err != nil {
		return 0, err.Error()
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, string(b)
}

// specOp is one operation of openapi.yaml.
type specOp struct {
	method, path string
	params       []specParam
	body         map[string]any // the request body's schema, or nil
	bodyRequired bool
	methods      []string // every method of the path
}

type specParam struct {
	name, in string
	required bool
	schema   map[string]any
}

// loadSpecOps reads every operation of openapi.yaml, with $refs to
// components resolved.
func loadSpecOps(t *testing.T) []specOp {
	t.Helper()
	raw, err := os.ReadFile("openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := yaml.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	schemas, _ := dig(doc, "components", "schemas").(map[string]any)
	var resolve func(v any, depth int) any
	resolve = func(v any, depth int) any {
		switch x := v.(type) {
		case map[string]any:
			if ref, ok := x["$ref"].(string); ok && depth < 20 {
				name := strings.TrimPrefix(ref, "#/components/schemas/")
				return resolve(schemas[name], depth+1)
			}
			out := make(map[string]any, len(x))
			for k, v := range x {
				out[k] = resolve(v, depth)
			}
			return out
		case []any:
			out := make([]any, len(x))
			for i, v := range x {
				out[i] = resolve(v, depth)
			}
			return out
		}
		return v
	}
	paths, _ := doc["paths"].(map[string]any)
	var ops []specOp
	for _, path := range slices.Sorted(mapsKeys(paths)) {
		item, _ := paths[path].(map[string]any)
		var methods []string
		for m := range item {
			methods = append(methods, strings.ToUpper(m))
		}
		sort.Strings(methods)
		for _, m := range methods {
			op, _ := resolve(item[strings.ToLower(m)], 0).(map[string]any)
			so := specOp{method: m, path: path, methods: methods}
			params, _ := op["parameters"].([]any)
			for _, p := range params {
				pm, _ := p.(map[string]any)
				sp := specParam{in: fmt.Sprint(pm["in"]), name: fmt.Sprint(pm["name"])}
				sp.required, _ = pm["required"].(bool)
				sp.schema, _ = pm["schema"].(map[string]any)
				so.params = append(so.params, sp)
			}
			if rb, ok := op["requestBody"].(map[string]any); ok {
				so.body, _ = dig(rb, "content", "application/json", "schema").(map[string]any)
				so.bodyRequired, _ = rb["required"].(bool)
			}
			ops = append(ops, so)
		}
	}
	if len(ops) < 20 {
		t.Fatalf("only %d operations in openapi.yaml", len(ops))
	}
	return ops
}

func dig(v any, keys ...string) any {
	for _, k := range keys {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[k]
	}
	return v
}

// sweepKnown are ids and names that exist, so that valid-shaped requests
// reach the database and find something.
type sweepKnown struct {
	tasks, steps []string
}

// sweepFixtures registers templates and handler endpoints and submits
// tasks (one cancelled), returning their ids.
func sweepFixtures(t *testing.T, e *apiEnv) sweepKnown {
	t.Helper()
	e.do(http.MethodPost, "/v1/templates", map[string]string{"template": orderTemplate}, http.StatusCreated, nil)
	e.do(http.MethodPost, "/v1/templates", map[string]string{"template": sweepTemplate}, http.StatusCreated, nil)
	e.do(http.MethodPut, "/v1/handlers/remote.*?namespace=shop", `{"url":"http://remote:8080/{callable}","secret_ref":"env:SWEEP_SECRET"}`, http.StatusCreated, nil)
	e.do(http.MethodPut, "/v1/handlers/ops.*", `{"url":"http://ops:8080/","protocol":"connect","batch_max":4}`, http.StatusCreated, nil)
	var k sweepKnown
	for i := range 4 {
		var task apiTask
		if i%2 == 0 {
			e.do(http.MethodPost, "/v1/tasks", map[string]any{"namespace": "shop", "name": "order", "context": map[string]any{"order_id": i}}, http.StatusCreated, &task)
		} else {
			e.do(http.MethodPost, "/v1/tasks", map[string]any{"namespace": "ops", "name": "cleanup"}, http.StatusCreated, &task)
		}
		k.tasks = append(k.tasks, task.TaskUUID)
		for _, s := range task.Steps {
			k.steps = append(k.steps, s.StepUUID)
		}
	}
	e.do(http.MethodPost, "/v1/tasks/"+k.tasks[1]+"/cancel", `{"reason":"sweep"}`, http.StatusOK, nil)
	return k
}

const sweepTemplate = `
name: cleanup
namespace_name: ops
version: 0.1.0
steps:
  - name: scan
    handler: {callable: ops.scan}
  - name: purge
    type: batchable
    dependencies: [scan]
    handler: {callable: ops.purge}
    batch_config: {worker_template: purge_worker, batch_size: 10}
  - name: purge_worker
    type: batch_worker
    dependencies: [purge]
    handler: {callable: ops.purge_one}
`

// rawJSON is JSON text written as is into a generated body, for what
// encoding/json cannot produce (invalid UTF-8, lone surrogates, numbers
// out of range).
type rawJSON string

// sweepGen builds requests.
type sweepGen struct {
	rnd   *rand.Rand
	known sweepKnown
}

func (g *sweepGen) pick(n int) int        { return g.rnd.IntN(n) }
func (g *sweepGen) chance(p float64) bool { return g.rnd.Float64() < p }
func pickOf[T any](g *sweepGen, xs []T) T { return xs[g.pick(len(xs))] }
func (g *sweepGen) word(n int) string     { return g.letters("abcdefghijklmnopqrstuvwxyz_", n) }
func (g *sweepGen) letters(set string, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = set[g.pick(len(set))]
	}
	return string(b)
}

// request builds a request for op: valid-shaped for the first ones
// (valid), otherwise mutated one or two ways.
func (g *sweepGen) request(op specOp, valid bool) sweepRequest {
	r := sweepRequest{method: op.method, template: op.path, mutation: "valid", header: http.Header{}}
	pathVals := map[string]string{}
	query := url.Values{}
	var queryOrder []string
	for _, p := range op.params {
		switch p.in {
		case "path":
			pathVals[p.name] = url.PathEscape(fmt.Sprint(g.value(p.schema, p.name, 0)))
		case "query":
			if p.required || g.chance(0.3) {
				query.Set(p.name, queryString(g.value(p.schema, p.name, 0)))
				queryOrder = append(queryOrder, p.name)
			}
		case "header":
			if g.chance(0.2) {
				r.header.Set(p.name, fmt.Sprint(g.value(p.schema, p.name, 0)))
			}
		}
	}
	var body any
	if op.body != nil && (op.bodyRequired || g.chance(0.7)) {
		body = g.value(op.body, "body", 0)
		r.hasBody = true
		r.contentType = "application/json"
	}
	path := op.path

	if !valid {
		var muts []string
		for n := 1 + btoi(g.chance(0.15)); n > 0; n-- {
			muts = append(muts, g.mutate(op, &r, pathVals, query, &queryOrder, &body, &path))
		}
		r.mutation = strings.Join(muts, " + ")
	}

	for name, v := range pathVals {
		path = strings.ReplaceAll(path, "{"+name+"}", v)
	}
	r.target = path
	if len(queryOrder) > 0 {
		var parts []string
		for _, k := range queryOrder {
			for _, v := range query[k] {
				parts = append(parts, escapeQuery(k)+"="+escapeQuery(v))
			}
		}
		r.target += "?" + strings.Join(parts, "&")
	}
	if r.hasBody && r.reqBody == nil {
		r.reqBody = encodeJSON(body)
	}
	return r
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// escapeQuery escapes like url.QueryEscape, except that a value already
// holding an escape the mutation chose (%FF, %00) keeps it.
func escapeQuery(s string) string {
	if strings.HasPrefix(s, "\x01raw:") {
		return strings.TrimPrefix(s, "\x01raw:")
	}
	return url.QueryEscape(s)
}

func queryString(v any) string {
	switch x := v.(type) {
	case []any:
		parts := make([]string, len(x))
		for i, e := range x {
			parts[i] = fmt.Sprint(e)
		}
		return strings.Join(parts, ",")
	case nil:
		return ""
	}
	return fmt.Sprint(v)
}

// value returns a valid-shaped value for schema; name is the field's or
// parameter's name, which picks existing ids and names.
func (g *sweepGen) value(schema map[string]any, name string, depth int) any {
	if enum, ok := schema["enum"].([]any); ok && len(enum) > 0 {
		return pickOf(g, enum)
	}
	if v, ok := g.namedValue(schema, name); ok {
		return v
	}
	return g.typedValue(schema, name, depth)
}

// namedValue picks the value of a field or parameter known by its name:
// existing ids and names mostly.
func (g *sweepGen) namedValue(schema map[string]any, name string) (any, bool) {
	switch name {
	case "task_uuid":
		if g.chance(0.85) {
			return pickOf(g, g.known.tasks), true
		}
		return uuid.NewString(), true
	case "step_uuid", "step_uuids":
		if name == "step_uuids" {
			return []any{pickOf(g, g.known.steps)}, true
		}
		if g.chance(0.85) {
			return pickOf(g, g.known.steps), true
		}
		return uuid.NewString(), true
	case "namespace":
		return pickOf(g, []string{"shop", "ops", "shop", "other"}), true
	case "name", "template":
		if name == "template" && schemaType(schema) == "string" && schema["maxLength"] == nil {
			return pickOf(g, []string{orderTemplate, sweepTemplate, brokenTemplate, "name: x\n"}), true
		}
		return pickOf(g, []string{"order", "cleanup", "nope"}), true
	case "version":
		return pickOf(g, []string{"1.0.0", "0.1.0", "9.9.9"}), true
	case "pattern":
		return pickOf(g, []string{"remote.*", "ops.*", "pay", "*"}), true
	case "url":
		return pickOf(g, []string{"http://remote:8080/{callable}", "http://pay:8080/", "https://h.example/x"}), true
	case "secret_ref":
		return pickOf(g, []string{"env:SWEEP_SECRET", "env:MISSING", "file:/nonexistent"}), true
	case "context":
		if g.chance(0.5) {
			return map[string]any{"order_id": g.pick(1000)}, true
		}
		return map[string]any{}, true
	case "result":
		return map[string]any{"ok": true}, true
	case "cursor":
		return "", true
	}
	return nil, false
}

// typedValue makes a value of the schema's type.
func (g *sweepGen) typedValue(schema map[string]any, name string, depth int) any {
	switch schemaType(schema) {
	case "object":
		return g.objectValue(schema, depth)
	case "array":
		items, _ := schema["items"].(map[string]any)
		n := g.pick(3)
		out := make([]any, n)
		for i := range out {
			out[i] = g.value(items, name, depth+1)
		}
		return out
	case "integer":
		lo, hi := 0, 100
		if v, ok := number(schema["minimum"]); ok {
			lo = int(v)
		}
		if v, ok := number(schema["maximum"]); ok {
			hi = int(v)
		}
		if hi < lo {
			hi = lo
		}
		return lo + g.pick(hi-lo+1)
	case "number":
		return g.rnd.Float64() * 10
	case "boolean":
		return g.chance(0.5)
	case "string":
		switch schema["format"] {
		case "uuid":
			return uuid.NewString()
		case "date-time":
			return time.Date(2026, 1, 1+g.pick(28), g.pick(24), 0, 0, 0, time.UTC).Format(time.RFC3339)
		}
		n := 1 + g.pick(12)
		if v, ok := number(schema["maxLength"]); ok && int(v) < n {
			n = int(v)
		}
		return g.word(n)
	}
	// Any JSON value.
	return map[string]any{"k": g.word(3)}
}

// objectValue makes an object with the required properties and some others.
func (g *sweepGen) objectValue(schema map[string]any, depth int) map[string]any {
	out := map[string]any{}
	props, _ := schema["properties"].(map[string]any)
	req := map[string]bool{}
	if rs, ok := schema["required"].([]any); ok {
		for _, r := range rs {
			req[fmt.Sprint(r)] = true
		}
	}
	for _, k := range slices.Sorted(mapsKeys(props)) {
		if req[k] || (depth < 4 && g.chance(0.5)) {
			ps, _ := props[k].(map[string]any)
			out[k] = g.value(ps, k, depth+1)
		}
	}
	if ap, ok := schema["additionalProperties"].(map[string]any); ok && g.chance(0.5) {
		out["X-"+g.word(4)] = g.value(ap, "", depth+1)
	}
	return out
}

func schemaType(schema map[string]any) string {
	switch t := schema["type"].(type) {
	case string:
		return t
	case []any:
		for _, x := range t {
			if s, _ := x.(string); s != "null" {
				return s
			}
		}
	}
	return ""
}

func number(v any) (float64, bool) {
	switch x := v.(type) {
	case int:
		return float64(x), true
	case float64:
		return x, true
	}
	return 0, false
}

// Hostile values: what a mutation puts in a path segment, a query value
// or a body field. Path and query values are written as is (already
// escaped); body values are JSON text.
var (
	sweepPathValues = map[string]string{
		"pct-ff":     "%FF",
		"pct-nul":    "a%00b",
		"surrogate":  "%ED%A0%80",
		"long":       strings.Repeat("x", 5000),
		"negative":   "-1",
		"huge":       "99999999999999999999",
		"dotdot":     "..",
		"space":      "a%20b",
		"uuid-upper": strings.ToUpper("0191e2a8-3b3c-7d4e-8f90-a1b2c3d4e5f6"),
		"uuid-nil":   "00000000-0000-0000-0000-000000000000",
		"len-57":     strings.Repeat("n", 57),
		"len-129":    strings.Repeat("n", 129),
		"len-256":    strings.Repeat("p", 256),
	}
	sweepQueryValues = map[string]string{
		"pct-ff":    "%FF",
		"pct-nul":   "%00",
		"surrogate": "%ED%A0%80",
		"long":      strings.Repeat("q", 5000),
		"negative":  "-1",
		"zero":      "0",
		"huge":      "99999999999999999999",
		"int32+1":   "2147483648",
		"int64+1":   "9223372036854775808",
		"float":     "1e308",
		"wrongtype": "abc",
		"empty":     "",
		"bad-time":  "2026-13-45T99:99:99Z",
		"far-time":  "9999-12-31T23:59:59Z",
		"len-57":    strings.Repeat("n", 57),
		"len-129":   strings.Repeat("n", 129),
		"comma":     ",,,",
	}
	sweepBodyValues = map[string]rawJSON{
		"nul":           `"a\u0000b"`,
		"raw-nul":       "\"a\x00b\"",
		"invalid-utf8":  "\"a\xff\xfeb\"",
		"surrogate":     `"\ud800"`,
		"surrogate-lo":  `"x\udfffy"`,
		"long":          rawJSON(`"` + strings.Repeat("L", 70000) + `"`),
		"len-57":        rawJSON(`"` + strings.Repeat("n", 57) + `"`),
		"len-129":       rawJSON(`"` + strings.Repeat("n", 129) + `"`),
		"len-256":       rawJSON(`"` + strings.Repeat("n", 256) + `"`),
		"int64+1":       "9223372036854775808",
		"int64-max":     "9223372036854775807",
		"int64-min":     "-9223372036854775808",
		"int32+1":       "2147483648",
		"int32-1":       "-2147483649",
		"negative":      "-1",
		"zero":          "0",
		"exp-huge":      "1e400",
		"float":         "1.5",
		"string":        `"abc"`,
		"number":        "42",
		"bool":          "true",
		"null":          "null",
		"empty-str":     `""`,
		"object":        `{"a":1}`,
		"array":         `[1,"a",null]`,
		"empty-obj":     "{}",
		"empty-arr":     "[]",
		"deep-arr":      rawJSON(strings.Repeat("[", 5000) + strings.Repeat("]", 5000)),
		"deep-obj":      rawJSON(strings.Repeat(`{"a":`, 3000) + "1" + strings.Repeat("}", 3000)),
		"nul-key":       `{"a\u0000":1}`,
		"surrogate-key": `{"\ud800":1}`,
	}
	sweepRawBodies = map[string]string{
		"empty-body":     "",
		"null-body":      "null",
		"array-body":     "[]",
		"string-body":    `"x"`,
		"truncated":      `{"namespace":"shop","na`,
		"not-json":       "namespace=shop&name=order",
		"raw-bytes":      "\xff\xfe\x00\x01",
		"two-values":     "{}{}",
		"bom":            "\ufeff{}",
		"deep-body":      strings.Repeat("[", 10000) + strings.Repeat("]", 10000),
		"too-large-body": `{"x":"` + strings.Repeat("z", sweepMaxRequestBytes+10) + `"}`,
	}
	sweepContentTypes = []string{"text/plain", "application/x-www-form-urlencoded", "", "application/json; charset=latin1", "application/merge-patch+json", "multipart/form-data; boundary=x", "application/cbor"}
	sweepMethods      = []string{"PATCH", "PROPFIND", "FOO", "HEAD", "OPTIONS", "TRACE", "DELETE", "PUT", "POST", "GET"}
)

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(mapsKeys(m)) }

// mutate changes one thing of the request and names it.
func (g *sweepGen) mutate(op specOp, r *sweepRequest, pathVals map[string]string, query url.Values, order *[]string, body *any, path *string) string {
	for {
		switch g.pick(10) {
		case 0: // a path parameter
			if len(pathVals) == 0 {
				continue
			}
			name := pickOf(g, sortedKeys(pathVals))
			kind := pickOf(g, sortedKeys(sweepPathValues))
			pathVals[name] = sweepPathValues[kind]
			return "path." + name + ":" + kind
		case 1, 2: // a query parameter, known or not
			return g.mutateQuery(op, query, order)
		case 3, 4, 5: // a body field
			if *body == nil {
				continue
			}
			return g.mutateBody(body)
		case 6: // the whole body
			if op.body == nil && g.chance(0.7) {
				continue
			}
			kind := pickOf(g, sortedKeys(sweepRawBodies))
			if kind == "too-large-body" && !g.chance(0.2) {
				kind = "truncated"
			}
			r.hasBody, r.reqBody = true, []byte(sweepRawBodies[kind])
			if r.contentType == "" {
				r.contentType = "application/json"
			}
			return "body:" + kind
		case 7: // the content type
			if !r.hasBody {
				continue
			}
			r.contentType = pickOf(g, sweepContentTypes)
			return "content-type:" + r.contentType
		case 8: // the path
			return mutatePath(g, path)
		case 9: // the method
			m := pickOf(g, sweepMethods)
			if m == r.method {
				continue
			}
			r.method = m
			return "method:" + m
		}
	}
}

// mutateQuery sets a query parameter of op to a hostile value, or adds one
// op does not have.
func (g *sweepGen) mutateQuery(op specOp, query url.Values, order *[]string) string {
	var names []string
	for _, p := range op.params {
		if p.in == "query" {
			names = append(names, p.name)
		}
	}
	if len(names) == 0 || g.chance(0.15) {
		name := pickOf(g, []string{"unknown", "limit", "namespace", "cursor"})
		if !slices.Contains(*order, name) {
			*order = append(*order, name)
		}
		query.Add(name, "1")
		return "query." + name + ":extra"
	}
	name := pickOf(g, names)
	kind := pickOf(g, sortedKeys(sweepQueryValues))
	if !slices.Contains(*order, name) {
		*order = append(*order, name)
	}
	if g.chance(0.1) {
		query.Add(name, "\x01raw:"+sweepQueryValues[kind])
		return "query." + name + ":repeated-" + kind
	}
	query.Set(name, "\x01raw:"+sweepQueryValues[kind])
	return "query." + name + ":" + kind
}

// mutatePath spoils the path itself.
func mutatePath(g *sweepGen, path *string) string {
	kind := pickOf(g, []string{"trailing-slash", "double-slash", "upper-case", "extra-segment", "dot-segment", "no-v1"})
	switch kind {
	case "trailing-slash":
		*path += "/"
	case "double-slash":
		*path = strings.Replace(*path, "/", "//", 2)
	case "upper-case":
		*path = strings.ToUpper((*path)[:3]) + (*path)[3:]
	case "extra-segment":
		*path += "/extra"
	case "dot-segment":
		*path += "/./"
	case "no-v1":
		*path = strings.TrimPrefix(*path, "/v1")
	}
	return "path:" + kind
}

// mutateBody replaces, removes or adds one field of the body.
func (g *sweepGen) mutateBody(body *any) string {
	// Collect the places: (container, key or index, path).
	type place struct {
		set  func(any)
		del  func()
		path string
	}
	var places []place
	var walk func(v any, path string, set func(any), del func())
	walk = func(v any, path string, set func(any), del func()) {
		places = append(places, place{set: set, del: del, path: path})
		switch x := v.(type) {
		case map[string]any:
			for _, k := range sortedKeys(x) {
				walk(x[k], path+"."+k, func(n any) { x[k] = n }, func() { delete(x, k) })
			}
		case []any:
			for i := range x {
				walk(x[i], path+"[]", func(n any) { x[i] = n }, nil)
			}
		}
	}
	walk(*body, "body", func(n any) { *body = n }, nil)
	p := pickOf(g, places)
	switch {
	case p.del != nil && g.chance(0.15):
		p.del()
		return p.path + ":missing"
	case g.chance(0.1):
		if m, ok := (*body).(map[string]any); ok {
			m["extra_"+g.word(3)] = 1
			return "body:extra-field"
		}
	}
	if p.path == "body.template" && g.chance(0.6) {
		kind := pickOf(g, sortedKeys(sweepTemplates))
		p.set(sweepTemplates[kind])
		return p.path + ":" + kind
	}
	kind := pickOf(g, sortedKeys(sweepBodyValues))
	p.set(sweepBodyValues[kind])
	return p.path + ":" + kind
}

// sweepTemplate returns a small valid template document with namespace ns,
// name name and extra top-level YAML.
func sweepTemplateDoc(ns, name, extra string) string {
	return "name: " + name + "\nnamespace_name: " + ns + "\nversion: 1.0.0\n" + extra +
		"steps:\n  - name: a\n    handler: {callable: h.a}\n"
}

// sweepTemplates are hostile template documents for the template field.
var sweepTemplates = func() map[string]string {
	m := map[string]string{
		"ns-len-56":      sweepTemplateDoc(strings.Repeat("n", 56), "t", ""),
		"ns-len-57":      sweepTemplateDoc(strings.Repeat("n", 57), "t", ""),
		"ns-len-128":     sweepTemplateDoc(strings.Repeat("n", 128), "t", ""),
		"ns-len-129":     sweepTemplateDoc(strings.Repeat("n", 129), "t", ""),
		"name-len-129":   sweepTemplateDoc("shop", strings.Repeat("t", 129), ""),
		"name-len-300":   sweepTemplateDoc("shop", strings.Repeat("t", 300), ""),
		"nul-desc":       sweepTemplateDoc("shop", "t", "description: \"a\\0b\"\n"),
		"nul-metadata":   sweepTemplateDoc("shop", "t", "metadata: {\"k\\0\": \"v\\0\"}\n"),
		"surrogate-desc": sweepTemplateDoc("shop", "t", "description: \"\\ud800\"\n"),
		"ctl-desc":       sweepTemplateDoc("shop", "t", "description: \"\\x01\\x7f\"\n"),
		"schema-nul":     sweepTemplateDoc("shop", "t", "input_schema: {type: object, properties: {\"a\\0\": {type: string}}}\n"),
		"version-long":   strings.Replace(sweepTemplateDoc("shop", "t", ""), "1.0.0", "1.0."+strings.Repeat("9", 80), 1),
	}
	// Aliases expand far beyond the document: a definition of megabytes
	// from a document of a few kilobytes.
	var b strings.Builder
	b.WriteString("metadata:\n  a: &a \"" + strings.Repeat("x", 4000) + "\"\n  b: &b [")
	for i := range 30 {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("*a")
	}
	b.WriteString("]\n  c: &c [")
	for i := range 30 {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString("*b")
	}
	b.WriteString("]\n")
	m["alias-bomb"] = sweepTemplateDoc("shop", "t", b.String())
	m["big-desc"] = sweepTemplateDoc("shop", "t", "description: "+strings.Repeat("d", 1<<20-200)+"\n")
	return m
}()

// encodeJSON writes v as JSON, rawJSON values as they are.
func encodeJSON(v any) []byte {
	var b bytes.Buffer
	var enc func(v any)
	enc = func(v any) {
		switch x := v.(type) {
		case rawJSON:
			b.WriteString(string(x))
		case map[string]any:
			b.WriteByte('{')
			for i, k := range sortedKeys(x) {
				if i > 0 {
					b.WriteByte(',')
				}
				kb, _ := json.Marshal(k)
				b.Write(kb)
				b.WriteByte(':')
				enc(x[k])
			}
			b.WriteByte('}')
		case []any:
			b.WriteByte('[')
			for i, e := range x {
				if i > 0 {
					b.WriteByte(',')
				}
				enc(e)
			}
			b.WriteByte(']')
		default:
			js, err := json.Marshal(x)
			if err != nil {
				panic(err)
			}
			b.Write(js)
		}
	}
	enc(v)
	return b.Bytes()
}
