package config

import (
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/sethvargo/go-envconfig"
)

// testLeaf is a key that holds a value, found by walking the Config type.
type testLeaf struct {
	path  []string // TOML path segments
	env   string   // variable name as go-envconfig builds it from the tags
	index []int    // field index path, for reflect.Value.FieldByIndex
	typ   reflect.Type
}

// walkLeaves finds every leaf of Config, reading the tags the way
// go-envconfig and the TOML decoder do rather than through the package's own
// helpers, so the two are checked against each other.
func walkLeaves(t *testing.T) []testLeaf {
	t.Helper()
	var out []testLeaf
	var walk func(typ reflect.Type, path []string, env string, index []int)
	walk = func(typ reflect.Type, path []string, env string, index []int) {
		for i := range typ.NumField() {
			f := typ.Field(i)
			tomlName, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
			envTag, hasEnv := f.Tag.Lookup("env")
			if tomlName == "" || !hasEnv {
				t.Errorf("%s.%s: needs both a toml and an env tag", typ, f.Name)
				continue
			}
			p := append(append([]string(nil), path...), tomlName)
			idx := append(append([]int(nil), index...), i)
			envKey, opts, _ := strings.Cut(envTag, ",")
			if f.Type.Kind() == reflect.Struct {
				prefix, ok := strings.CutPrefix(opts, "prefix=")
				if envKey != "" || !ok {
					t.Errorf("%s.%s: a table needs env:\",prefix=...\", got %q", typ, f.Name, envTag)
				}
				walk(f.Type, p, env+prefix, idx)
				continue
			}
			if opts != "" {
				// Options such as default= would bypass Default().
				t.Errorf("%s.%s: env tag %q has options; leaves take only a name", typ, f.Name, envTag)
			}
			out = append(out, testLeaf{path: p, env: env + envKey, index: idx, typ: f.Type})
		}
	}
	walk(reflect.TypeFor[Config](), nil, EnvPrefix, nil)
	return out
}

// The naming rule, TASKER_ + upper(TOML path joined by "_"), holds for every
// key, and the package's own table of variables agrees.
func TestEnvNamesFollowTOMLPaths(t *testing.T) {
	t.Parallel()
	leaves := walkLeaves(t)
	if len(leaves) < 40 {
		t.Fatalf("found only %d leaves; is the walk broken?", len(leaves))
	}
	seen := make(map[string]string)
	for _, l := range leaves {
		key := strings.Join(l.path, ".")
		want := "TASKER_" + strings.ToUpper(strings.Join(l.path, "_"))
		if l.env != want {
			t.Errorf("%s: variable %s, want %s", key, l.env, want)
		}
		if other, dup := seen[l.env]; dup {
			t.Errorf("%s and %s share the variable %s", key, other, l.env)
		}
		seen[l.env] = key
		if got := EnvVar(key); got != l.env {
			t.Errorf("EnvVar(%q) = %q, want %q", key, got, l.env)
		}
	}
	if n := len(envLeaves()); n != len(leaves) {
		t.Errorf("envLeaves() has %d entries, the type has %d leaves", n, len(leaves))
	}
}

// Every variable really reaches its field through go-envconfig, and beats a
// value already set (the file's, here Default's).
func TestEveryEnvVarOverrides(t *testing.T) {
	t.Parallel()
	for _, l := range walkLeaves(t) {
		key := strings.Join(l.path, ".")
		t.Run(key, func(t *testing.T) {
			t.Parallel()
			base := Default()
			cur := reflect.ValueOf(base).FieldByIndex(l.index)
			val, want := overrideFor(t, l.typ, cur)
			cfg := Default()
			if ps := applyEnv(&cfg, envconfig.MapLookuper(map[string]string{l.env: val})); len(ps) > 0 {
				t.Fatalf("%s=%s: %v", l.env, val, ps)
			}
			got := reflect.ValueOf(cfg).FieldByIndex(l.index).Interface()
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("%s=%s set %s to %#v, want %#v", l.env, val, key, got, want)
			}
		})
	}
}

// overrideFor returns a variable value for a field of type typ whose current
// value is cur, and the value the field must have afterwards; the two
// always differ from cur.
func overrideFor(t *testing.T, typ reflect.Type, cur reflect.Value) (string, any) {
	t.Helper()
	switch typ {
	case reflect.TypeFor[Endpoints]():
		return `[{"pattern":"p","url":"http://h"}]`, Endpoints{{Pattern: "p", URL: "http://h", Protocol: ProtocolHTTP, BatchMax: 1, BatchWindowMS: 2}}
	case reflect.TypeFor[APIKeys]():
		return `[{"name":"n","hash":"sha256:00","scope":"read"}]`, APIKeys{{Name: "n", Hash: "sha256:00", Scope: ScopeRead}}
	case reflect.TypeFor[[]string]():
		return "a, b", []string{"a", "b"}
	}
	want := reflect.New(typ).Elem()
	var val string
	switch typ.Kind() {
	case reflect.Int:
		want.SetInt(cur.Int() + 7)
		val = strconv.FormatInt(want.Int(), 10)
	case reflect.Float64:
		want.SetFloat(cur.Float() + 0.25)
		val = strconv.FormatFloat(want.Float(), 'f', -1, 64)
	case reflect.Bool:
		want.SetBool(!cur.Bool())
		val = strconv.FormatBool(want.Bool())
	case reflect.String:
		val = cur.String() + "-env"
		want.SetString(val)
	default:
		t.Fatalf("no override value for %s; extend overrideFor", typ)
	}
	return val, want.Interface()
}
