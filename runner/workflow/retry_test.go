package workflow

import (
	"math"
	"testing"
	"time"
)

func ptr[T any](v T) *T { return &v }

func TestBackoffWithoutJitter(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name    string
		retry   Retry
		attempt int
		want    time.Duration
	}{
		{"exponential first", Retry{BackoffBaseMs: 100, MaxBackoffMs: 10000}, 1, 100 * ms},
		{"exponential second", Retry{BackoffBaseMs: 100, MaxBackoffMs: 10000}, 2, 200 * ms},
		{"exponential fifth", Retry{BackoffBaseMs: 100, MaxBackoffMs: 10000}, 5, 1600 * ms},
		{"exponential capped", Retry{BackoffBaseMs: 100, MaxBackoffMs: 1000}, 5, 1000 * ms},
		{"exponential huge attempt", Retry{BackoffBaseMs: 100, MaxBackoffMs: 1000}, 1_000_000, 1000 * ms},
		{"attempt zero counts as one", Retry{BackoffBaseMs: 100, MaxBackoffMs: 1000}, 0, 100 * ms},
		{"negative attempt counts as one", Retry{BackoffBaseMs: 100, MaxBackoffMs: 1000}, -3, 100 * ms},
		{"linear", Retry{Strategy: BackoffLinear, BackoffBaseMs: 100, MaxBackoffMs: 10000}, 3, 300 * ms},
		{"linear capped", Retry{Strategy: BackoffLinear, BackoffBaseMs: 100, MaxBackoffMs: 250}, 3, 250 * ms},
		{"linear huge attempt", Retry{Strategy: BackoffLinear, BackoffBaseMs: 100, MaxBackoffMs: 250}, math.MaxInt, 250 * ms},
		{"fixed", Retry{Strategy: BackoffFixed, BackoffBaseMs: 700, MaxBackoffMs: 10000}, 9, 700 * ms},
		{"fibonacci", Retry{Strategy: BackoffFibonacci, BackoffBaseMs: 100, MaxBackoffMs: 10000}, 6, 800 * ms},
		{"fibonacci first two", Retry{Strategy: BackoffFibonacci, BackoffBaseMs: 100, MaxBackoffMs: 10000}, 2, 100 * ms},
		{"fibonacci capped", Retry{Strategy: BackoffFibonacci, BackoffBaseMs: 100, MaxBackoffMs: 10000}, 500, 10000 * ms},
		{"none", Retry{Strategy: BackoffNone, BackoffBaseMs: 100}, 4, 0},
		{"defaults", Retry{}, 1, time.Second},
		{"defaults cap", Retry{}, 10, MaxBackoffMsDefault * time.Millisecond},
		{"cap never below base", Retry{Strategy: BackoffFixed, BackoffBaseMs: 60_000}, 1, time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.retry.Backoff(tt.attempt, nil); got != tt.want {
				t.Errorf("Backoff(%d) = %v, want %v", tt.attempt, got, tt.want)
			}
		})
	}
}

func TestBackoffJitter(t *testing.T) {
	r := Retry{BackoffBaseMs: 1000, MaxBackoffMs: 8000}
	tests := []struct {
		name    string
		attempt int
		rnd     float64
		want    time.Duration
	}{
		{"low end is half", 1, 0, 500 * time.Millisecond},
		{"middle", 1, 0.5, 750 * time.Millisecond},
		{"capped low end", 10, 0, 4 * time.Second},
		{"capped middle", 10, 0.5, 6 * time.Second},
		{"out of range treated as 0", 2, 1.5, time.Second},
		{"negative treated as 0", 2, -0.1, time.Second},
		{"NaN treated as 0", 2, math.NaN(), time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := r.Backoff(tt.attempt, func() float64 { return tt.rnd }); got != tt.want {
				t.Errorf("Backoff = %v, want %v", got, tt.want)
			}
		})
	}
	// Over the whole range of rnd, results stay in [d/2, d) and never exceed the cap.
	for attempt := 1; attempt <= 12; attempt++ {
		d := r.Backoff(attempt, nil)
		for _, f := range []float64{0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.999999} {
			got := r.Backoff(attempt, func() float64 { return f })
			if got < d/2 || got >= d || got > 8*time.Second {
				t.Errorf("attempt %d rnd %v: %v outside [%v, %v)", attempt, f, got, d/2, d)
			}
		}
	}
	if got := (Retry{Strategy: BackoffNone}).Backoff(3, func() float64 { return 0.5 }); got != 0 {
		t.Errorf("none with jitter = %v", got)
	}
}

func TestWithDefaults(t *testing.T) {
	d := RetryDefaults{MaxAttempts: 5, BackoffBaseMs: 10, MaxBackoffMs: 20}
	got := Retry{}.WithDefaults(d)
	if got.MaxAttempts != 5 || got.BackoffBaseMs != 10 || got.MaxBackoffMs != 20 || got.Strategy != BackoffExponential || !*got.Retryable {
		t.Errorf("WithDefaults = %+v", got)
	}
	orig := Retry{Retryable: ptr(false), MaxAttempts: 2}
	got = orig.WithDefaults(RetryDefaults{})
	if got.MaxAttempts != 2 || *got.Retryable || got.BackoffBaseMs != BackoffBaseMsDefault {
		t.Errorf("WithDefaults = %+v", got)
	}
	*got.Retryable = true
	if *orig.Retryable {
		t.Error("WithDefaults aliases the original Retryable")
	}
}

// TestMaxAttemptsCountsTotalAttempts pins the meaning of limit/max_attempts:
// the number of attempts including the first, as in Tasker.
func TestMaxAttemptsCountsTotalAttempts(t *testing.T) {
	tpl := mustParse(t, []byte(header+`steps:
  - {name: once, handler: {callable: x}, retry: {max_attempts: 1}}
  - {name: once_by_limit, handler: {callable: x}, retry: {limit: 1}}
  - {name: thrice, handler: {callable: x}, retry: {limit: 3}}`))
	p, err := tpl.Plan(RetryDefaults{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range p.Steps {
		want := map[string]int{"once": 1, "once_by_limit": 1, "thrice": 3}[s.Name]
		if s.MaxAttempts != want {
			t.Errorf("%s: MaxAttempts = %d, want %d", s.Name, s.MaxAttempts, want)
		}
	}
}
