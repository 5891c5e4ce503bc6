package config

import (
	"fmt"
	"maps"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tasker-runner/tasker-runner/internal/suggest"
)

// The TOML library stops at the first value of the wrong type, and its
// unknown-key report is separate from decoding. To report every problem at
// once, files (and JSON from the environment) are first parsed into generic
// trees (map[string]any, []any, int64, float64, string, bool) and then
// walked here against the Config type using its toml tags. Values that fit
// are assigned; values that do not are recorded as problems and leave the
// default in place, so validation can still look at everything else.

// decoder assigns a generic tree to a struct, collecting problems.
type decoder struct {
	problems problems
}

// defaulter is implemented by table types whose array elements start from
// defaults instead of zero values (an omitted protocol means "http").
type defaulter interface {
	setDefaults()
}

func (e *Endpoint) setDefaults() { *e = DefaultEndpoint() }

// value assigns v to dst. key is the dotted path of v, for problems.
func (d *decoder) value(key string, v any, dst reflect.Value) {
	switch dst.Kind() {
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			d.mismatch(key, "table", v)
			return
		}
		d.table(key, m, dst)
	case reflect.Slice:
		d.slice(key, v, dst)
	case reflect.Map:
		m, ok := v.(map[string]any)
		if !ok {
			d.mismatch(key, "table of strings", v)
			return
		}
		out := reflect.MakeMapWithSize(dst.Type(), len(m))
		for _, k := range sortedKeys(m) {
			elem := reflect.New(dst.Type().Elem()).Elem()
			before := len(d.problems)
			d.value(join(key, k), m[k], elem)
			if len(d.problems) == before {
				out.SetMapIndex(reflect.ValueOf(k).Convert(dst.Type().Key()), elem)
			}
		}
		dst.Set(out)
	case reflect.String:
		s, ok := v.(string)
		if !ok {
			d.mismatch(key, "string", v)
			return
		}
		dst.SetString(s)
	case reflect.Bool:
		b, ok := v.(bool)
		if !ok {
			d.mismatch(key, "boolean", v)
			return
		}
		dst.SetBool(b)
	case reflect.Int:
		n, ok := v.(int64)
		if !ok {
			d.mismatch(key, "integer", v)
			return
		}
		if dst.OverflowInt(n) {
			d.problems.add(key, "%d is out of range", n)
			return
		}
		dst.SetInt(n)
	case reflect.Float64:
		// TOML keeps 1 and 1.0 apart, but "poll every 1 second" should not
		// need a decimal point.
		switch n := v.(type) {
		case float64:
			dst.SetFloat(n)
		case int64:
			dst.SetFloat(float64(n))
		default:
			d.mismatch(key, "number", v)
		}
	default:
		// Only reachable if Config gains a field of a kind handled nowhere
		// above; the worker.toml test would catch it first.
		d.problems.add(key, "cannot decode into %s", dst.Type())
	}
}

// table assigns the keys of m to the fields of the struct dst.
func (d *decoder) table(key string, m map[string]any, dst reflect.Value) {
	fields := tomlFields(dst.Type())
	for _, f := range fields {
		if v, ok := m[f.name]; ok {
			d.value(join(key, f.name), v, dst.Field(f.index))
		}
	}
	for _, k := range sortedKeys(m) {
		if slices.ContainsFunc(fields, func(f tomlField) bool { return f.name == k }) {
			continue
		}
		msg := "unknown key"
		if s := closestKey(k, fields); s != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", s)
		}
		d.problems.add(join(key, k), "%s", msg)
	}
}

// slice assigns an array to dst, a slice of strings or of tables.
func (d *decoder) slice(key string, v any, dst reflect.Value) {
	elemType := dst.Type().Elem()
	want := "array of strings"
	if elemType.Kind() == reflect.Struct {
		want = "array of tables"
	}
	var items []any
	switch a := v.(type) {
	case []any:
		items = a
	case []map[string]any: // TOML's [[array.of.tables]]
		for _, m := range a {
			items = append(items, m)
		}
	default:
		d.mismatch(key, want, v)
		return
	}
	// An empty array and an absent key mean the same thing; keeping both as
	// nil lets Default() compare equal to a file that spells out "= []".
	if len(items) == 0 {
		dst.SetZero()
		return
	}
	out := reflect.MakeSlice(dst.Type(), len(items), len(items))
	for i, item := range items {
		elem := out.Index(i)
		if def, ok := elem.Addr().Interface().(defaulter); ok {
			def.setDefaults()
		}
		d.value(fmt.Sprintf("%s[%d]", key, i), item, elem)
	}
	dst.Set(out)
}

func (d *decoder) mismatch(key, want string, got any) {
	d.problems.add(key, "expected %s, got %s", want, describe(got))
}

// describe names the type of a generic value and, for scalars, shows it.
func describe(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case string:
		const limit = 40 // a mistyped value is shown, not a whole document
		if len(v) > limit {
			v = v[:limit] + "..."
		}
		return "string " + strconv.Quote(v)
	case int64:
		return fmt.Sprintf("integer %d", v)
	case float64:
		if math.Trunc(v) == v && !math.IsInf(v, 0) {
			return fmt.Sprintf("float %.1f", v)
		}
		return fmt.Sprintf("float %v", v)
	case bool:
		return fmt.Sprintf("boolean %t", v)
	case map[string]any:
		return "table"
	case []any, []map[string]any:
		return "array"
	case time.Time:
		return "datetime"
	default:
		return fmt.Sprintf("%T", v)
	}
}

// tomlField is one struct field with a toml tag.
type tomlField struct {
	name  string // the TOML key
	index int    // the field index in its struct
}

// tomlFields lists the fields of struct type t that have a toml tag.
func tomlFields(t reflect.Type) []tomlField {
	var fs []tomlField
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("toml"), ",")
		if name != "" && name != "-" {
			fs = append(fs, tomlField{name: name, index: i})
		}
	}
	return fs
}

// join appends k to the dotted path key, quoting k when it is not a bare
// TOML key (header names in a headers table, for instance).
func join(key, k string) string {
	if !isBareKey(k) {
		k = strconv.Quote(k)
	}
	if key == "" {
		return k
	}
	return key + "." + k
}

func isBareKey(k string) bool {
	if k == "" {
		return false
	}
	for _, r := range k {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-') {
			return false
		}
	}
	return true
}

// sortedKeys makes problems come out in the same order on every run.
func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

// closestKey returns the known key closest to an unknown one, or "" when none
// is close enough to be a likely typo.
func closestKey(unknown string, fields []tomlField) string {
	unknown = strings.ToLower(unknown)
	names := make([]string, len(fields))
	for i, f := range fields {
		names[i] = f.name
	}
	best, bestDist := suggest.Closest(unknown, names)
	// Allow about one edit per five characters: short keys are too alike for
	// more ("url" is two edits from "uri" and from "urn").
	if best != "" && bestDist <= max(1, len(best)/5) {
		return best
	}
	// A truncated key ("timeout" for "timeout_ms") is far in edits but an
	// obvious match.
	for _, f := range fields {
		if len(unknown) >= 4 && strings.HasPrefix(f.name, unknown) {
			return f.name
		}
	}
	return ""
}
