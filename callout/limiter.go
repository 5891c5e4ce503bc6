package callout

import (
	"context"
	"sync"
)

// limiter bounds the calls in flight to one endpoint. Its limit adapts to
// the endpoint's 429 (Too Many Requests) and RESOURCE_EXHAUSTED answers the
// way TCP adapts to loss (AIMD): a throttled call halves the limit, down to
// one call; each call that goes through raises it by 1/limit, back up to
// the configured maximum. Only the first throttled answer among calls
// started under the same limit cuts it, so a burst of 429s from calls
// already in flight halves it once, not once per call.
//
// An endpoint without a configured maximum starts unlimited; its first
// throttle sets the limit to half the calls then in flight, and the limit
// is lifted again once it climbs back to that level.
type limiter struct {
	max int // configured maximum; 0 = none

	mu      sync.Mutex
	limit   int // current limit; 0 = none
	lift    int // with max 0: the level at which the limit is lifted
	inUse   int
	gen     uint64 // bumped by every cut
	credit  int    // successes towards the next raise
	waiters []chan struct{}

	throttled int64 // throttled answers seen
}

func newLimiter(max int) *limiter { return &limiter{max: max, limit: max} }

// acquire waits for a slot and returns the generation it was taken in, for
// [limiter.done]. It fails only when ctx ends first.
func (l *limiter) acquire(ctx context.Context) (uint64, error) {
	l.mu.Lock()
	if l.limit == 0 || l.inUse < l.limit {
		l.inUse++
		gen := l.gen
		l.mu.Unlock()
		return gen, nil
	}
	ch := make(chan struct{})
	l.waiters = append(l.waiters, ch)
	l.mu.Unlock()
	select {
	case <-ch:
		// release handed its slot over: inUse already counts it.
		l.mu.Lock()
		gen := l.gen
		l.mu.Unlock()
		return gen, nil
	case <-ctx.Done():
		l.mu.Lock()
		defer l.mu.Unlock()
		for i, w := range l.waiters {
			if w == ch {
				l.waiters = append(l.waiters[:i], l.waiters[i+1:]...)
				return 0, ctx.Err()
			}
		}
		// Granted while giving up: pass the slot on.
		l.releaseLocked()
		return 0, ctx.Err()
	}
}

// done returns a slot taken in generation gen and adapts the limit to how
// the call went.
func (l *limiter) done(gen uint64, throttled bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case throttled:
		l.throttled++
		if gen == l.gen {
			l.cutLocked()
		}
	case l.limit > 0 && gen == l.gen:
		l.credit++
		if l.credit >= l.limit {
			l.credit = 0
			l.limit++
			switch {
			case l.max > 0 && l.limit >= l.max:
				l.limit = l.max
			case l.max == 0 && l.limit >= l.lift:
				l.limit = 0 // recovered: unlimited again
			}
		}
	}
	l.releaseLocked()
}

func (l *limiter) cutLocked() {
	if l.limit == 0 {
		// inUse still counts this call.
		l.lift = max(l.inUse, 2)
		l.limit = l.inUse
	}
	l.limit = max(1, l.limit/2)
	l.credit = 0
	l.gen++
}

// releaseLocked frees a slot, handing it to the next waiter if the limit
// allows.
func (l *limiter) releaseLocked() {
	l.inUse--
	for len(l.waiters) > 0 && (l.limit == 0 || l.inUse < l.limit) {
		ch := l.waiters[0]
		l.waiters = l.waiters[1:]
		l.inUse++
		close(ch)
	}
}

// state returns the current limit (0 = none) and the throttled answers seen.
func (l *limiter) state() (limit int, throttled int64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.limit, l.throttled
}
