package config_test

import (
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/BurntSushi/toml"

	"github.com/tasker-runner/tasker-runner/config"
)

const exampleFile = "worker.toml"

// The example ships the defaults: loading it changes nothing.
func TestExampleFileIsDefault(t *testing.T) {
	t.Parallel()
	cfg, err := config.Load(exampleFile, noEnv())
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg, config.Default()) {
		t.Fatalf("worker.toml differs from Default():\n got %+v\nwant %+v", cfg, config.Default())
	}
}

// Every key of the Config type appears in the example. Arrays of tables
// (handlers, api keys) appear as commented-out examples; those are checked
// by TestExampleFileCommentedTables.
func TestExampleFileHasEveryKey(t *testing.T) {
	t.Parallel()
	var tree map[string]any
	md, err := toml.DecodeFile(exampleFile, &tree)
	if err != nil {
		t.Fatal(err)
	}
	inFile := make(map[string]bool)
	for _, k := range md.Keys() {
		inFile[k.String()] = true
	}
	for _, key := range leafKeys(reflect.TypeFor[config.Config](), "", true) {
		if !inFile[key] {
			t.Errorf("worker.toml lacks %s", key)
		}
	}
}

// Uncommenting the example array tables gives valid entries that use every
// key of their type.
func TestExampleFileCommentedTables(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile(exampleFile)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		header string
		typ    reflect.Type
	}{
		{"[[worker.handlers]]", reflect.TypeFor[config.Endpoint]()},
		{"[[worker.web.auth.api_keys]]", reflect.TypeFor[config.APIKey]()},
	}
	for _, tt := range tests {
		t.Run(tt.header, func(t *testing.T) {
			t.Parallel()
			block := uncomment(t, string(data), tt.header)
			var tree map[string]any
			md, err := toml.Decode(block, &tree)
			if err != nil {
				t.Fatalf("uncommented %s does not parse: %v\n%s", tt.header, err, block)
			}
			inFile := make(map[string]bool)
			for _, k := range md.Keys() {
				inFile[k[len(k)-1]] = true
			}
			for _, key := range leafKeys(tt.typ, "", false) {
				if !inFile[key] {
					t.Errorf("the %s example lacks %s", tt.header, key)
				}
			}
			// The auth example needs auth enabled to be a sensible whole.
			if strings.Contains(tt.header, "api_keys") {
				block = "[worker.web.auth]\nenabled = true\n" + block
			}
			if _, err := config.Load(writeFile(t, block), noEnv()); err != nil {
				t.Errorf("uncommented %s does not load: %v", tt.header, err)
			}
		})
	}
}

// Every key line is documented: the nearest line above it that is not
// another key is a comment.
func TestExampleFileCommentsEveryKey(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile(exampleFile)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(data), "\n")
	isKey := func(l string) bool { return strings.Contains(l, "=") && !strings.HasPrefix(strings.TrimSpace(l), "#") }
	for i, l := range lines {
		if !isKey(l) {
			continue
		}
		j := i - 1
		for j >= 0 && isKey(lines[j]) {
			j--
		}
		if j < 0 || !strings.HasPrefix(strings.TrimSpace(lines[j]), "#") {
			t.Errorf("worker.toml:%d: %q has no comment above it", i+1, l)
		}
	}
}

// uncomment returns the commented-out block starting at header, with one
// level of "# " removed.
func uncomment(t *testing.T, file, header string) string {
	t.Helper()
	lines := strings.Split(file, "\n")
	for i, l := range lines {
		if l != "# "+header {
			continue
		}
		var b strings.Builder
		for _, l := range lines[i:] {
			if !strings.HasPrefix(l, "#") {
				break
			}
			b.WriteString(strings.TrimPrefix(strings.TrimPrefix(l, "#"), " ") + "\n")
		}
		return b.String()
	}
	t.Fatalf("worker.toml has no commented-out %s example", header)
	return ""
}

// leafKeys lists the dotted keys of the values in a struct type, by its
// toml tags. skipArrays leaves out arrays of tables.
func leafKeys(typ reflect.Type, prefix string, skipArrays bool) []string {
	var keys []string
	for i := range typ.NumField() {
		f := typ.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
		if name == "" {
			continue
		}
		key := name
		if prefix != "" {
			key = prefix + "." + name
		}
		switch {
		case f.Type.Kind() == reflect.Struct:
			keys = append(keys, leafKeys(f.Type, key, skipArrays)...)
		case f.Type.Kind() == reflect.Slice && f.Type.Elem().Kind() == reflect.Struct && skipArrays:
		default:
			keys = append(keys, key)
		}
	}
	return keys
}
