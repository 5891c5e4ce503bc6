package runner_test

import (
	"math/rand"
	"reflect"
	"testing"
	"testing/quick"

	"github.com/tasker-runner/tasker-runner/runner"
)

// serverOnlyConfig are the fields of [runner.Config] that a
// [runner.ServerConfig] does not carry, with why.
var serverOnlyConfig = map[string]string{
	"Handlers":  "the Server builds its handler registry",
	"Endpoints": "the Server builds its endpoint loader",
	"Now":       "a test clock of the Runner's own tests",
	"Rand":      "a test jitter source of the Runner's own tests",
}

// TestServerConfigCarriesConfig fails when a field added to runner.Config
// is missing from ServerConfig, has another type there, or is not passed
// on to the Server's runner (ServerConfig.RunnerConfig).
func TestServerConfigCarriesConfig(t *testing.T) {
	cfgType := reflect.TypeFor[runner.Config]()
	var sc runner.ServerConfig
	scv := reflect.ValueOf(&sc).Elem()
	rnd := rand.New(rand.NewSource(1))
	for i := range cfgType.NumField() {
		f := cfgType.Field(i)
		if _, ok := serverOnlyConfig[f.Name]; ok || !f.IsExported() {
			continue
		}
		sf, ok := scv.Type().FieldByName(f.Name)
		if !ok {
			t.Errorf("runner.Config.%s has no ServerConfig field (or an entry in serverOnlyConfig saying why)", f.Name)
			continue
		}
		if sf.Type != f.Type {
			t.Errorf("ServerConfig.%s is %s, Config.%s is %s", f.Name, sf.Type, f.Name, f.Type)
			continue
		}
		scv.FieldByIndex(sf.Index).Set(nonZero(t, f.Type, rnd))
	}
	got := reflect.ValueOf(sc.RunnerConfig(nil))
	for i := range cfgType.NumField() {
		f := cfgType.Field(i)
		if _, ok := serverOnlyConfig[f.Name]; ok || !f.IsExported() {
			continue
		}
		sf, ok := scv.Type().FieldByName(f.Name)
		if !ok {
			continue
		}
		want, have := scv.FieldByIndex(sf.Index), got.Field(i)
		if f.Type.Kind() == reflect.Func {
			if have.IsNil() {
				t.Errorf("RunnerConfig drops ServerConfig.%s", f.Name)
			}
			continue
		}
		if !reflect.DeepEqual(want.Interface(), have.Interface()) {
			t.Errorf("RunnerConfig sets %s to %v, ServerConfig has %v", f.Name, have, want)
		}
	}
}

// nonZero is a value of type typ that is not its zero value.
func nonZero(t *testing.T, typ reflect.Type, rnd *rand.Rand) reflect.Value {
	t.Helper()
	switch typ.Kind() {
	case reflect.Func:
		return reflect.MakeFunc(typ, func([]reflect.Value) []reflect.Value {
			out := make([]reflect.Value, typ.NumOut())
			for i := range out {
				out[i] = reflect.Zero(typ.Out(i))
			}
			return out
		})
	case reflect.Pointer:
		return reflect.New(typ.Elem())
	case reflect.Interface:
		if reflect.TypeFor[runner.NopObserver]().Implements(typ) {
			return reflect.ValueOf(runner.NopObserver{})
		}
		t.Fatalf("no value for interface %s: add one", typ)
	}
	for range 10 {
		v, ok := quick.Value(typ, rnd)
		if !ok {
			t.Fatalf("no value for %s: add one", typ)
		}
		if !v.IsZero() {
			return v
		}
	}
	t.Fatalf("only zero values for %s", typ)
	return reflect.Value{}
}
