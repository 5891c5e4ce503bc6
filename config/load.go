package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"

	"github.com/BurntSushi/toml"
	"github.com/sethvargo/go-envconfig"
)

// PathEnv is the environment variable naming the configuration file when
// no --config flag is given.
const PathEnv = "TASKER_CONFIG_PATH"

// ResolvePath returns the configuration file to load: flagValue (from
// --config) when set, else $TASKER_CONFIG_PATH, else "" (no file: defaults
// and environment only). A nil lookup reads the process environment.
func ResolvePath(flagValue string, lookup envconfig.Lookuper) string {
	if flagValue != "" {
		return flagValue
	}
	if lookup == nil {
		lookup = envconfig.OsLookuper()
	}
	if v, ok := lookup.Lookup(PathEnv); ok {
		return v
	}
	return ""
}

// Load builds the configuration: [Default], then the TOML file at path
// (skipped when path is ""), then the environment read through lookup, then
// [Config.Validate]. Production passes [envconfig.OsLookuper] (a nil lookup
// means the same); tests pass [envconfig.MapLookuper] so they never touch
// the process environment.
//
// Problems are collected from all four steps and returned together as an
// [*Error]. A file that cannot be read, or is not valid TOML, stops loading
// at once: nothing after it could be trusted.
func Load(path string, lookup envconfig.Lookuper) (Config, error) {
	if lookup == nil {
		lookup = envconfig.OsLookuper()
	}
	cfg := Default()
	var ps problems
	if path != "" {
		data, err := os.ReadFile(path)
		if err != nil {
			// The *PathError names the file; keeping it wrapped lets callers
			// test errors.Is(err, fs.ErrNotExist).
			return Config{}, fmt.Errorf("config: %w", err)
		}
		fileProblems, err := decodeTOML(data, &cfg)
		if err != nil {
			return Config{}, &Error{Path: path, Problems: []Problem{syntaxProblem(err)}}
		}
		ps = append(ps, fileProblems...)
	}
	ps = append(ps, applyEnv(&cfg, lookup)...)

	// A value that failed to decode kept its default, which may in turn fail
	// validation under the same key (a required string given as a number);
	// one problem per key is enough.
	seen := make(map[string]bool, len(ps))
	for _, p := range ps {
		seen[p.Key] = true
	}
	for _, p := range cfg.validate() {
		if !seen[p.Key] {
			ps = append(ps, p)
		}
	}
	if err := ps.err(path); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// decodeTOML applies a TOML document to cfg. The error is for syntax only;
// everything else is returned as problems.
func decodeTOML(data []byte, cfg *Config) (problems, error) {
	var tree map[string]any
	if _, err := toml.Decode(string(data), &tree); err != nil {
		return nil, err
	}
	var d decoder
	d.table("", tree, reflect.ValueOf(cfg).Elem())
	return d.problems, nil
}

// syntaxProblem turns a TOML parse error into a Problem naming the line.
func syntaxProblem(err error) Problem {
	var pe toml.ParseError
	if errors.As(err, &pe) {
		msg := fmt.Sprintf("TOML syntax error at line %d, column %d: %s", pe.Position.Line, pe.Position.Col, pe.Message)
		if pe.LastKey != "" {
			msg += fmt.Sprintf(" (after key %q)", pe.LastKey)
		}
		return Problem{Message: msg}
	}
	return Problem{Message: err.Error()}
}
