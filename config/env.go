package config

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	"github.com/sethvargo/go-envconfig"

	"github.com/tasker-runner/tasker-runner/internal/suggest"
)

// EnvPrefix starts the name of every variable that overrides a key.
const EnvPrefix = "TASKER_"

// DatabaseURLEnv is the conventional variable for database.url, honoured
// besides TASKER_DATABASE_URL because most platforms set it.
const DatabaseURLEnv = "DATABASE_URL"

// applyEnv applies environment overrides to cfg and returns the problems
// with the variables it could not use.
//
// go-envconfig stops at the first bad variable and names the Go field, not
// the variable. So each run records the last variable it looked up (the
// one that failed), hides that variable and runs again on a fresh copy,
// until a run succeeds. That reports every bad variable by name and still
// applies all the good ones; there are at most as many runs as bad
// variables.
func applyEnv(cfg *Config, lookup envconfig.Lookuper) problems {
	// DATABASE_URL goes first so that TASKER_DATABASE_URL, applied by the
	// run below, wins when both are set.
	var ps problems
	if v, ok := lookup.Lookup(DatabaseURLEnv); ok && v != "" {
		if utf8.ValidString(v) {
			cfg.Database.URL = v
		} else {
			ps.add("database.url", "env %s: not valid UTF-8", DatabaseURLEnv)
		}
	}
	// A value that is not UTF-8 would reach PostgreSQL, logs and JSON
	// answers garbled or refused: report it and leave the key alone.
	masked := make(map[string]bool)
	for _, l := range envLeaves() {
		if v, ok := lookup.Lookup(l.env); ok && !utf8.ValidString(v) {
			masked[l.env] = true
			ps.add(l.key, "env %s: not valid UTF-8", l.env)
		}
	}
	for {
		trial := *cfg // the decoders replace slices wholesale, so a shallow copy is enough
		rec := &recordingLookuper{next: lookup, masked: masked}
		err := envconfig.ProcessWith(context.Background(), &envconfig.Config{
			Target:   &trial,
			Lookuper: envconfig.PrefixLookuper(EnvPrefix, rec),
			// Without this go-envconfig leaves every field the file (or
			// Default) already set untouched, and the environment would
			// only fill in zero values.
			DefaultOverwrite: true,
		})
		if err == nil {
			*cfg = trial
			return ps
		}
		leaf, ok := envLeafByName()[rec.last]
		if !ok || masked[rec.last] || !strings.HasPrefix(err.Error(), leaf.goPath+": ") {
			// Not caused by a variable's value: a broken struct tag. The
			// tests keep this from shipping; report it rather than loop.
			ps.add("", "environment: %v", err)
			return ps
		}
		masked[rec.last] = true
		ps = append(ps, envProblems(leaf, rec.lastValue, err)...)
	}
}

// recordingLookuper remembers the last variable it found with a value, and
// pretends the masked ones are unset.
type recordingLookuper struct {
	next            envconfig.Lookuper
	masked          map[string]bool
	last, lastValue string
}

// Lookup implements envconfig.Lookuper.
func (r *recordingLookuper) Lookup(key string) (string, bool) {
	if r.masked[key] {
		return "", false
	}
	v, ok := r.next.Lookup(key)
	if ok && v != "" { // go-envconfig never fails on an empty value
		r.last, r.lastValue = key, v
	}
	return v, ok
}

// envProblems describes why the variable of leaf could not be decoded.
func envProblems(leaf envLeaf, value string, err error) problems {
	src := "env " + leaf.env + ": "
	var cfgErr *Error
	if errors.As(err, &cfgErr) { // from a JSON decoder: keys are relative to the leaf
		ps := make(problems, 0, len(cfgErr.Problems))
		for _, p := range cfgErr.Problems {
			ps = append(ps, Problem{Key: leaf.key + p.Key, Message: src + p.Message})
		}
		return ps
	}
	var msg string
	switch leaf.typ.Kind() {
	case reflect.Int:
		msg = fmt.Sprintf("expected integer, got %q", value)
		if errors.Is(err, strconv.ErrRange) {
			msg = fmt.Sprintf("%q is out of range", value)
		}
	case reflect.Float64:
		msg = fmt.Sprintf("expected number, got %q", value)
	case reflect.Bool:
		msg = fmt.Sprintf("expected boolean (true or false), got %q", value)
	default:
		msg = strings.TrimPrefix(err.Error(), leaf.goPath+": ")
	}
	return problems{{Key: leaf.key, Message: src + msg}}
}

// EnvDecode implements envconfig.DecoderCtx: the variable holds a JSON
// array of objects whose keys are the [[worker.handlers]] keys. An empty
// value changes nothing, like any other empty variable.
func (e *Endpoints) EnvDecode(_ context.Context, val string) error {
	return decodeJSON(val, e)
}

// EnvDecode implements envconfig.DecoderCtx: the variable holds a JSON
// array of objects whose keys are the [[worker.web.auth.api_keys]] keys. An
// empty value changes nothing, like any other empty variable.
func (k *APIKeys) EnvDecode(_ context.Context, val string) error {
	return decodeJSON(val, k)
}

var (
	_ envconfig.DecoderCtx = (*Endpoints)(nil)
	_ envconfig.DecoderCtx = (*APIKeys)(nil)
)

// decodeJSON decodes a JSON document into dst with the same rules, and the
// same messages, as a TOML file. Problems come back as an *Error whose keys
// are relative to dst ("[0].url"); applyEnv prefixes them.
func decodeJSON(val string, dst any) error {
	if val == "" {
		return nil
	}
	tree, err := parseJSON(val)
	if err != nil {
		return &Error{Problems: []Problem{{Message: "invalid JSON: " + err.Error()}}}
	}
	var d decoder
	d.value("", tree, reflect.ValueOf(dst).Elem())
	return d.problems.err("")
}

// parseJSON parses one JSON value into the generic shapes the TOML parser
// produces, so the decoder handles both: numbers become int64 when they are
// integers and float64 otherwise.
func parseJSON(s string) (any, error) {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("unexpected data after the JSON value")
	}
	return fromJSON(v), nil
}

func fromJSON(v any) any {
	switch v := v.(type) {
	case json.Number:
		if n, err := strconv.ParseInt(v.String(), 10, 64); err == nil {
			return n
		}
		f, _ := v.Float64() // json.Decoder has already checked the syntax
		return f
	case []any:
		for i := range v {
			v[i] = fromJSON(v[i])
		}
		return v
	case map[string]any:
		for k := range v {
			v[k] = fromJSON(v[k])
		}
		return v
	default:
		return v
	}
}

// envLeaf is one key the environment can set.
type envLeaf struct {
	env    string       // the variable, e.g. TASKER_WORKER_WEB_PORT
	key    string       // the dotted TOML path, e.g. worker.web.port
	goPath string       // "Worker: Web: Port", how go-envconfig prefixes its errors
	typ    reflect.Type // the field's type
}

// envLeaves lists every key the environment can set, in declaration order.
// It reads the same env tags go-envconfig does: a struct field's prefix=
// option and a leaf field's name.
var envLeaves = sync.OnceValue(func() []envLeaf {
	var out []envLeaf
	var walk func(t reflect.Type, env, key, goPath string)
	walk = func(t reflect.Type, env, key, goPath string) {
		for _, f := range tomlFields(t) {
			sf := t.Field(f.index)
			name, opts, _ := strings.Cut(sf.Tag.Get("env"), ",")
			fKey, fGo := join(key, f.name), sf.Name
			if goPath != "" {
				fGo = goPath + ": " + sf.Name
			}
			if sf.Type.Kind() == reflect.Struct {
				var prefix string
				for o := range strings.SplitSeq(opts, ",") {
					if p, ok := strings.CutPrefix(strings.TrimSpace(o), "prefix="); ok {
						prefix = p
					}
				}
				walk(sf.Type, env+prefix, fKey, fGo)
				continue
			}
			out = append(out, envLeaf{env: env + strings.TrimSpace(name), key: fKey, goPath: fGo, typ: sf.Type})
		}
	}
	walk(reflect.TypeFor[Config](), EnvPrefix, "", "")
	return out
})

var envLeafByName = sync.OnceValue(func() map[string]envLeaf {
	m := make(map[string]envLeaf)
	for _, l := range envLeaves() {
		m[l.env] = l
	}
	return m
})

// EnvVar returns the environment variable that overrides the dotted TOML
// key (such as "worker.web.port"), or "" when key names no single value
// (tables, or entries inside arrays of tables).
func EnvVar(key string) string {
	for _, l := range envLeaves() {
		if l.key == key {
			return l.env
		}
	}
	return ""
}

// EnvTypo is a TASKER_ variable that overrides no key but is one typo away
// from a variable that does.
type EnvTypo struct {
	Name    string // as set, e.g. TASKER_WORKER_WEB_PROT
	Suggest string // the likely meant one, e.g. TASKER_WORKER_WEB_PORT
}

// EnvTypos finds the variables of environ ("NAME=value" entries, as
// [os.Environ] returns them) that look like misspelt overrides: a TASKER_
// variable that names no key would otherwise be silently ignored. Only
// near misses are reported, so variables of other programs that share the
// prefix stay quiet.
func EnvTypos(environ []string) []EnvTypo {
	known := envLeafByName()
	// Without the prefix, in name order: of equally near names the first
	// is suggested.
	names := make([]string, 0, len(known))
	for _, env := range slices.Sorted(maps.Keys(known)) {
		names = append(names, strings.TrimPrefix(env, EnvPrefix))
	}
	var out []EnvTypo
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		rest, ok := strings.CutPrefix(name, EnvPrefix)
		if !ok || name == PathEnv || known[name].env != "" {
			continue
		}
		if best, dist := suggest.Closest(rest, names); best != "" && dist <= max(1, len(EnvPrefix+best)/10) {
			out = append(out, EnvTypo{Name: name, Suggest: EnvPrefix + best})
		}
	}
	slices.SortFunc(out, func(a, b EnvTypo) int { return strings.Compare(a.Name, b.Name) })
	return out
}
