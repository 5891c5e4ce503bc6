package workflow

import (
	"math"
	"time"
)

// RetryDefaults are the operator's defaults for retry fields a template leaves
// unset. Zero fields fall back to [MaxAttemptsDefault], [BackoffBaseMsDefault]
// and [MaxBackoffMsDefault].
type RetryDefaults struct {
	MaxAttempts   int // total attempts, including the first
	BackoffBaseMs int
	MaxBackoffMs  int
}

// Retry defaults, used where neither the template nor the [RetryDefaults]
// set a value: 3 attempts, exponential backoff from one second, capped at a
// minute (the worker.retry defaults of the configuration, which reads these).
// Retryable defaults to true.
const (
	MaxAttemptsDefault   = 3
	BackoffBaseMsDefault = 1000
	MaxBackoffMsDefault  = 60_000
)

// WithDefaults returns r with every unset field filled from d, and from the
// Default constants where d is zero too. The result has a non-nil Retryable
// (not shared with r) and a non-empty Strategy.
func (r Retry) WithDefaults(d RetryDefaults) Retry {
	pick := func(v, def, fallback int) int {
		switch {
		case v > 0:
			return v
		case def > 0:
			return def
		}
		return fallback
	}
	r.MaxAttempts = pick(r.MaxAttempts, d.MaxAttempts, MaxAttemptsDefault)
	r.BackoffBaseMs = pick(r.BackoffBaseMs, d.BackoffBaseMs, BackoffBaseMsDefault)
	r.MaxBackoffMs = pick(r.MaxBackoffMs, d.MaxBackoffMs, MaxBackoffMsDefault)
	if r.Retryable == nil {
		yes := true
		r.Retryable = &yes
	} else {
		v := *r.Retryable // do not alias the template's value
		r.Retryable = &v
	}
	if r.Strategy == "" {
		r.Strategy = BackoffExponential
	}
	return r
}

// Backoff returns how long to wait before retrying after failed attempt
// number attempt (1 for the first attempt; smaller values count as 1).
//
// The un-jittered delay d is, with base = BackoffBaseMs:
// exponential base*2^(attempt-1), linear base*attempt, fixed base, fibonacci
// base*fib(attempt) (1, 1, 2, 3, 5, ...), none 0. It is capped at
// max(MaxBackoffMs, BackoffBaseMs): the cap never cuts below the base.
//
// Jitter is "equal jitter": the result is d/2 + rnd()*d/2, uniformly in
// [d/2, d), so retries spread out but never come sooner than half the
// computed backoff. rnd must return values in [0, 1) (math/rand/v2's Float64);
// a nil rnd disables jitter and Backoff returns d.
//
// Unset fields use the Default constants; call [Retry.WithDefaults] first to apply
// operator defaults ([PlannedStep.Retry] already has them).
func (r Retry) Backoff(attempt int, rnd func() float64) time.Duration {
	r = r.WithDefaults(RetryDefaults{})
	attempt = max(attempt, 1)
	base := time.Duration(r.BackoffBaseMs) * time.Millisecond
	limit := max(time.Duration(r.MaxBackoffMs)*time.Millisecond, base)

	var d time.Duration
	switch r.Strategy {
	case BackoffNone:
		return 0
	case BackoffFixed:
		d = base
	case BackoffLinear:
		if int64(attempt) > int64(limit/base) {
			d = limit
		} else {
			d = base * time.Duration(attempt)
		}
	case BackoffFibonacci:
		a, b := int64(1), int64(1) // fib(1), fib(2)
		for i := 1; i < attempt && a <= int64(limit/base); i++ {
			a, b = b, a+b
		}
		d = limit
		if a <= int64(limit/base) {
			d = base * time.Duration(a)
		}
	default: // exponential
		shift := attempt - 1
		if shift >= 62 || base > limit>>shift {
			d = limit
		} else {
			d = base << shift
		}
	}
	d = min(d, limit)
	if rnd == nil || d <= 0 {
		return d
	}
	f := rnd()
	if f < 0 || f >= 1 || math.IsNaN(f) {
		f = 0
	}
	half := d / 2
	return half + time.Duration(f*float64(d-half))
}
