package config

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"runtime/debug"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/BurntSushi/toml"
	"github.com/sethvargo/go-envconfig"
)

// FuzzConfigDecode loads a fuzzed TOML file and one fuzzed environment
// variable (chosen among the ones that override a key, plus DATABASE_URL)
// with Load. Properties:
//
//   - it never panics;
//   - it fails with an *Error listing at least one problem, each with a
//     message, and returns no configuration;
//   - a configuration it accepts validates, and survives a round trip: its
//     TOML encoding loads (without the environment) to the same value.
func FuzzConfigDecode(f *testing.F) {
	example, err := os.ReadFile("worker.toml")
	if err != nil {
		f.Fatal(err)
	}
	leaves := envLeaves()
	f.Add(example, uint16(0), "")
	for i, s := range []string{
		"",
		"[database]\nurl = \"postgres://u:p@db:5432/tasker\"\nmax_conns = 5\n",
		"[worker.web]\nport = 99999999999999999999\n",
		"[worker.web]\nport = -1\nhost = \"\\u0000\"\n",
		"[worker]\nnamespaces = [\"a\", 1, true]\n",
		"[[worker.handlers]]\npattern = \"pay.*\"\nurl = \"http://pay:8080/{callable}\"\n[[worker.handlers]]\npattern = 3\n",
		"[worker.handlers]\npattern = \"x\"\n",
		"worker = 1\n",
		"[worker.web.auth]\nenabled = true\n[[worker.web.auth.api_keys]]\nname = \"ops\"\n",
		"[databse]\nurl = \"x\"\n",
		"a.b.c.d.e = 1\n\"\\xff\" = 2\n",
		"[database]\nmax_conns = 1.5\nconnect_timeout_seconds = inf\n",
		"[worker.event_systems.worker.metadata.fallback_poller]\npoll_interval_seconds = nan\n",
		"[worker\n",
		"\xff\xfe",
		"x = 1979-05-27T07:32:00Z\n[database]\nurl = 1979-05-27\n",
	} {
		f.Add([]byte(s), uint16(i), "")
	}
	for _, v := range []string{"1", "-5", "99999999999999999999", "true", "x", "\x00", "\xff",
		`[{"pattern":"x","url":"http://h/x"}]`, `[{"pattern":1}]`, `{}`, `[`, "a,b,,c"} {
		for i := range leaves {
			f.Add([]byte(nil), uint16(i), v)
		}
	}
	path := filepath.Join(f.TempDir(), "worker.toml")
	f.Fuzz(func(t *testing.T, file []byte, envIndex uint16, envValue string) {
		defer watchdog(10 * time.Second)()
		if err := os.WriteFile(path, file, 0o600); err != nil {
			t.Fatal(err)
		}
		env := map[string]string{}
		if envValue != "" {
			name := DatabaseURLEnv
			if i := int(envIndex); i < len(leaves) {
				name = leaves[i].env
			}
			env[name] = envValue
		}
		cfg, err := Load(path, envconfig.MapLookuper(env))
		if err != nil {
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("Load failed with a %T, not an *Error: %v", err, err)
			}
			if len(ce.Problems) == 0 {
				t.Fatalf("an *Error without problems: %v", err)
			}
			for _, p := range ce.Problems {
				if strings.TrimSpace(p.Message) == "" {
					t.Fatalf("a problem at %q without a message: %v", p.Key, err)
				}
			}
			if !reflect.DeepEqual(cfg, Config{}) {
				t.Fatalf("Load returned a configuration and an error: %v", err)
			}
			return
		}
		if err := cfg.Validate(); err != nil {
			t.Fatalf("Load accepted a configuration that does not validate: %v", err)
		}
		var buf bytes.Buffer
		if err := toml.NewEncoder(&buf).Encode(cfg); err != nil {
			t.Fatalf("encoding an accepted configuration: %v", err)
		}
		if !utf8.Valid(buf.Bytes()) {
			t.Fatalf("the TOML of an accepted configuration is not UTF-8:\n%s", buf.Bytes())
		}
		if err := os.WriteFile(path, buf.Bytes(), 0o600); err != nil {
			t.Fatal(err)
		}
		again, err := Load(path, envconfig.MapLookuper(nil))
		if err != nil {
			t.Fatalf("the TOML of an accepted configuration is refused: %v\n%s", err, buf.Bytes())
		}
		if !reflect.DeepEqual(again, cfg) {
			t.Fatalf("the configuration changed in a TOML round trip:\n%+v\n%+v\n%s", cfg, again, buf.Bytes())
		}
	})
}

// watchdog crashes the process when an input takes longer than d, so that
// the fuzzer records it as a failing input (it reports no hangs itself).
// Call the function it returns when the input is done.
func watchdog(d time.Duration) func() {
	timer := time.AfterFunc(d, func() {
		debug.SetTraceback("all")
		panic("fuzz: one input took longer than " + d.String())
	})
	return func() { timer.Stop() }
}
