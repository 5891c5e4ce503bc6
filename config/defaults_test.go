package config_test

import (
	"bufio"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/BurntSushi/toml"

	"github.com/tasker-runner/tasker-runner/callout"
	"github.com/tasker-runner/tasker-runner/config"
	"github.com/tasker-runner/tasker-runner/runner"
	"github.com/tasker-runner/tasker-runner/runner/workflow"
)

// engineDefault is one key of worker.toml whose default is the engine's:
// the value the file documents, the one [config.Default] holds and the
// engine's constant (converted to the key's unit) must be the same.
type engineDefault struct {
	key    string
	config any
	engine any      // nil: the server's own default, no engine counterpart
	consts []string // the engine's constants it stands for
}

func engineDefaults() []engineDefault {
	d := config.Default().Worker
	es := d.EventSystems.Worker
	ep := config.DefaultEndpoint()
	return []engineDefault{
		{"worker.shutdown_timeout_seconds", d.ShutdownTimeoutSeconds, secs(runner.ShutdownTimeoutDefault), []string{"runner.ShutdownTimeoutDefault"}},
		{"worker.event_systems.worker.deployment_mode", string(es.DeploymentMode), runner.ModeHybrid, nil},
		{"worker.event_systems.worker.metadata.push_consumer.max_concurrent_steps", es.Metadata.PushConsumer.MaxConcurrentSteps, runner.MaxConcurrentStepsDefault, []string{"runner.MaxConcurrentStepsDefault"}},
		{"worker.event_systems.worker.metadata.fallback_poller.poll_interval_seconds", es.Metadata.FallbackPoller.PollIntervalSeconds, runner.PollIntervalDefault.Seconds(), []string{"runner.PollIntervalDefault"}},
		{"worker.event_systems.worker.metadata.listener.reconnect_initial_ms", es.Metadata.Listener.ReconnectInitialMS, ms(runner.ReconnectInitialDefault), []string{"runner.ReconnectInitialDefault"}},
		{"worker.event_systems.worker.metadata.listener.reconnect_max_ms", es.Metadata.Listener.ReconnectMaxMS, ms(runner.ReconnectMaxDefault), []string{"runner.ReconnectMaxDefault"}},
		{"worker.leases.visibility_timeout_seconds", d.Leases.VisibilityTimeoutSeconds, secs(runner.LeaseForDefault), []string{"runner.LeaseForDefault"}},
		{"worker.leases.heartbeat_interval_seconds", d.Leases.HeartbeatIntervalSeconds, secs(runner.HeartbeatIntervalDefault), []string{"runner.HeartbeatIntervalDefault"}},
		{"worker.completion.flush_interval_ms", d.Completion.FlushIntervalMS, ms(runner.FlushIntervalDefault), []string{"runner.FlushIntervalDefault"}},
		{"worker.completion.max_batch", d.Completion.MaxBatch, runner.FlushBatchDefault, []string{"runner.FlushBatchDefault"}},
		{"worker.completion.writers", d.Completion.Writers, runner.FlushWritersDefault, []string{"runner.FlushWritersDefault"}},
		{"worker.retry.max_attempts", d.Retry.MaxAttempts, workflow.MaxAttemptsDefault, []string{"workflow.MaxAttemptsDefault"}},
		{"worker.retry.backoff_base_ms", d.Retry.BackoffBaseMS, workflow.BackoffBaseMsDefault, []string{"workflow.BackoffBaseMsDefault"}},
		{"worker.retry.max_backoff_ms", d.Retry.MaxBackoffMS, workflow.MaxBackoffMsDefault, []string{"workflow.MaxBackoffMsDefault"}},
		{"worker.dynamic.max_steps_per_outcome", d.Dynamic.MaxStepsPerOutcome, runner.MaxStepsPerOutcomeDefault, []string{"runner.MaxStepsPerOutcomeDefault"}},
		{"worker.dynamic.max_steps_per_task", d.Dynamic.MaxStepsPerTask, runner.MaxStepsPerTaskDefault, []string{"runner.MaxStepsPerTaskDefault"}},
		{"worker.dynamic.max_yields_per_step", d.Dynamic.MaxYieldsPerStep, runner.MaxYieldsPerStepDefault, []string{"runner.MaxYieldsPerStepDefault"}},
		{"worker.retention.interval_seconds", d.Retention.IntervalSeconds, secs(runner.RetentionIntervalDefault), []string{"runner.RetentionIntervalDefault"}},
		{"worker.retention.batch_size", d.Retention.BatchSize, runner.RetentionBatchSizeDefault, []string{"runner.RetentionBatchSizeDefault"}},
		{"worker.retention.batch_max_steps", d.Retention.BatchMaxSteps, runner.RetentionBatchMaxStepsDefault, []string{"runner.RetentionBatchMaxStepsDefault"}},
		{"worker.retention.max_batches_per_run", d.Retention.MaxBatchesPerRun, runner.RetentionMaxBatchesPerRunDefault, []string{"runner.RetentionMaxBatchesPerRunDefault"}},
		{"worker.callout.default_timeout_seconds", d.Callout.DefaultTimeoutSeconds, secs(runner.StepTimeoutDefault), []string{"runner.StepTimeoutDefault"}},
		{"worker.callout.max_response_bytes", d.Callout.MaxResponseBytes, callout.DefaultMaxResponseBytes, []string{"callout.DefaultMaxResponseBytes"}},
		{"worker.callout.max_idle_conns_per_host", d.Callout.MaxIdleConnsPerHost, callout.DefaultMaxIdleConnsPerHost, []string{"callout.DefaultMaxIdleConnsPerHost"}},
		{"worker.callout.secret_dirs", d.Callout.SecretDirs, runner.DefaultSecretDirs, []string{"runner.DefaultSecretDirs"}},
		{"worker.callout.breaker.max_requests", d.Callout.Breaker.MaxRequests, callout.BreakerMaxRequestsDefault, []string{"callout.BreakerMaxRequestsDefault"}},
		{"worker.callout.breaker.interval_seconds", d.Callout.Breaker.IntervalSeconds, secs(callout.BreakerIntervalDefault), []string{"callout.BreakerIntervalDefault"}},
		{"worker.callout.breaker.open_timeout_seconds", d.Callout.Breaker.OpenTimeoutSeconds, secs(callout.BreakerOpenTimeoutDefault), []string{"callout.BreakerOpenTimeoutDefault"}},
		{"worker.callout.breaker.consecutive_failures", d.Callout.Breaker.ConsecutiveFailures, callout.BreakerConsecutiveFailuresDefault, []string{"callout.BreakerConsecutiveFailuresDefault"}},
		// The commented-out [[worker.handlers]] example shows an entry's defaults.
		{"worker.handlers.protocol", string(ep.Protocol), callout.ProtocolHTTP, nil},
		{"worker.handlers.timeout_ms", ep.TimeoutMS, 0, nil}, // 0: the callout default
		{"worker.handlers.max_concurrency", ep.MaxConcurrency, 0, nil},
		{"worker.handlers.batch_max", ep.BatchMax, nil, nil},
		{"worker.handlers.batch_window_ms", ep.BatchWindowMS, nil, nil},
	}
}

// unusedEngineDefaults are the engine's default constants that no key of
// the file sets, with why.
var unusedEngineDefaults = map[string]string{
	"callout.UnusableRetryDefault": "how long an unusable endpoint's steps wait; not configurable",
}

func secs(d time.Duration) int { return int(d / time.Second) }
func ms(d time.Duration) int   { return int(d / time.Millisecond) }

// The defaults are defined once, by the engine's XDefault constants:
// worker.toml documents them (set or, for array tables, commented out),
// config.Default holds them. This fails when the three disagree.
func TestDefaultsAreTheEngines(t *testing.T) {
	t.Parallel()
	file := exampleValues(t)
	for _, d := range engineDefaults() {
		inFile, ok := file[d.key]
		if !ok {
			t.Errorf("worker.toml does not show a value for %s", d.key)
			continue
		}
		if !sameValue(inFile, d.config) {
			t.Errorf("%s: worker.toml says %v, config.Default() %v", d.key, inFile, d.config)
		}
		if d.engine != nil && !sameValue(d.config, d.engine) {
			t.Errorf("%s: config.Default() says %v, the engine (%s) %v", d.key, d.config, strings.Join(d.consts, ", "), d.engine)
		}
	}
}

// Every exported default constant of runner, workflow and callout either
// has a key in the table above or is listed as having none, so that a new
// engine default cannot be forgotten by the configuration.
func TestEveryEngineDefaultHasAKey(t *testing.T) {
	t.Parallel()
	covered := map[string]bool{}
	for _, d := range engineDefaults() {
		for _, c := range d.consts {
			covered[c] = true
		}
	}
	for _, dir := range []string{"../runner", "../runner/workflow", "../callout"} {
		for _, name := range exportedDefaults(t, dir) {
			if !covered[name] && unusedEngineDefaults[name] == "" {
				t.Errorf("%s has no worker.toml key in engineDefaults (or an entry in unusedEngineDefaults saying why)", name)
			}
		}
	}
}

// exportedDefaults lists the exported constants and variables of the
// package in dir whose name starts or ends with Default, as pkg.Name.
func exportedDefaults(t *testing.T, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.go"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		file, err := parser.ParseFile(fset, f, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, decl := range file.Decls {
			gd, ok := decl.(*ast.GenDecl)
			if !ok || (gd.Tok != token.CONST && gd.Tok != token.VAR) {
				continue
			}
			for _, spec := range gd.Specs {
				for _, n := range spec.(*ast.ValueSpec).Names {
					if n.IsExported() && (strings.HasSuffix(n.Name, "Default") || strings.HasPrefix(n.Name, "Default")) {
						names = append(names, file.Name.Name+"."+n.Name)
					}
				}
			}
		}
	}
	slices.Sort(names)
	return names
}

var (
	exampleHeader = regexp.MustCompile(`^\[\[?([a-z0-9_.]+)\]\]?$`)
	exampleKey    = regexp.MustCompile(`^([a-z0-9_]+) = (.+)$`)
)

// exampleValues reads every `key = value` line of worker.toml, set or
// commented out ("# key = value", as in the array table examples), under
// its table's dotted path. Comment lines that only look like one (their
// value is not TOML) are skipped.
func exampleValues(t *testing.T) map[string]any {
	t.Helper()
	f, err := os.Open(exampleFile)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	values := map[string]any{}
	table := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimPrefix(strings.TrimPrefix(sc.Text(), "#"), " ")
		if m := exampleHeader.FindStringSubmatch(line); m != nil {
			table = m[1]
			continue
		}
		m := exampleKey.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		var v map[string]any
		if _, err := toml.Decode("v = "+m[2], &v); err != nil {
			continue
		}
		key := table + "." + m[1]
		if prev, ok := values[key]; ok && !sameValue(prev, v["v"]) {
			t.Errorf("worker.toml:%d: %s = %v, and %v earlier", n, key, v["v"], prev)
		}
		values[key] = v["v"]
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return values
}

// sameValue compares values across representations: any integer type,
// any float type, and lists of them.
func sameValue(a, b any) bool { return reflect.DeepEqual(normalize(a), normalize(b)) }

func normalize(v any) any {
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return float64(rv.Int())
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return float64(rv.Uint())
	case reflect.Float32, reflect.Float64:
		return rv.Float()
	case reflect.String:
		return rv.String()
	case reflect.Slice:
		out := make([]any, rv.Len())
		for i := range out {
			out[i] = normalize(rv.Index(i).Interface())
		}
		return out
	}
	return v
}
